import jax
import numpy as np
import optax

from .support.tiny import model_factory, tiny_components, train_setup


def _setup(tx=None):
    parts = tiny_components()
    setup = train_setup(model_factory(parts), tx or parts["optimizer"].build(lambda step: 1e-2))
    return setup.state, setup.jitted_step(1e-2)


def _batch(accum: int, tokens: np.ndarray) -> dict:
    tokens = tokens.reshape(accum, -1, tokens.shape[-1])
    return {"tokens": tokens, "mask": np.ones(tokens[..., 1:].shape, np.float32)}


def test_gradient_accumulation_gives_the_same_update():
    # SGD with lr 1: the update is the gradient itself (Adam's first step is ~sign(g), which
    # would magnify float noise on near-zero gradients).
    state, step = _setup(optax.sgd(1.0))
    tokens = np.random.default_rng(0).integers(0, 256, (8, 17)).astype(np.int32)
    one, metrics_one = step(state, _batch(1, tokens), None)
    four, metrics_four = step(state, _batch(4, tokens), None)
    np.testing.assert_allclose(metrics_one["loss"], metrics_four["loss"], rtol=1e-6)
    np.testing.assert_allclose(metrics_one["grad_norm"], metrics_four["grad_norm"], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), one.params, four.params)
    assert int(one.step) == int(four.step) == 1


def test_masked_tokens_do_not_count():
    state, step = _setup()
    tokens = np.random.default_rng(1).integers(0, 256, (4, 17)).astype(np.int32)
    batch = _batch(1, tokens)
    batch["mask"][0, 2:] = 0.0
    changed = {"tokens": batch["tokens"].copy(), "mask": batch["mask"]}
    changed["tokens"][0, 2, 5:] = 7
    _, a = step(state, batch, None)
    _, b = step(state, changed, None)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
