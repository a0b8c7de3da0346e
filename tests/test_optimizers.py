import jax.numpy as jnp
import numpy as np
import optax

from xpm_train.optim.optimizers import AdamW


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
