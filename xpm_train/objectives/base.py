"""The objective interface: a loss over one micro-batch, as sums and a weight.

An objective returns *sums* and a weight (e.g. the number of target tokens, or of preference
pairs) so that gradient accumulation over micro-batches and evaluation over many batches give
exactly the weighted mean of one big batch. ``frozen`` carries what the objective needs besides
the trained parameters (e.g. a reference model's parameters); it never receives gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Batch = dict[str, jax.Array]


@dataclass(frozen=True)
class LossOutput:
    """``loss_sum / weight`` is the loss; each ``metric_sums[k] / weight`` a logged metric."""

    loss_sum: jax.Array
    weight: jax.Array
    metric_sums: dict[str, jax.Array]


jax.tree_util.register_dataclass(
    LossOutput, data_fields=["loss_sum", "weight", "metric_sums"], meta_fields=[]
)


class Objective(Protocol):
    """The stage-specific part of training."""

    #: The metric whose exponential is a perplexity (a mean token cross-entropy), or None.
    perplexity_of: str | None

    def __call__(
        self, model: nnx.Module, batch: Batch, frozen: Any, rngs: nnx.Rngs | None
    ) -> LossOutput:
        """Loss of ``model`` on ``batch``; ``rngs`` is None for evaluation (no dropout)."""
        ...


def token_cross_entropy(
    logits: jax.Array, targets: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Sum of masked next-token cross-entropies and the number of counted tokens."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(losses * mask), jnp.sum(mask)
