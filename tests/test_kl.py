import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from xpm_train.objectives.kl import KLRegularizedLM, token_kl

from .support.tiny import tiny_model


def _logits(seed: int, shape=(2, 5, 11)) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape) * 3


def test_kl_is_zero_for_identical_models_and_positive_otherwise():
    logits = _logits(0)
    for direction in ("forward", "reverse"):
        np.testing.assert_allclose(token_kl(logits, logits, direction), 0.0, atol=1e-6)
        assert (token_kl(logits, _logits(1), direction) > 0).all()


def test_kl_matches_optax_in_both_directions():
    policy, reference = _logits(2), _logits(3)
    forward = optax.kl_divergence(jax.nn.log_softmax(policy), jax.nn.softmax(reference))
    reverse = optax.kl_divergence(jax.nn.log_softmax(reference), jax.nn.softmax(policy))
    np.testing.assert_allclose(token_kl(policy, reference, "forward"), forward, rtol=1e-5)
    np.testing.assert_allclose(token_kl(policy, reference, "reverse"), reverse, rtol=1e-5)
    with pytest.raises(ValueError, match="'sideways' is not one of forward, reverse"):
        token_kl(policy, reference, "sideways")


def _models():
    return tiny_model(seed=0), tiny_model(seed=1)


def _batch():
    tokens = np.random.default_rng(0).integers(0, 256, (3, 9)).astype(np.int32)
    mask = np.ones((3, 8), np.float32)
    mask[0, 4:] = 0.0
    return {"tokens": jnp.asarray(tokens), "mask": jnp.asarray(mask)}


def test_loss_is_ce_plus_beta_kl_and_logs_each_part():
    policy, reference = _models()
    graphdef, ref_params = nnx.split(reference, nnx.Param)
    batch = _batch()
    objective = KLRegularizedLM(graphdef, beta=0.5, direction="forward")
    out = objective(policy, batch, ref_params, None)
    count = float(batch["mask"].sum())
    assert float(out.weight) == count
    ce, kl = float(out.metric_sums["ce"]), float(out.metric_sums["kl"])
    assert kl > 0
    np.testing.assert_allclose(float(out.loss_sum), ce + 0.5 * kl, rtol=1e-6)
    np.testing.assert_allclose(float(out.metric_sums["beta"]) / count, 0.5)
    same = KLRegularizedLM(nnx.split(policy, nnx.Param)[0], 0.5, "reverse")
    out_same = same(policy, batch, nnx.split(policy, nnx.Param)[1], None)
    np.testing.assert_allclose(float(out_same.metric_sums["kl"]), 0.0, atol=1e-4)


def test_kl_gradient_pulls_the_policy_and_not_the_reference():
    policy, reference = _models()
    graphdef, params = nnx.split(policy, nnx.Param)
    ref_graphdef, ref_params = nnx.split(reference, nnx.Param)
    batch = _batch()

    def kl_only(params, ref_params):
        objective = KLRegularizedLM(ref_graphdef, beta=1.0, direction="forward")
        return objective(nnx.merge(graphdef, params), batch, ref_params, None).metric_sums["kl"]

    policy_grad, reference_grad = jax.grad(kl_only, argnums=(0, 1))(params, ref_params)
    assert optax.tree.norm(policy_grad) > 1e-3
    assert optax.tree.norm(reference_grad) == 0.0
