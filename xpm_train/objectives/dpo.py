"""Direct preference optimisation (Rafailov et al. 2023), as TRL's sigmoid loss.

For each pair, the log-probabilities of the completion tokens (prompt excluded) are summed
per sequence; with ``h = (logp(chosen) - ref(chosen)) - (logp(rejected) - ref(rejected))``, the
loss is the mean over pairs of ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``
(``eps``: label smoothing, the conservative DPO of the 2024 TRL).

With ``rpo_alpha`` > 0, ``rpo_alpha`` times the chosen completion's mean token NLL is added
per pair (RPO, Pang et al. 2024; TRL's ``rpo_alpha``), which keeps the chosen answers likely
instead of only pushing the rejected ones down.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from xpm_train.objectives.base import Batch, LossOutput


def sequence_logps(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Sum over positions of ``mask * log p(target)``: one log-probability per sequence."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(picked * mask, axis=-1)


def dpo_losses(
    policy_chosen: jax.Array,
    policy_rejected: jax.Array,
    reference_chosen: jax.Array,
    reference_rejected: jax.Array,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-pair losses and the implicit rewards of the chosen and rejected completions."""
    chosen_rewards = beta * (policy_chosen - reference_chosen)
    rejected_rewards = beta * (policy_rejected - reference_rejected)
    logits = chosen_rewards - rejected_rewards
    losses = -(1.0 - label_smoothing) * jax.nn.log_sigmoid(logits) - (
        label_smoothing * jax.nn.log_sigmoid(-logits)
    )
    return losses, chosen_rewards, rejected_rewards


class DirectPreference:
    """DPO against a frozen reference (``frozen`` holds its parameters)."""

    perplexity_of: str | None = None

    def __init__(
        self,
        reference_graphdef: nnx.GraphDef,
        beta: float,
        label_smoothing: float,
        rpo_alpha: float = 0.0,
    ):
        self.reference_graphdef = reference_graphdef
        self.beta = beta
        self.label_smoothing = label_smoothing
        self.rpo_alpha = rpo_alpha

    @staticmethod
    def _logps(model: nnx.Module, batch: Batch, rngs: nnx.Rngs | None) -> jax.Array:
        tokens = jnp.concatenate([batch["chosen"], batch["rejected"]])
        mask = jnp.concatenate([batch["chosen_mask"], batch["rejected_mask"]])
        return sequence_logps(model(tokens[:, :-1], rngs=rngs), tokens[:, 1:], mask)

    def __call__(
        self, model: nnx.Module, batch: Batch, frozen: Any, rngs: nnx.Rngs | None
    ) -> LossOutput:
        policy_chosen, policy_rejected = jnp.split(self._logps(model, batch, rngs), 2)
        reference = nnx.merge(self.reference_graphdef, frozen)
        reference_logps = jax.lax.stop_gradient(self._logps(reference, batch, None))
        reference_chosen, reference_rejected = jnp.split(reference_logps, 2)
        losses, chosen, rejected = dpo_losses(
            policy_chosen,
            policy_rejected,
            reference_chosen,
            reference_rejected,
            self.beta,
            self.label_smoothing,
        )
        weight = batch["weight"]
        metric_sums = {}
        if self.rpo_alpha:
            chosen_tokens = jnp.maximum(jnp.sum(batch["chosen_mask"], axis=-1), 1.0)
            nll = -policy_chosen / chosen_tokens
            losses = losses + self.rpo_alpha * nll
            metric_sums["nll_loss"] = jnp.sum(weight * nll)
        return LossOutput(
            loss_sum=jnp.sum(weight * losses),
            weight=jnp.sum(weight),
            metric_sums=metric_sums
            | {
                "rewards/chosen": jnp.sum(weight * chosen),
                "rewards/rejected": jnp.sum(weight * rejected),
                "rewards/accuracies": jnp.sum(weight * (chosen > rejected)),
                "rewards/margins": jnp.sum(weight * (chosen - rejected)),
                "logps/chosen": jnp.sum(weight * policy_chosen),
                "logps/rejected": jnp.sum(weight * policy_rejected),
            },
        )
