"""A nanoGPT-style GPT in PyTorch eager: the reference of ``benchmarks/train_speed.py``.

Pre-LayerNorm blocks without biases, learned positions, tied input/output embeddings, exact
GELU 4x MLP, causal ``scaled_dot_product_attention``; AdamW with weight decay on matrices only
and global-norm clipping, as nanoGPT's ``train.py`` does it on CPU (``foreach`` AdamW, no
fusion, no ``torch.compile``). ``load_jax_params`` copies an xpm-train transformer's parameters
so that both frameworks start from the same weights and their losses can be compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch  # pyright: ignore[reportMissingImports] (pip install -e ".[bench]")
import torch.nn.functional as F  # noqa: N812  # pyright: ignore[reportMissingImports]
from torch import nn  # pyright: ignore[reportMissingImports]


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    norm_eps: float = 1e-5


class LayerNorm(nn.Module):
    """LayerNorm with a scale and no bias (nanoGPT's ``bias=False``)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, None, self.eps)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.n_head = config.n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = self.c_attn(x).split(width, dim=2)
        shape = (batch, time, self.n_head, width // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(batch, time, width))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.norm_eps)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.shape[1], dtype=torch.long)
        x = self.wte(idx) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def configure_optimizer(
    model: GPT, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """nanoGPT's AdamW: decay on parameters with 2+ dimensions (matrices, embeddings)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


class TorchTrainer:
    """One model and its optimizer; ``step(tokens)`` is one nanoGPT training iteration."""

    def __init__(self, config: GPTConfig, lr: float, betas: tuple[float, float], wd: float):
        self.model = GPT(config)
        self.optimizer = configure_optimizer(self.model, lr, betas, wd)

    def step(self, tokens: torch.Tensor, clip: float = 1.0) -> torch.Tensor:
        loss = self.model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def load_jax_params(model: GPT, params: dict[str, Any]) -> None:
    """Copy an xpm-train transformer's parameters (``positions=learned``, tied, no biases,
    LayerNorm without bias) into ``model``; Linear kernels are transposed."""

    def put(target: torch.Tensor, value: Any, transpose: bool = False) -> None:
        array = np.asarray(value, dtype=np.float32)
        with torch.no_grad():
            target.copy_(torch.from_numpy(array.T.copy() if transpose else array.copy()))

    put(model.wte.weight, params["embed"]["embedding"])
    put(model.wpe.weight, params["pos_embed"]["embedding"])
    put(model.ln_f.weight, params["final_norm"]["scale"])
    for index, module in enumerate(model.h):
        block = cast(Block, module)
        p = params["blocks"][index]
        put(block.ln_1.weight, p["attn_norm"]["scale"])
        put(block.ln_2.weight, p["mlp_norm"]["scale"])
        put(block.attn.c_attn.weight, p["attn"]["qkv"]["kernel"], transpose=True)
        put(block.attn.c_proj.weight, p["attn"]["out"]["kernel"], transpose=True)
        put(block.mlp.c_fc.weight, p["mlp"]["up"]["kernel"], transpose=True)
        put(block.mlp.c_proj.weight, p["mlp"]["down"]["kernel"], transpose=True)
