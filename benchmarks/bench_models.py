"""The models of ``benchmarks/train_speed.py``: sizes, data, xpm-train stage, bare JAX run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bare_jax import bare_step, timed_steps
from flax import nnx

from xpm_train.data.loader import Batch, StepBatches
from xpm_train.models.config import TransformerConfig
from xpm_train.objectives.language_model import NextTokenPrediction
from xpm_train.optim.optimizers import AdamW
from xpm_train.optim.schedules import WarmupStableDecay
from xpm_train.training.loop import Stage


@dataclass
class RandomTokens:
    """Stage data of uniformly random token blocks (no held-out set)."""

    blocks: np.ndarray
    batch_size: int

    @property
    def tokens_per_sample(self) -> int:
        return self.blocks.shape[1] - 1

    def train_batches(self, accum_steps: int) -> StepBatches:
        mask = np.ones((len(self.blocks), self.tokens_per_sample), np.float32)
        return StepBatches({"tokens": self.blocks, "mask": mask}, self.batch_size, accum_steps, 0)

    def eval_batches(self, batch_size: int) -> list[Batch]:
        return []


@dataclass(frozen=True)
class BenchModel:
    """A nanoGPT-shaped model, its batch and the benchmark's default run length."""

    layers: int
    heads: int
    width: int
    block: int
    batch: int
    steps: int
    warmup: int
    vocab: int = 65
    lr: float = 1e-3
    compute_dtype: str = "float32"

    def config(self) -> TransformerConfig:
        return TransformerConfig.C(
            max_seq_len=self.block,
            d_model=self.width,
            n_layers=self.layers,
            n_heads=self.heads,
            mlp_ratio=4,
            positions="learned",
            norm="layernorm",
            norm_eps=1e-5,
            use_bias=False,
            tie_embeddings=True,
            compute_dtype=self.compute_dtype,
        ).instance()

    def make_model(self) -> nnx.Module:
        return self.config().create(self.vocab, seed=0)

    def optimizer(self) -> AdamW:
        return AdamW.C(weight_decay=0.1, b1=0.9, b2=0.99, clip_norm=1.0).instance()

    def schedule(self) -> WarmupStableDecay:
        """A constant learning rate (no warmup, no decay)."""
        return WarmupStableDecay.C(lr=self.lr, lr_warmup_steps=0, decay_fraction=0.0).instance()

    def transform(self, total_steps: int) -> optax.GradientTransformation:
        """The optimizer with the schedule of a ``total_steps``-step run, for a bare step."""
        return self.optimizer().build(self.schedule().build(total_steps))

    @cached_property
    def data(self) -> RandomTokens:
        blocks = np.random.default_rng(0).integers(0, self.vocab, (64 * self.batch, self.block + 1))
        return RandomTokens(blocks.astype(np.int32), self.batch)

    def tokens(self, step: int) -> np.ndarray:
        """The (batch, block + 1) tokens of ``step``, as the xpm-train loop gets them."""
        return self.data.train_batches(1)(step)["tokens"][0]

    def stage(self) -> Stage:
        return Stage(
            make_model=self.make_model,
            objective=NextTokenPrediction(),
            optimizer=self.optimizer(),
            schedule=self.schedule(),
            data=self.data,
        )

    def initial_params(self) -> dict[str, Any]:
        return nnx.to_pure_dict(nnx.split(self.make_model(), nnx.Param)[1])

    def num_params(self) -> int:
        shapes = jax.eval_shape(self.initial_params)
        return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


MODELS = {
    "mini": BenchModel(layers=4, heads=4, width=128, block=64, batch=12, steps=100, warmup=10),
    "baby": BenchModel(layers=6, heads=6, width=384, block=256, batch=8, steps=20, warmup=5),
    "wide": BenchModel(layers=6, heads=12, width=768, block=256, batch=8, steps=10, warmup=5),
    "gpt2": BenchModel(
        layers=12,
        heads=12,
        width=768,
        block=1024,
        batch=16,
        steps=20,
        warmup=5,
        vocab=50304,
        lr=6e-4,
        compute_dtype="bfloat16",
    ),
}


def model_flops_per_token(bench: BenchModel) -> float:
    """Training FLOPs per token, as nanoGPT's ``estimate_mfu``: 6 N + 12 L d T, with N the
    parameters without the position embeddings."""
    n = bench.num_params() - bench.block * bench.width
    return 6 * n + 12 * bench.layers * bench.width * bench.block


def bare_jax_run(bench: BenchModel, warmup: int, steps: int) -> dict[str, float]:
    """Tokens/s of the bare JAX step (``bare_jax.py``) over ``steps`` steps after ``warmup``
    ones, on the batches the xpm-train loop gets."""
    step, params, opt_state = bare_step(bench.make_model(), bench.transform(warmup + steps))
    batches = [jnp.asarray(bench.tokens(i)) for i in range(warmup + steps)]
    seconds, loss = timed_steps(step, params, opt_state, batches[:warmup], batches[warmup:])
    return {"tokens_per_s": bench.batch * bench.block * steps / seconds, "loss": float(loss)}
