"""Custom-VJP versions of the transformer's hot paths, written for XLA:CPU.

Each op computes the same function as the plain code of :mod:`xpm_train.models.transformer`;
only the backward graph differs: activation gradients are computed once, in the layout of the
forward activations, and every weight gradient is one ``dot_general`` contracting the leading
(token) dimension of both operands, which XLA:CPU runs without a transposed copy.

The model takes these paths on the CPU backend, unless ``XPM_TRAIN_FAST_OPS=0`` is set in the
environment or the code runs under ``use_fast_ops(False)``; the choice is made when a function
is traced. On GPU the plain code runs (XLA:GPU lays dots out well and
``jax.nn.dot_product_attention`` uses cuDNN's fused attention there).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp

ENV_VAR = "XPM_TRAIN_FAST_OPS"
_enabled = [os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")]


def enabled() -> bool:
    """Whether the model uses the custom-VJP ops (read when a function is traced)."""
    return _enabled[-1] and jax.default_backend() == "cpu"


@contextmanager
def use_fast_ops(on: bool) -> Iterator[None]:
    """Trace the model with (``on``) or without the fast ops inside this block."""
    _enabled.append(on)
    try:
        yield
    finally:
        _enabled.pop()


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Contract dimension 0 of two 2-d arrays: (n, i) x (n, o) -> (i, o), a weight gradient.
_TOKENS = (((0,), (0,)), ((), ()))
# Contract the last dimension of both: (n, o) x (i, o) -> (n, i), an input gradient.
_LAST = (((1,), (1,)), ((), ()))


def gelu(h: jax.Array) -> jax.Array:
    """Exact GELU, ``h Phi(h)`` with ``Phi(h) = (1 + erf(h / sqrt(2))) / 2`` (as PyTorch writes
    it; ``jax.nn.gelu`` uses ``erfc``, which XLA:CPU expands into several loops)."""
    return h * ((jax.lax.erf(h * _SQRT_HALF) + 1) * 0.5)


def gelu_and_grad(h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``gelu(h)`` and its derivative ``Phi(h) + h phi(h)``, in one pass."""
    cdf = (jax.lax.erf(h * _SQRT_HALF) + 1) * 0.5
    return h * cdf, cdf + h * (_INV_SQRT_2PI * jnp.exp(-0.5 * h * h))


def _rows(x: jax.Array) -> jax.Array:
    return x.reshape(-1, x.shape[-1])


