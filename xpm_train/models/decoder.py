"""The llama, qwen2 and gpt_neox decoders in flax.nnx: one module, the family's structure
read from its configuration (:mod:`xpm_train.models.families`).

The parameters have the same partitioning metadata as the own transformer (tensor parallel
over heads and MLP hidden units on the ``model`` axis) and the same call: token ids (batch,
time) -> float32 logits. ``attention_mask`` (1 for tokens, 0 for padding) masks padded keys
as transformers does; positions are 0..T-1 in every row.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from xpm_train.models import fast_ops
from xpm_train.models.families import DecoderConfig
from xpm_train.models.transformer import MODEL_AXIS, Linear

_ACTIVATIONS = {
    "silu": jax.nn.silu,
    "gelu": fast_ops.gelu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def _dtypes(config: DecoderConfig) -> dict[str, jnp.dtype]:
    return {"dtype": jnp.dtype(config.compute_dtype), "param_dtype": jnp.dtype(config.param_dtype)}


def _linear(
    config: DecoderConfig, d_in: int, d_out: int, sharded_input: bool, bias: bool, rngs: nnx.Rngs
) -> Linear:
    axes = (MODEL_AXIS, None) if sharded_input else (None, MODEL_AXIS)
    return Linear(
        d_in,
        d_out,
        use_bias=bias,
        kernel_init=nnx.with_partitioning(nnx.initializers.normal(0.02), axes),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (axes[1],)),
        rngs=rngs,
        **_dtypes(config),
    )


def _norm(config: DecoderConfig, rngs: nnx.Rngs) -> nnx.Module:
    if config.layer_norm:
        return nnx.LayerNorm(
            config.hidden_size, epsilon=config.norm_eps, rngs=rngs, **_dtypes(config)
        )
    return nnx.RMSNorm(config.hidden_size, epsilon=config.norm_eps, rngs=rngs, **_dtypes(config))


def inverse_frequencies(config: DecoderConfig) -> jax.Array:
    """Rotary inverse frequencies, with the llama3 scaling when the config has one."""
    dim = config.rotary_dim
    inv_freq = 1.0 / (config.rope_theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
    scaling = config.rope_scaling_factors()
    if scaling is None:
        return inv_freq
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = jnp.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_context / high) & (wavelen <= old_context / low)
    return jnp.where(medium, smoothed, scaled)


def apply_rotary(x: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotate the first ``2 * len(inv_freq)`` features of each head of ``x`` (batch, time,
    heads, head_dim) by position, in transformers' half-split layout."""
    rotary = 2 * inv_freq.shape[0]
    angles = jnp.arange(x.shape[1], dtype=jnp.float32)[:, None] * inv_freq[None, :]
    angles = jnp.concatenate([angles, angles], axis=-1)[None, :, None, :]
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    rotated, passed = x[..., :rotary], x[..., rotary:]
    half = rotary // 2
    turned = jnp.concatenate([-rotated[..., half:], rotated[..., :half]], axis=-1)
    return jnp.concatenate([rotated * cos + turned * sin, passed], axis=-1)


class Attention(nnx.Module):
    def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
        self.config = config
        heads, kv_heads, size = config.num_attention_heads, config.kv_heads, config.head_size
        qkv_bias, out_bias, _ = config.biases()
        d = config.hidden_size
        self.q = _linear(config, d, heads * size, False, qkv_bias, rngs)
        self.k = _linear(config, d, kv_heads * size, False, qkv_bias, rngs)
        self.v = _linear(config, d, kv_heads * size, False, qkv_bias, rngs)
        self.o = _linear(config, heads * size, d, True, out_bias, rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        batch, seq_len, _ = x.shape
        config = self.config
        size = config.head_size
        q = self.q(x).reshape(batch, seq_len, config.num_attention_heads, size)
        k = self.k(x).reshape(batch, seq_len, config.kv_heads, size)
        v = self.v(x).reshape(batch, seq_len, config.kv_heads, size)
        inv_freq = inverse_frequencies(config)
        q, k = apply_rotary(q, inv_freq), apply_rotary(k, inv_freq)
        if fast_ops.enabled() and mask is None:
            groups = config.num_attention_heads // config.kv_heads
            if groups > 1:
                k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
            y = fast_ops.causal_attention(q, k, v)
        else:
            y = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True)
        return self.o(y.reshape(batch, seq_len, -1))


class MLP(nnx.Module):
    def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
        d, hidden = config.hidden_size, config.intermediate_size
        bias = config.biases()[2]
        self.activation = config.hidden_act
        self.gate = _linear(config, d, hidden, False, bias, rngs) if config.gated_mlp else None
        self.up = _linear(config, d, hidden, False, bias, rngs)
        self.down = _linear(config, hidden, d, True, bias, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        activation = _ACTIVATIONS[self.activation]
        if self.gate is not None:
            return self.down(activation(self.gate(x)) * self.up(x))
        return self.down(activation(self.up(x)))


class Layer(nnx.Module):
    def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
        self.parallel = config.parallel_residual
        self.attn_norm = _norm(config, rngs)
        self.attn = Attention(config, rngs)
        self.mlp_norm = _norm(config, rngs)
        self.mlp = MLP(config, rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        attended = self.attn(self.attn_norm(x), mask)
        if self.parallel:
            return x + attended + self.mlp(self.mlp_norm(x))
        x = x + attended
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nnx.Module):
    """Token ids (batch, time) -> float32 logits (batch, time, vocab_size)."""

    def __init__(self, config: DecoderConfig, rngs: nnx.Rngs):
        self.config = config
        self.embed = nnx.Embed(
            config.vocab_size,
            config.hidden_size,
            rngs=rngs,
            embedding_init=nnx.with_partitioning(nnx.initializers.normal(0.02), (None, MODEL_AXIS)),
            **_dtypes(config),
        )
        self.layers = nnx.List([Layer(config, rngs) for _ in range(config.num_hidden_layers)])
        self.final_norm = _norm(config, rngs)
        if not config.tie_embeddings:
            self.lm_head = _linear(config, config.hidden_size, config.vocab_size, True, False, rngs)

    def __call__(
        self,
        tokens: jax.Array,
        rngs: nnx.Rngs | None = None,
        attention_mask: jax.Array | None = None,
    ) -> jax.Array:
        seq_len = tokens.shape[1]
        if seq_len > self.config.max_seq_len:
            raise ValueError(
                f"sequence length {seq_len} exceeds the model's max_seq_len "
                f"{self.config.max_seq_len}"
            )
        mask = None
        if attention_mask is not None:  # (batch, 1, query, key): padded keys are masked
            mask = attention_mask.astype(bool)[:, None, None, :]
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_norm(x)
        logits = self.embed.attend(x) if self.config.tie_embeddings else self.lm_head(x)
        return logits.astype(jnp.float32)
