"""Configurations of the Hugging Face decoder families: llama, qwen2 and gpt_neox.

Each is a registered model component (``model: {name: llama, ...}`` in YAML) whose parameters
mirror the family's ``config.json`` keys; ``xpm_train.models.hf_config`` reads and writes those
files. One flax module implements the three (``xpm_train.models.decoder``). No jax import
here: planning stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.models.config import DTYPES, ModelConfig
from xpm_train.registry import register
from xpm_train.validation import validate

if TYPE_CHECKING:
    from flax import nnx

#: Activations of the MLPs, by their name in config.json.
ACTIVATIONS = ("silu", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu")
#: The keys of a llama3 ``rope_scaling``.
LLAMA3_SCALING = (
    "factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
)


class DecoderConfig(ModelConfig):
    """What the three families share: embeddings, rotary attention, MLP, norms."""

    vocab_size: Param[int]
    """Rows of the embedding table (at least the tokenizer's vocabulary)"""
    hidden_size: Param[int]
    num_hidden_layers: Param[int]
    num_attention_heads: Param[int]
    intermediate_size: Param[int]
    """Hidden units of the MLP"""
    max_seq_len: Param[int] = field(default=2048)
    """Longest sequence (config.json's max_position_embeddings)"""
    head_dim: Param[int | None] = field(default=None)
    """Size of one attention head (default: hidden_size / num_attention_heads)"""
    rope_theta: Param[float] = field(default=10000.0)
    norm_eps: Param[float] = field(default=1e-6)
    """Epsilon of the norms (rms_norm_eps or layer_norm_eps)"""
    hidden_act: Param[str] = field(default="silu")
    tie_embeddings: Param[bool] = field(default=False)
    """The output projection is the input embedding matrix (tie_word_embeddings)"""
    param_dtype: Param[str] = field(default="float32")
    """Storage type of the parameters"""
    compute_dtype: Param[str] = field(default="float32")
    """Type of the activations and matmuls (logits are always float32)"""

    # The family's structure, set by each subclass (not parameters: fixed by the family).
    family = ""
    #: LayerNorm with bias (gpt_neox) instead of RMSNorm
    layer_norm = False
    #: gate * up (llama) instead of a plain up-projection (gpt_neox)
    gated_mlp = True

    @property
    def kv_heads(self) -> int:
        return self.num_attention_heads

    def biases(self) -> tuple[bool, bool, bool]:
        """Whether the q/k/v projections, the attention output and the MLP have biases."""
        return (False, False, False)

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        return self.head_size

    @property
    def parallel_residual(self) -> bool:
        return False

    def rope_scaling_factors(self) -> dict[str, float] | None:
        return None

    def __validate__(self) -> None:
        errors = []
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
            if getattr(self, key) < 1:
                errors.append(f"{key}={getattr(self, key)} must be >= 1")
        heads = self.num_attention_heads
        if heads >= 1 and self.head_dim is None and self.hidden_size % heads:
            errors.append(f"hidden_size={self.hidden_size} is not divisible by {heads} heads")
        if self.kv_heads < 1 or (heads >= 1 and heads % self.kv_heads):
            errors.append(
                f"num_key_value_heads={self.kv_heads} must divide num_attention_heads={heads}"
            )
        if heads >= 1 and self.rotary_dim % 2:
            errors.append(f"the rotary dimension {self.rotary_dim} must be even")
        if self.hidden_act not in ACTIVATIONS:
            errors.append(f"hidden_act={self.hidden_act!r} is not one of {', '.join(ACTIVATIONS)}")
        for key in ("param_dtype", "compute_dtype"):
            if getattr(self, key) not in DTYPES:
                errors.append(f"{key}={getattr(self, key)!r} is not one of {', '.join(DTYPES)}")
        errors += self.family_problems()
        if errors:
            raise ValueError(f"{self.family} model: " + "; ".join(errors))

    def family_problems(self) -> list[str]:
        return []

    def validate_vocabulary(self, vocab_size: int) -> None:
        if vocab_size > self.vocab_size:
            raise ValueError(
                f"vocab_size={self.vocab_size} is smaller than the tokenizer's {vocab_size} tokens"
            )

    def create(self, vocab_size: int, seed: int) -> nnx.Module:
        """The model; its embedding has ``self.vocab_size`` rows (``vocab_size``, the
        tokenizer's, must not exceed it)."""
        from flax import nnx

        from xpm_train.models.decoder import Decoder

        validate(self)
        self.validate_vocabulary(vocab_size)
        with nnx.use_eager_sharding(False):
            return Decoder(self, rngs=nnx.Rngs(params=seed))


class GroupedQueryConfig(DecoderConfig):
    """RMSNorm, gated SiLU MLP, grouped-query attention, rotary positions with optional
    llama3 scaling: what llama and qwen2 share."""

    num_key_value_heads: Param[int | None] = field(default=None)
    """Key/value heads of grouped-query attention (default: num_attention_heads)"""
    rope_scaling: Param[dict[str, float] | None] = field(default=None)
    """llama3 rope scaling: factor, low_freq_factor, high_freq_factor,
    original_max_position_embeddings"""

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    def rope_scaling_factors(self) -> dict[str, float] | None:
        return self.rope_scaling

    def family_problems(self) -> list[str]:
        if self.rope_scaling is None:
            return []
        missing = [key for key in LLAMA3_SCALING if key not in self.rope_scaling]
        extra = [key for key in self.rope_scaling if key not in LLAMA3_SCALING]
        if not missing and not extra:
            return []
        return [
            f"rope_scaling needs exactly the llama3 keys {', '.join(LLAMA3_SCALING)}"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + (f" (unknown {', '.join(extra)})" if extra else "")
        ]


@register("model", "llama")
class LlamaConfig(GroupedQueryConfig):
    """The llama family (Llama 2/3, TinyLlama; Mistral without sliding windows)."""

    attention_bias: Param[bool] = field(default=False)
    """Biases on the q/k/v and output projections"""
    mlp_bias: Param[bool] = field(default=False)

    family = "llama"

    def biases(self) -> tuple[bool, bool, bool]:
        return (self.attention_bias, self.attention_bias, self.mlp_bias)


@register("model", "qwen2")
class Qwen2Config(GroupedQueryConfig):
    """The qwen2 family: llama's structure with biases on the q/k/v projections."""

    family = "qwen2"

    def biases(self) -> tuple[bool, bool, bool]:
        return (True, False, False)


@register("model", "gpt_neox")
class GPTNeoXConfig(DecoderConfig):
    """The gpt_neox family (Pythia): LayerNorm with bias, GELU MLP with biases, partial
    rotary, parallel or sequential residual."""

    rotary_pct: Param[float] = field(default=0.25)
    """Fraction of each head's dimensions that are rotated"""
    use_parallel_residual: Param[bool] = field(default=True)
    """x + attn(ln1(x)) + mlp(ln2(x)) instead of the sequential residual"""
    hidden_act: Param[str] = field(default="gelu", overrides=True)
    norm_eps: Param[float] = field(default=1e-5, overrides=True)

    family = "gpt_neox"
    layer_norm = True
    gated_mlp = False

    @property
    def rotary_dim(self) -> int:
        return int(self.head_size * self.rotary_pct)

    def biases(self) -> tuple[bool, bool, bool]:
        return (True, True, True)

    @property
    def parallel_residual(self) -> bool:
        return self.use_parallel_residual

    def family_problems(self) -> list[str]:
        if not 0.0 < self.rotary_pct <= 1.0:
            return [f"rotary_pct={self.rotary_pct} must be in (0, 1]"]
        return []