def _weight_grad(x: jax.Array, g: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """x^T g over all leading dimensions (the weight gradient of ``x @ w``)."""
    return jax.lax.dot_general(_rows(x), _rows(g), _TOKENS).astype(dtype)


def _input_grad(g: jax.Array, w: jax.Array) -> jax.Array:
    """g w^T (the input gradient of ``x @ w``), shaped like ``x``."""
    out = jax.lax.dot_general(_rows(g), w.astype(g.dtype), _LAST)
    return out.reshape(*g.shape[:-1], w.shape[0])


@jax.custom_vjp
def gelu_mlp(x: jax.Array, w_up: jax.Array, w_down: jax.Array) -> jax.Array:
    """``gelu(x @ w_up) @ w_down`` without biases."""
    return gelu(x @ w_up) @ w_down


def _gelu_mlp_fwd(
    x: jax.Array, w_up: jax.Array, w_down: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    a, slope = gelu_and_grad(x @ w_up)
    return a @ w_down, (x, a, slope, w_up, w_down)


def _gelu_mlp_bwd(
    residuals: tuple[jax.Array, ...], g: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    x, a, slope, w_up, w_down = residuals
    dw_down = _weight_grad(a, g, w_down.dtype)
    dh = _input_grad(g, w_down) * slope
    dw_up = _weight_grad(x, dh, w_up.dtype)
    return _input_grad(dh, w_up).astype(x.dtype), dw_up, dw_down


gelu_mlp.defvjp(_gelu_mlp_fwd, _gelu_mlp_bwd)


def _row_sum(x: jax.Array) -> jax.Array:
    """Sum over the last axis (kept), as a matrix-vector product (see :func:`_row_mean`)."""
    ones = jnp.ones((x.shape[-1], 1), x.dtype)
    return jax.lax.dot_general(x, ones, (((x.ndim - 1,), (0,)), ((), ())))


def _causal_probs(q: jax.Array, k: jax.Array) -> jax.Array:
    """Softmax attention weights (batch, heads, query, key) in float32, as
    ``jax.nn.dot_product_attention(..., is_causal=True)`` computes them."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = jnp.einsum("bthd,bshd->bhts", q, k) * jnp.asarray(scale, q.dtype)
    seq_len = q.shape[1]
    mask = jnp.tril(jnp.ones((seq_len, seq_len), dtype=bool))
    large_negative = jnp.asarray(-0.7 * jnp.finfo(logits.dtype).max, logits.dtype)
    logits = jnp.where(mask, logits, large_negative).astype(jnp.float32)
    exp = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    return exp / _row_sum(exp)


@jax.custom_vjp
def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Causal softmax attention of ``q, k, v`` shaped (batch, time, heads, head_dim)."""
    return jnp.einsum("bhts,bshd->bthd", _causal_probs(q, k).astype(v.dtype), v)


def _attention_fwd(
    q: jax.Array, k: jax.Array, v: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    probs = _causal_probs(q, k).astype(v.dtype)
    out = jnp.einsum("bhts,bshd->bthd", probs, v)
    return out, (q, k, v, probs, out)


def _attention_bwd(
    residuals: tuple[jax.Array, ...], g: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    q, k, v, probs, out = residuals
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = jnp.einsum("bhts,bthd->bshd", probs, g)
    dprobs = jnp.einsum("bthd,bshd->bhts", g, v).astype(jnp.float32)
    # sum_s p_ts dp_ts = sum_d g_td out_td (FlashAttention's delta), per (batch, time, head)
    delta = _row_sum((g * out).astype(jnp.float32))[..., 0].transpose(0, 2, 1)[..., None]
    dlogits = (probs.astype(jnp.float32) * (dprobs - delta) * scale).astype(q.dtype)
    dq = jnp.einsum("bhts,bshd->bthd", dlogits, k)
    dk = jnp.einsum("bhts,bthd->bshd", dlogits, q)
    return dq, dk, dv


causal_attention.defvjp(_attention_fwd, _attention_bwd)


def _row_mean(x: jax.Array) -> jax.Array:
    """Mean over the last axis (kept), as a matrix-vector product: XLA:CPU splits a plain
    reduction over more than 32 elements into a slow reduce-window loop."""
    weights = jnp.full((x.shape[-1], 1), 1.0 / x.shape[-1], x.dtype)
    return jax.lax.dot_general(x, weights, (((x.ndim - 1,), (0,)), ((), ())))


def _layer_norm_stats(x: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """Mean and reciprocal standard deviation over the last axis, in float32, with flax's
    fast variance (E[x^2] - E[x]^2, clipped at 0)."""
    x = x.astype(jnp.float32)
    mean = _row_mean(x)
    var = jnp.maximum(0.0, _row_mean(x * x) - mean * mean)
    return mean, jax.lax.rsqrt(var + eps)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def layer_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis with a scale and no bias (``nnx.LayerNorm``,
    ``use_bias=False``); the result has the type of ``x``."""
    mean, rstd = _layer_norm_stats(x, eps)
    return ((x - mean) * (rstd * scale)).astype(x.dtype)


def _layer_norm_fwd(
    x: jax.Array, scale: jax.Array, eps: float
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    mean, rstd = _layer_norm_stats(x, eps)
    return ((x - mean) * (rstd * scale)).astype(x.dtype), (x, mean, rstd, scale)


def _layer_norm_bwd(
    eps: float, residuals: tuple[jax.Array, ...], g: jax.Array
) -> tuple[jax.Array, jax.Array]:
    x, mean, rstd, scale = residuals
    xhat = (x.astype(jnp.float32) - mean) * rstd
    g = g.astype(jnp.float32)
    dscale = _row_sum(_rows(g * xhat).T)[:, 0].astype(scale.dtype)
    dxhat = g * scale.astype(jnp.float32)
    dx = rstd * (dxhat - _row_mean(dxhat) - xhat * _row_mean(dxhat * xhat))
    return dx.astype(x.dtype), dscale


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)
