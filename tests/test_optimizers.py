from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax.contrib import muon as optax_muon

from xpm_train.optim.groups import ParamGroup
from xpm_train.optim.optimizers import AdamW, Muon
from xpm_train.optim.schedules import Cosine

#: optax's (and Keller Jordan's) quintic Newton-Schulz coefficients.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def test_adamw_step_decays_matrices_only_and_matches_optax():
    params = {"kernel": jnp.ones((2, 3)), "scale": jnp.ones((3,))}
    grads = {"kernel": jnp.full((2, 3), 0.5), "scale": jnp.full((3,), 0.5)}
    tx = AdamW.C(weight_decay=0.1, clip_norm=0.0).instance().build(lambda step: 0.01)
    updates, _ = tx.update(grads, tx.init(params), params)
    adam_only = optax.adam(0.01, b1=0.9, b2=0.95, eps=1e-8)
    plain, _ = adam_only.update(grads, adam_only.init(params), params)
    np.testing.assert_allclose(updates["scale"], plain["scale"], rtol=1e-6)
    np.testing.assert_allclose(updates["kernel"], plain["kernel"] - 0.01 * 0.1, rtol=1e-6)


def test_global_norm_clipping_is_applied_first():
    params = {"w": jnp.zeros((2, 2))}
    big = {"w": jnp.full((2, 2), 100.0)}
    clipped = AdamW.C(clip_norm=1.0, weight_decay=0.0).instance().build(lambda step: 1.0)
    state = clipped.init(params)
    _, state = clipped.update(big, state, params)
    first_moment = state[1][0].mu["w"]
    np.testing.assert_allclose(np.linalg.norm(first_moment) / 0.1, 1.0, rtol=1e-5)


def newton_schulz(g: np.ndarray, steps: int = 5, eps: float = 1e-8) -> np.ndarray:
    """The reference: X <- a X + (b A + c A^2) X with A = X X^T, from X = G / ||G||_F, on the
    wide orientation of G."""
    a, b, c = NS_COEFFS
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / (np.linalg.norm(x) + eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def reference_muon(params, grads_by_step, lr, beta, weight_decay, nesterov=True):
    """Muon in NumPy, as optax documents it: bias-corrected (Nesterov) momentum, Newton-Schulz,
    times sqrt(max(1, fan_out / fan_in)), plus decoupled decay, times -lr."""
    w, mu = np.array(params, np.float64), np.zeros(params.shape)
    for t, g in enumerate(grads_by_step, start=1):
        g = np.array(g, np.float64)
        mu = beta * mu + (1 - beta) * g
        if nesterov:
            direction = beta * mu / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta**t)
        else:
            direction = mu / (1 - beta**t)
        fan_in, fan_out = w.shape
        update = newton_schulz(direction) * np.sqrt(max(1.0, fan_out / fan_in))
        w = w - lr * (update + weight_decay * w)
    return w


def applied(tx: optax.GradientTransformation, params: Any, gradients: list[Any]) -> Any:
    """``params`` after one update of ``tx`` per gradient."""
    state, current = tx.init(params), params
    for grads in gradients:
        updates, state = tx.update(grads, state, current)
        current = optax.apply_updates(current, updates)
    return current


def assert_trees_close(actual: Any, expected: Any) -> None:
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), actual, expected
    )


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_matches_a_numpy_newton_schulz_reference(nesterov):
    rng = np.random.default_rng(0)
    params = {
        "wide": {"kernel": jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)},
        "tall": {"kernel": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)},
    }
    steps = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)]
    steps.append(jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params))
    optimizer = Muon.C(weight_decay=0.1, momentum=0.9, nesterov=nesterov, clip_norm=0.0)
    current = applied(optimizer.instance().build(lambda step: 0.02), params, steps)
    for name in ("wide", "tall"):
        expected = reference_muon(
            params[name]["kernel"], [g[name]["kernel"] for g in steps], 0.02, 0.9, 0.1, nesterov
        )
        np.testing.assert_allclose(current[name]["kernel"], expected, rtol=2e-4, atol=2e-5)
    # The same update as optax.contrib.muon for matrices (its own muon transformation).
    reference = optax_muon(0.02, beta=0.9, weight_decay=0.1, nesterov=nesterov)
    assert_trees_close(current, applied(reference, params, steps))


def test_muon_sends_vectors_and_embeddings_to_adamw_with_their_own_lr():
    params = {
        "embed": {"embedding": jnp.ones((5, 4))},
        "attn": {"q": {"kernel": jnp.ones((4, 4))}},
        "attn_norm": {"scale": jnp.ones((4,))},
    }
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.3) + jnp.arange(p.shape[-1]) * 0.1, params)
    optimizer = Muon.C(adam_lr_scale=0.25, adam_weight_decay=0.2, clip_norm=0.0).instance()
    tx = optimizer.build(lambda step: 0.04)
    updates, _ = tx.update(grads, tx.init(params), params)
    adamw = optax.adamw(0.04 * 0.25, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.2)
    for path in (("embed", "embedding"), ("attn_norm", "scale")):
        leaf = params[path[0]][path[1]]
        expected, _ = adamw.update(grads[path[0]][path[1]], adamw.init(leaf), leaf)
        if leaf.ndim == 1:  # vectors: no decay
            adam = optax.adam(0.04 * 0.25, b1=0.9, b2=0.95, eps=1e-8)
            expected, _ = adam.update(grads[path[0]][path[1]], adam.init(leaf), leaf)
        np.testing.assert_allclose(updates[path[0]][path[1]], expected, rtol=1e-6)
    assert optimizer.rule("attn/q/kernel", (4, 4)) == "muon"
    assert optimizer.rule("embed/embedding", (5, 4)) == "adam"


def test_muon_group_scales_lr_and_overrides_decay_of_muon_matrices():
    rng = np.random.default_rng(1)
    params = {"mlp": {"up": {"kernel": jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)}}}
    grads = {"mlp": {"up": {"kernel": jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)}}}
    group = ParamGroup.C(pattern="mlp/up", lr_scale=3.0, weight_decay=0.5)
    optimizer = Muon.C(groups=[group], muon_lr_scale=2.0, weight_decay=0.1, clip_norm=0.0)
    schedule = Cosine.C(lr=0.01, lr_warmup_steps=1).instance().build(10)
    reference = optax_muon(lambda step: schedule(step) * 3.0 * 2.0, weight_decay=0.5)
    current = applied(optimizer.instance().build(schedule), params, [grads] * 3)
    assert_trees_close(current, applied(reference, params, [grads] * 3))


def test_muon_validation_names_bad_parameters():
    from xpm_train.validation import ConfigError, validate

    with pytest.raises(ConfigError) as error:
        group = ParamGroup.C(pattern="(", lr_scale=-1.0)
        validate(Muon.C(ns_steps=0, momentum=1.0, groups=[group]))
    keys = [key for key, _ in error.value.problems]
    assert keys == ["groups.0.pattern", "groups.0.lr_scale", "ns_steps", "momentum"]
