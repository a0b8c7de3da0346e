"""Typed model configurations (no jax import here: planning an experiment stays fast)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Config, Param, field

from xpm_train.registry import register
from xpm_train.validation import validate

if TYPE_CHECKING:
    from flax import nnx

POSITIONS = ("rope", "learned")
NORMS = ("layernorm", "rmsnorm")
DTYPES = ("float32", "bfloat16", "float16")


class ModelConfig(Config):
    """Base class of model configurations; ``max_seq_len`` bounds the sequence length."""

    max_seq_len: int

    def create(self, vocab_size: int, seed: int) -> nnx.Module:
        """A freshly initialised model (call under ``jax.set_mesh`` to create it sharded)."""
        raise NotImplementedError

    def __validate__(self) -> None:
        """Raise ValueError if the configuration is inconsistent."""

    def validate_vocabulary(self, vocab_size: int) -> None:
        """Raise ValueError if the model cannot embed a tokenizer of ``vocab_size`` tokens."""


@register("model", "transformer")
class TransformerConfig(ModelConfig):
    """A decoder-only transformer: pre-norm blocks, causal self-attention, MLP."""

    max_seq_len: Param[int] = field(default=256)
    """Longest sequence the model handles (size of learned positions, RoPE check)"""
    d_model: Param[int] = field(default=128)
    n_layers: Param[int] = field(default=2)
    n_heads: Param[int] = field(default=4)
    mlp_ratio: Param[int] = field(default=4)
    """Hidden size of the MLP as a multiple of d_model"""
    positions: Param[str] = field(default="rope")
    """Position encoding: rope or learned"""
    rope_base: Param[float] = field(default=10000.0)
    norm: Param[str] = field(default="layernorm")
    """layernorm or rmsnorm"""
    norm_eps: Param[float] = field(default=1e-6, ignore_default=True)
    """Epsilon of the norms (flax's default; nanoGPT and GPT-2 use 1e-5)"""
    use_bias: Param[bool] = field(default=False)
    tie_embeddings: Param[bool] = field(default=True)
    """Use the input embedding matrix as output projection"""
    dropout: Param[float] = field(default=0.0)
    param_dtype: Param[str] = field(default="float32")
    """Storage type of the parameters"""
    compute_dtype: Param[str] = field(default="float32")
    """Type of the activations and matmuls (logits are always float32)"""

    def __validate__(self) -> None:
        errors = [
            f"{key}={getattr(self, key)} must be >= 1"
            for key in ("max_seq_len", "d_model", "n_layers", "n_heads", "mlp_ratio")
            if getattr(self, key) < 1
        ]
        if errors:
            raise ValueError("transformer model: " + "; ".join(errors))
        if self.d_model % self.n_heads:
            errors.append(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            errors.append("rope needs an even head size (d_model / n_heads)")
        for key, value, allowed in (
            ("positions", self.positions, POSITIONS),
            ("norm", self.norm, NORMS),
            ("param_dtype", self.param_dtype, DTYPES),
            ("compute_dtype", self.compute_dtype, DTYPES),
        ):
            if value not in allowed:
                errors.append(f"{key}={value!r} is not one of {', '.join(allowed)}")
        if not 0.0 <= self.dropout < 1.0:
            errors.append(f"dropout={self.dropout} must be in [0, 1)")
        if errors:
            raise ValueError("transformer model: " + "; ".join(errors))

    def create(self, vocab_size: int, seed: int) -> nnx.Module:
        from flax import nnx

        from xpm_train.models.transformer import Transformer

        validate(self)
        # Partitioning stays metadata here; the trainer places parameters on its mesh.
        with nnx.use_eager_sharding(False):
            return Transformer(self, vocab_size, rngs=nnx.Rngs(params=seed))
