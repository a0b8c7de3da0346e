"""Causal language modelling (pretraining)."""

from __future__ import annotations

from typing import Any

from flax import nnx

from xpm_train.objectives.base import Batch, LossOutput, token_cross_entropy


class NextTokenPrediction:
    """Causal language modelling: mean cross-entropy of every next token of the block."""

    perplexity_of: str | None = "loss"

    def __call__(
        self, model: nnx.Module, batch: Batch, frozen: Any, rngs: nnx.Rngs | None
    ) -> LossOutput:
        tokens = batch["tokens"]
        logits = model(tokens[:, :-1], rngs=rngs)
        loss_sum, count = token_cross_entropy(logits, tokens[:, 1:], batch["mask"])
        return LossOutput(loss_sum=loss_sum, weight=count, metric_sums={})
