"""The custom-VJP ops compute what the plain model code computes, gradients included."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xpm_train.models import fast_ops, native
from xpm_train.models.transformer import Linear

from .support.tiny import tiny_components, train_setup


def _random(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, jnp.float32)


def _check_vjp(fast, plain, args: tuple, rtol: float = 1e-5) -> None:
    """Same values, and the same gradients of a random projection of the output."""
    out = plain(*args)
    np.testing.assert_allclose(fast(*args), out, rtol=rtol, atol=1e-6)
    cotangent = _random(out.shape, 99)
    argnums = tuple(range(len(args)))
    expected = jax.grad(lambda *a: jnp.sum(plain(*a) * cotangent), argnums)(*args)
    got = jax.jit(jax.grad(lambda *a: jnp.sum(fast(*a) * cotangent), argnums))(*args)
    for e, g in zip(expected, got, strict=True):
        scale = max(float(jnp.max(jnp.abs(e))), 0.1)  # some gradients are exactly 0
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * scale)


def test_linear_matches_a_matmul():
    x, w = _random((3, 16, 32), 0), _random((32, 48), 1, 0.1)
    _check_vjp(fast_ops.linear, lambda x, w: x @ w, (x, w))


def test_linear_module_takes_the_fast_path_only_without_bias():
    x = _random((2, 8, 16), 0)
    for use_bias in (False, True):
        layer = Linear(16, 24, use_bias=use_bias, rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(layer, nnx.Param)
        with fast_ops.use_fast_ops(False):
            expected = nnx.merge(graphdef, params)(x)
        np.testing.assert_allclose(nnx.merge(graphdef, params)(x), expected, rtol=1e-6)
        jaxpr = str(jax.make_jaxpr(lambda p, g=graphdef: nnx.merge(g, p)(x))(params))
        assert ("custom_vjp_call" in jaxpr) == (not use_bias)


def test_gelu_mlp_matches_plain_mlp():
    x, up, down = _random((3, 16, 32), 0), _random((32, 128), 1, 0.1), _random((128, 32), 2, 0.1)

    def plain(x, up, down):
        return jax.nn.gelu(x @ up, approximate=False) @ down

    _check_vjp(fast_ops.gelu_mlp, plain, (x, up, down))


def test_gelu_and_its_derivative():
    h = jnp.linspace(-6.0, 6.0, 101)
    # 1 + erf(h / sqrt(2)) cancels for very negative h in float32 (as in PyTorch): an absolute
    # error below 1e-6 where jax.nn.gelu's erfc keeps a relative precision.
    expected = jax.nn.gelu(h, approximate=False)
    value, slope = fast_ops.gelu_and_grad(h)
    np.testing.assert_allclose(fast_ops.gelu(h), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)
    expected = jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(h)
    np.testing.assert_allclose(slope, expected, rtol=1e-5, atol=1e-7)


def _plain_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    return jax.nn.dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize("seq_len", [1, 16, 33, 128, 130])
def test_causal_attention_matches_dot_product_attention(seq_len):
    q, k, v = (_random((2, seq_len, 4, 8), seed) for seed in range(3))
    _check_vjp(fast_ops.xla_attention, _plain_attention, (q, k, v))


@pytest.mark.parametrize(
    "shape", [(2, 1, 3, 16), (2, 37, 3, 32), (1, 130, 2, 16), (3, 64, 2, 64), (1, 97, 1, 80)]
)
def test_native_attention_matches_dot_product_attention(shape):
    assert native.kernel().available, native.kernel().detail
    q, k, v = (_random(shape, seed) for seed in range(3))
    jaxpr = str(jax.make_jaxpr(fast_ops.causal_attention)(q, k, v))
    assert native.FORWARD in jaxpr  # the kernel runs, not the JAX code
    _check_vjp(fast_ops.causal_attention, _plain_attention, (q, k, v))


def test_attention_keeps_the_jax_code_where_the_kernel_does_not_apply():
    for q in (_random((2, 8, 2, 8), 0), _random((2, 8, 2, 16), 0).astype(jnp.bfloat16)):
        assert native.FORWARD not in str(jax.make_jaxpr(fast_ops.causal_attention)(q, q, q))


KERNEL_STATUS = """
import warnings
from xpm_train.models import fast_ops, native
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    kernel = native.kernel()
print("AVAILABLE", kernel.available, "|", kernel.describe(), "|", [str(w.message) for w in caught])
"""


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"CXX": "no-such-compiler"}, "no C++ compiler 'no-such-compiler'"),
        ({native.ENV_VAR: "0"}, "off: XPM_TRAIN_NATIVE_ATTENTION=0"),
    ],
)
def test_without_the_kernel_the_jax_code_runs(tmp_path, env, expected):
    env = {**os.environ, native.CACHE_VAR: str(tmp_path), **env}
    done = subprocess.run(
        [sys.executable, "-c", KERNEL_STATUS], env=env, capture_output=True, text=True, check=True
    )
    assert "AVAILABLE False" in done.stdout and expected in done.stdout
    assert ("Install a C++ compiler" in done.stdout) == ("CXX" in env)
    assert not list(tmp_path.iterdir())


def test_kernel_is_built_once_into_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(native.CACHE_VAR, str(tmp_path))
    path = native.build()
    assert path.parent == tmp_path and path.suffix == ".so"
    built = path.stat().st_mtime_ns
    assert native.build() == path and path.stat().st_mtime_ns == built
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left


def test_layer_norm_matches_nnx_layer_norm():
    x = _random((3, 16, 32), 0, 2.0) + 0.5
    scale = _random((32,), 1) + 1.0
    norm = nnx.LayerNorm(32, use_bias=False, epsilon=1e-5, rngs=nnx.Rngs(0))
    graphdef, _ = nnx.split(norm, nnx.Param)

    def plain(x, scale):
        return nnx.merge(graphdef, {"scale": scale})(x)

    _check_vjp(lambda x, s: fast_ops.layer_norm(x, s, 1e-5), plain, (x, scale))


def test_bfloat16_compute_keeps_its_dtype():
    x = _random((2, 8, 16), 0).astype(jnp.bfloat16)
    up, down = _random((16, 64), 1, 0.1), _random((64, 16), 2, 0.1)
    y, grads = jax.value_and_grad(
        lambda x, u, d: jnp.sum(fast_ops.gelu_mlp(x, u, d).astype(jnp.float32)), (0, 1, 2)
    )(x, up.astype(jnp.bfloat16), down.astype(jnp.bfloat16))
    assert {g.dtype for g in grads} == {jnp.dtype(jnp.bfloat16)}
    q = _random((2, 8, 2, 8), 3).astype(jnp.bfloat16)
    assert fast_ops.causal_attention(q, q, q).dtype == jnp.bfloat16
    assert fast_ops.layer_norm(x, jnp.ones(16), 1e-5).dtype == jnp.bfloat16


def test_switch_turns_the_fast_path_off():
    assert fast_ops.enabled()
    with fast_ops.use_fast_ops(False):
        assert not fast_ops.enabled()
    assert fast_ops.enabled()


def _train_losses(fast: bool, steps: int) -> list[float]:
    """Losses of ``steps`` nanoGPT-style training steps (same init, same batches)."""
    wider = {"d_model": 64, "n_layers": 2, "n_heads": 4, "positions": "learned", "norm_eps": 1e-5}
    parts = tiny_components(model=wider, optimizer={"b2": 0.99})
    tx = parts["optimizer"].build(lambda step: 1e-3)
    setup = train_setup(lambda: parts["model"].create(65, seed=0), tx)
    state = setup.state
    with fast_ops.use_fast_ops(fast):
        step = setup.jitted_step(1e-3)
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(steps):
            tokens = rng.integers(0, 65, (1, 8, 33)).astype(np.int32)
            batch = {"tokens": tokens, "mask": np.ones((1, 8, 32), np.float32)}
            state, metrics = step(state, batch, None)
            losses.append(float(metrics["loss"]))
    return losses


def test_fifty_training_steps_give_the_loss_of_the_plain_step():
    fast, plain = _train_losses(True, 50), _train_losses(False, 50)
    assert plain[-1] < plain[0]
    np.testing.assert_allclose(fast, plain, rtol=1e-4)
