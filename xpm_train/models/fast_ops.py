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
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp

from xpm_train.models import native
from xpm_train.switches import is_on

ENV_VAR = "XPM_TRAIN_FAST_OPS"
_enabled = [is_on(ENV_VAR)]


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
def linear(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` without a bias. Autodiff of a 3-d ``x`` contracts two leading dimensions for
    the weight gradient, and XLA:CPU then copies the gradient transposed first; this one's
    weight gradient is :func:`_weight_grad` (``baby`` training step 2-4% faster)."""
    return x @ w


def _linear_fwd(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return x @ w, (x, w)


def _linear_bwd(
    residuals: tuple[jax.Array, jax.Array], g: jax.Array
) -> tuple[jax.Array, jax.Array]:
    x, w = residuals
    return _input_grad(g, w).astype(x.dtype), _weight_grad(x, g, w.dtype)


linear.defvjp(_linear_fwd, _linear_bwd)


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


#: Sequences at least this long are split into two query blocks, the first of which skips the
#: (masked) second half of the keys: a quarter of the attention matmuls.
CAUSAL_SPLIT_LEN = 128


def _query_blocks(seq_len: int) -> list[tuple[int, int]]:
    """(start, end) of each query block; block ``i`` attends to keys ``[0, end)``."""
    if seq_len < CAUSAL_SPLIT_LEN or seq_len % 2:
        return [(0, seq_len)]
    half = seq_len // 2
    return [(0, half), (half, seq_len)]


def _block_probs(q: jax.Array, k: jax.Array, start: int) -> jax.Array:
    """Causal softmax weights (batch, heads, query, key) in float32 of a query block starting
    at ``start`` over its keys, as ``jax.nn.dot_product_attention`` computes them.

    The scale multiplies ``q`` (smaller than the logits) and the mask is added, not
    selected: XLA:CPU then runs the logits' dot, the softmax and the next dot as one YNNPACK
    fusion (``select`` has no YNNPACK kernel): the attention alone on ``baby`` shapes runs
    1.3x faster."""
    scale = jnp.asarray(1.0 / math.sqrt(q.shape[-1]), q.dtype)
    logits = jnp.einsum("bhtd,bhsd->bhts", q * scale, k)
    mask = jnp.tril(jnp.ones((q.shape[2], k.shape[2]), dtype=bool), start)
    large_negative = jnp.asarray(-0.7 * jnp.finfo(logits.dtype).max, logits.dtype)
    bias = jnp.where(mask, jnp.asarray(0, logits.dtype), large_negative)
    logits = (logits + bias).astype(jnp.float32)
    exp = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    return exp / jnp.sum(exp, axis=-1, keepdims=True)


def _heads_first(x: jax.Array) -> jax.Array:
    return x.transpose(0, 2, 1, 3)


def _attention_fwd(
    q: jax.Array, k: jax.Array, v: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    qh, kh, vh = _heads_first(q), _heads_first(k), _heads_first(v)
    outs, probs = [], []
    for start, end in _query_blocks(q.shape[1]):
        p = _block_probs(qh[:, :, start:end], kh[:, :, :end], start).astype(v.dtype)
        outs.append(jnp.einsum("bhts,bhsd->bhtd", p, vh[:, :, :end]))
        probs.append(p)
    out = jnp.concatenate(outs, axis=2) if len(outs) > 1 else outs[0]
    return _heads_first(out), (qh, kh, vh, tuple(probs), tuple(outs))


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Causal softmax attention of ``q, k, v`` shaped (batch, time, heads, head_dim): the C++
    kernel of :mod:`xpm_train.models.native` where it applies, else :func:`xla_attention`."""
    if _native_applies(q, k, v):
        return native_attention(q, k, v)
    return xla_attention(q, k, v)


def _native_applies(q: jax.Array, k: jax.Array, v: jax.Array) -> bool:
    """float32 heads of a multiple of 16 features, on one device (the custom call is not
    partitioned: on a mesh of several devices the JAX code runs)."""
    return (
        all(x.dtype == jnp.float32 and x.shape == q.shape for x in (q, k, v))
        and q.ndim == 4
        and q.shape[-1] % native.VECTOR_FLOATS == 0
        and jax.device_count() == 1
        and native.kernel().available
    )


@jax.custom_vjp
def native_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    return _native_fwd(q, k, v)[0]


def _native_fwd(
    q: jax.Array, k: jax.Array, v: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    batch, seq_len, heads, _ = q.shape
    padded = -(-seq_len // native.VECTOR_FLOATS) * native.VECTOR_FLOATS
    out, probs = jax.ffi.ffi_call(
        native.FORWARD,
        (
            jax.ShapeDtypeStruct(q.shape, jnp.float32),
            jax.ShapeDtypeStruct((batch, heads, seq_len, padded), jnp.float32),
        ),
        vmap_method="sequential",
    )(q, k, v)
    return out, (q, k, v, out, probs)


def _native_bwd(
    residuals: tuple[jax.Array, ...], g: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    q = residuals[0]
    shape = jax.ShapeDtypeStruct(q.shape, jnp.float32)
    return tuple(
        jax.ffi.ffi_call(native.BACKWARD, (shape, shape, shape), vmap_method="sequential")(
            *residuals, g.astype(jnp.float32)
        )
    )


native_attention.defvjp(_native_fwd, _native_bwd)


@jax.custom_vjp
def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """:func:`causal_attention` in JAX, for any dtype and mesh."""
    return _attention_fwd(q, k, v)[0]


def _attention_bwd(
    residuals: tuple[jax.Array, ...], g: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Everything per query block, the residuals included: XLA:CPU then fuses each block's
    ``ds`` (and its ``delta``) into the YNNPACK fusion of the product that gives ``dp``, where a
    slice of a whole-sequence ``delta`` kept it a separate pass (``baby`` step 2-4 % faster)."""
    qh, kh, vh, probs, outs = residuals
    scale = 1.0 / math.sqrt(qh.shape[-1])
    gh = _heads_first(g)
    blocks = list(zip(_query_blocks(qh.shape[2]), probs, outs, strict=True))
    dq, dk, dv = [], None, None
    # The last block sees every key: its contributions start dk and dv, the others add to them.
    for (start, end), p, out in reversed(blocks):
        g_block = gh[:, :, start:end]
        # sum_s p_ts dp_ts = sum_d g_td out_td (FlashAttention's delta), per (batch, head, query)
        delta = jnp.sum((g_block * out).astype(jnp.float32), axis=-1, keepdims=True)
        dp = jnp.einsum("bhtd,bhsd->bhts", g_block, vh[:, :, :end]).astype(jnp.float32)
        ds = (p.astype(jnp.float32) * (dp - delta) * scale).astype(qh.dtype)
        dq.insert(0, jnp.einsum("bhts,bhsd->bhtd", ds, kh[:, :, :end]))
        dk_block = jnp.einsum("bhts,bhtd->bhsd", ds, qh[:, :, start:end])
        dv_block = jnp.einsum("bhts,bhtd->bhsd", p, g_block)
        dk = dk_block if dk is None else dk.at[:, :, :end].add(dk_block)
        dv = dv_block if dv is None else dv.at[:, :, :end].add(dv_block)
    dq = jnp.concatenate(dq, axis=2) if len(dq) > 1 else dq[0]
    return _heads_first(dq), _heads_first(dk), _heads_first(dv)


xla_attention.defvjp(_attention_fwd, _attention_bwd)


def _layer_norm_stats(x: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
    """Mean and reciprocal standard deviation over the last axis, in float32, with flax's
    fast variance (E[x^2] - E[x]^2, clipped at 0)."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.maximum(0.0, jnp.mean(x * x, axis=-1, keepdims=True) - mean * mean)
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
    dscale = jnp.sum(_rows(g * xhat), axis=0).astype(scale.dtype)
    dxhat = g * scale.astype(jnp.float32)
    dx = rstd * (
        dxhat
        - jnp.mean(dxhat, axis=-1, keepdims=True)
        - xhat * jnp.mean(dxhat * xhat, axis=-1, keepdims=True)
    )
    return dx.astype(x.dtype), dscale


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)
