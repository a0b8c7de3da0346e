"""A decoder-only transformer in flax.nnx.

Parameters carry partitioning metadata over the mesh axes ``data`` and ``model`` (tensor
parallel over attention heads and MLP hidden units); the training state is created sharded from
it. Calling the model with ``rngs`` enables dropout; without, it is deterministic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from xpm_train.models import fast_ops
from xpm_train.models.config import TransformerConfig

MODEL_AXIS = "model"


def _init(initializer: nnx.Initializer, *axes: str | None) -> nnx.Initializer:
    return nnx.with_partitioning(initializer, axes)


class LayerNorm(nnx.LayerNorm):
    """``nnx.LayerNorm`` (same parameters), with a custom-VJP fast path when it has no bias."""

    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
        if fast_ops.enabled() and self.bias is None and self.scale is not None and mask is None:
            y = fast_ops.layer_norm(x, self.scale[...], self.epsilon)
            return y.astype(self.dtype or x.dtype)
        return super().__call__(x, mask=mask)


class Linear(nnx.Linear):
    """``nnx.Linear`` (same parameters), with a custom-VJP fast path when it has no bias."""

    def __call__(self, x: jax.Array, out_sharding: object = None) -> jax.Array:
        plain = (
            self.bias is not None
            or self.precision is not None
            or self.preferred_element_type is not None
            or out_sharding is not None
        )
        if fast_ops.enabled() and not plain:
            kernel = self.kernel[...]
            dtype = self.dtype or jnp.result_type(x, kernel)
            return fast_ops.linear(x.astype(dtype), kernel.astype(dtype))
        return super().__call__(x, out_sharding=out_sharding)


def _norm(config: TransformerConfig, dim: int, rngs: nnx.Rngs) -> nnx.Module:
    if config.norm == "rmsnorm":
        return nnx.RMSNorm(dim, epsilon=config.norm_eps, rngs=rngs, **_dtypes(config))
    return LayerNorm(
        dim, epsilon=config.norm_eps, use_bias=config.use_bias, rngs=rngs, **_dtypes(config)
    )


def _dtypes(config: TransformerConfig) -> dict[str, jnp.dtype]:
    return {"dtype": jnp.dtype(config.compute_dtype), "param_dtype": jnp.dtype(config.param_dtype)}


def _linear(
    config: TransformerConfig,
    d_in: int,
    d_out: int,
    axes: tuple[str | None, str | None],
    rngs: nnx.Rngs,
    std: float = 0.02,
) -> Linear:
    return Linear(
        d_in,
        d_out,
        use_bias=config.use_bias,
        **_dtypes(config),
        kernel_init=_init(nnx.initializers.normal(std), *axes),
        bias_init=_init(nnx.initializers.zeros_init(), axes[1]),
        rngs=rngs,
    )


def apply_rope(x: jax.Array, base: float) -> jax.Array:
    """Rotary position embedding of ``x`` shaped (batch, time, heads, head_dim)."""
    seq_len, head_dim = x.shape[1], x.shape[-1]
    half = head_dim // 2
    inv_freq = 1.0 / (base ** (jnp.arange(half, dtype=jnp.float32) / half))
    angles = jnp.arange(seq_len, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    sin = jnp.sin(angles)[None, :, None, :].astype(x.dtype)
    cos = jnp.cos(angles)[None, :, None, :].astype(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


class CausalSelfAttention(nnx.Module):
    def __init__(self, config: TransformerConfig, rngs: nnx.Rngs):
        d = config.d_model
        self.config = config
        self.qkv = _linear(config, d, 3 * d, (None, MODEL_AXIS), rngs)
        residual_std = 0.02 / (2 * config.n_layers) ** 0.5
        self.out = _linear(config, d, d, (MODEL_AXIS, None), rngs, residual_std)
        self.dropout = nnx.Dropout(config.dropout)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        batch, seq_len, d = x.shape
        heads = self.config.n_heads
        q, k, v = jnp.split(self.qkv(x).reshape(batch, seq_len, 3 * heads, d // heads), 3, axis=2)
        if self.config.positions == "rope":
            q, k = apply_rope(q, self.config.rope_base), apply_rope(k, self.config.rope_base)
        if fast_ops.enabled():
            y = fast_ops.causal_attention(q, k, v)
        else:
            y = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        y = self.out(y.reshape(batch, seq_len, d))
        return self.dropout(y, deterministic=rngs is None, rngs=rngs)


class MLP(nnx.Module):
    def __init__(self, config: TransformerConfig, rngs: nnx.Rngs):
        hidden = config.mlp_ratio * config.d_model
        self.up = _linear(config, config.d_model, hidden, (None, MODEL_AXIS), rngs)
        self.down = _linear(
            config,
            hidden,
            config.d_model,
            (MODEL_AXIS, None),
            rngs,
            0.02 / (2 * config.n_layers) ** 0.5,
        )
        self.dropout = nnx.Dropout(config.dropout)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        if fast_ops.enabled() and self.up.bias is None and self.down.bias is None:
            dtype = self.up.dtype or x.dtype
            up, down = (layer.kernel[...].astype(dtype) for layer in (self.up, self.down))
            y = fast_ops.gelu_mlp(x.astype(dtype), up, down)
        else:
            y = self.down(jax.nn.gelu(self.up(x), approximate=False))
        return self.dropout(y, deterministic=rngs is None, rngs=rngs)


class Block(nnx.Module):
    def __init__(self, config: TransformerConfig, rngs: nnx.Rngs):
        self.attn_norm = _norm(config, config.d_model, rngs)
        self.attn = CausalSelfAttention(config, rngs)
        self.mlp_norm = _norm(config, config.d_model, rngs)
        self.mlp = MLP(config, rngs)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        x = x + self.attn(self.attn_norm(x), rngs)
        return x + self.mlp(self.mlp_norm(x), rngs)


class Transformer(nnx.Module):
    """Token ids (batch, time) -> float32 logits (batch, time, vocab)."""

    def __init__(self, config: TransformerConfig, vocab_size: int, rngs: nnx.Rngs):
        self.config = config
        dtypes = _dtypes(config)
        self.embed = nnx.Embed(
            vocab_size,
            config.d_model,
            rngs=rngs,
            embedding_init=_init(nnx.initializers.normal(0.02), None, MODEL_AXIS),
            **dtypes,
        )
        if config.positions == "learned":
            self.pos_embed = nnx.Embed(
                config.max_seq_len,
                config.d_model,
                rngs=rngs,
                embedding_init=_init(nnx.initializers.normal(0.02), None, MODEL_AXIS),
                **dtypes,
            )
        self.dropout = nnx.Dropout(config.dropout)
        self.blocks = nnx.List([Block(config, rngs) for _ in range(config.n_layers)])
        self.final_norm = _norm(config, config.d_model, rngs)
        if not config.tie_embeddings:
            self.lm_head = _linear(config, config.d_model, vocab_size, (MODEL_AXIS, None), rngs)

    def __call__(self, tokens: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        seq_len = tokens.shape[1]
        if seq_len > self.config.max_seq_len:
            raise ValueError(
                f"sequence length {seq_len} exceeds the model's max_seq_len "
                f"{self.config.max_seq_len}"
            )
        x = self.embed(tokens)
        if self.config.positions == "learned":
            x = x + self.pos_embed(jnp.arange(seq_len))[None]
        x = self.dropout(x, deterministic=rngs is None, rngs=rngs)
        for block in self.blocks:
            x = block(x, rngs)
        x = self.final_norm(x)
        logits = self.embed.attend(x) if self.config.tie_embeddings else self.lm_head(x)
        return logits.astype(jnp.float32)
