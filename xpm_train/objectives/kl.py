"""Continued training with a token-level KL penalty against a frozen reference model.

``loss = CE + beta * KL``, where KL is the exact divergence between the full-vocabulary
next-token distributions of the policy and of the reference, at every counted position. (The
difference of the two cross-entropies is not a divergence: with the reference frozen its
gradient is (1 + beta) times the CE gradient, which does not regularise.)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from xpm_train.objectives import KL_DIRECTIONS as DIRECTIONS
from xpm_train.objectives.base import Batch, LossOutput, token_cross_entropy


def token_kl(policy_logits: jax.Array, reference_logits: jax.Array, direction: str) -> jax.Array:
    """KL divergence per position, over the last (vocabulary) axis.

    ``forward`` is KL(reference || policy) = sum_v q (log q - log p) (mass-covering, as in
    distillation); ``reverse`` is KL(policy || reference) = sum_v p (log p - log q)
    (mode-seeking, as the RLHF penalty).
    """
    log_p = jax.nn.log_softmax(policy_logits, axis=-1)
    log_q = jax.nn.log_softmax(reference_logits, axis=-1)
    if direction == "forward":
        return jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1)
    if direction == "reverse":
        return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    raise ValueError(f"KL direction {direction!r} is not one of {', '.join(DIRECTIONS)}")


class KLRegularizedLM:
    """Next-token cross-entropy plus ``beta`` times the token-level KL to the reference.

    ``frozen`` holds the reference's parameters; ``reference_graphdef`` its structure. The
    reference runs deterministically and under ``stop_gradient``.
    """

    perplexity_of: str | None = "ce"

    def __init__(self, reference_graphdef: nnx.GraphDef, beta: float, direction: str):
        if direction not in DIRECTIONS:
            raise ValueError(f"KL direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        self.reference_graphdef = reference_graphdef
        self.beta = beta
        self.direction = direction

    def __call__(
        self, model: nnx.Module, batch: Batch, frozen: Any, rngs: nnx.Rngs | None
    ) -> LossOutput:
        inputs, targets, mask = batch["tokens"][:, :-1], batch["tokens"][:, 1:], batch["mask"]
        logits = model(inputs, rngs=rngs)
        reference = nnx.merge(self.reference_graphdef, frozen)
        reference_logits = jax.lax.stop_gradient(reference(inputs))
        ce_sum, count = token_cross_entropy(logits, targets, mask)
        kl_sum = jnp.sum(token_kl(logits, reference_logits, self.direction) * mask)
        return LossOutput(
            loss_sum=ce_sum + self.beta * kl_sum,
            weight=count,
            metric_sums={"ce": ce_sum, "kl": kl_sum, "beta": self.beta * count},
        )
