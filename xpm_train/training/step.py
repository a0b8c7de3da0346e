"""The pure training and evaluation steps, jitted with explicit shardings and donation.

``train_step(state, batch, frozen) -> (state, metrics)`` takes a batch shaped
``(accum_steps, micro_batch * data_parallel, ...)`` and accumulates gradients over its first
axis with ``lax.scan``: the update is that of the whole global batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xpm_train.objectives.base import Batch, LossOutput, Objective
from xpm_train.training.state import ModelDef, Params, TrainState

Metrics = dict[str, jax.Array]


def _micro_step(
    definition: ModelDef,
    objective: Objective,
    params: Params,
    batch: Batch,
    frozen: Any,
    rng: jax.Array,
) -> tuple[LossOutput, Params]:
    def loss_fn(params: Params) -> tuple[jax.Array, LossOutput]:
        model = definition.merge(params)
        out = objective(model, batch, frozen, nnx.Rngs(dropout=rng))
        return out.loss_sum, out

    (_, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return out, grads


def make_train_step(
    definition: ModelDef,
    objective: Objective,
    tx: optax.GradientTransformation,
    learning_rate: Callable[[Any], Any],
) -> Callable[[TrainState, Batch, Any], tuple[TrainState, Metrics]]:
    """The (unjitted) training step of ``objective``."""

    def train_step(state: TrainState, batch: Batch, frozen: Any) -> tuple[TrainState, Metrics]:
        accum_steps = jax.tree.leaves(batch)[0].shape[0]
        step_rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        if accum_steps == 1:
            micro = jax.tree.map(lambda x: x[0], batch)
            total, grads = _micro_step(definition, objective, state.params, micro, frozen, step_rng)
        else:

            def accumulate(
                carry: tuple[LossOutput, Params], inputs: tuple[Batch, jax.Array]
            ) -> tuple[tuple[LossOutput, Params], None]:
                micro, index = inputs
                rng = jax.random.fold_in(step_rng, index)
                out, grads = _micro_step(definition, objective, state.params, micro, frozen, rng)
                return jax.tree.map(jnp.add, carry, (out, grads)), None

            first = jax.tree.map(lambda x: x[0], batch)
            zero_out = jax.eval_shape(
                lambda: _micro_step(definition, objective, state.params, first, frozen, step_rng)
            )
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zero_out)
            (total, grads), _ = jax.lax.scan(accumulate, zeros, (batch, jnp.arange(accum_steps)))
        weight = jnp.maximum(total.weight, 1e-9)
        grads = jax.tree.map(lambda g: g / weight, grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": total.loss_sum / weight,
            "grad_norm": optax.tree.norm(grads),
            "lr": jnp.asarray(learning_rate(state.step), jnp.float32),
            **{name: value / weight for name, value in total.metric_sums.items()},
        }
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    return train_step


def make_eval_step(
    definition: ModelDef, objective: Objective
) -> Callable[[Params, Batch, Any], LossOutput]:
    """Deterministic loss sums of ``objective`` on one batch (no accumulation axis)."""

    def eval_step(params: Params, batch: Batch, frozen: Any) -> LossOutput:
        return objective(definition.merge(params), batch, frozen, None)

    return eval_step
