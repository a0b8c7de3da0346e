"""The bare JAX baseline the benchmarks compare the xpm-train loop with.

One hand-written jitted step (the flax model's next-token cross-entropy, its gradient, the
optax update; parameters and optimizer state donated) and the loop that times it: what a
minimal training script does, without the loop's data pipeline, checks, metrics or checkpoints.
Shared by ``loop_speed.py``, ``train_speed.py`` (through ``bench_models.py``) and
``profile_step.py``, so that each measures the same baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax
from flax import nnx

BareStep = Callable[[Any, Any, jax.Array], tuple[Any, Any, jax.Array]]


def bare_step(model: nnx.Module, tx: optax.GradientTransformation) -> tuple[BareStep, Any, Any]:
    """A jitted step ``(params, opt_state, tokens) -> (params, opt_state, loss)`` of ``model``
    and ``tx``, with the model's initial params and optimizer state."""
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    opt_state = tx.init(params)

    def step(params: Any, opt_state: Any, tokens: jax.Array) -> tuple[Any, Any, jax.Array]:
        def loss_fn(params: Any) -> jax.Array:
            logits = nnx.merge(graphdef, params)(tokens[:, :-1])
            return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1)), params, opt_state


def timed_steps(
    step: BareStep,
    params: Any,
    opt_state: Any,
    warmup: Sequence[jax.Array],
    timed: Sequence[jax.Array],
) -> tuple[float, jax.Array]:
    """Seconds taken by the steps on the ``timed`` batches, and the last loss; the steps on the
    ``warmup`` batches before them (compilation included) are not timed."""
    loss = None
    for tokens in warmup:
        params, opt_state, loss = step(params, opt_state, tokens)
    jax.block_until_ready(loss)
    began = time.perf_counter()
    for tokens in timed:
        params, opt_state, loss = step(params, opt_state, tokens)
    jax.block_until_ready(loss)
    assert loss is not None, "no timed step"
    return time.perf_counter() - began, loss
