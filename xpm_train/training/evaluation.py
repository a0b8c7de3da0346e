"""Held-out metrics of an objective: weighted means over batches."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from xpm_train.data.loader import Batch
from xpm_train.objectives.base import LossOutput
from xpm_train.training.mesh import shard_batch
from xpm_train.training.state import Params


def mean_metrics(
    eval_step: Callable[[Params, Batch, Any], LossOutput],
    params: Params,
    batches: list[Batch],
    frozen: Any,
    mesh: Mesh,
    prefix: str = "eval/",
    perplexity_of: str | None = "loss",
) -> dict[str, float]:
    """``loss`` and the objective's metrics, averaged over all ``batches`` with their weights
    (e.g. counted tokens) as if they were one batch, and ``perplexity``: the exponential of
    the metric named ``perplexity_of`` (a mean cross-entropy), if any."""
    if not batches:
        return {}
    totals: LossOutput | None = None
    for batch in batches:
        out = eval_step(params, shard_batch(batch, mesh, batch_axis=0), frozen)
        totals = out if totals is None else jax.tree.map(np.add, totals, out)
    assert totals is not None
    totals = jax.device_get(totals)
    weight = max(float(totals.weight), 1e-9)
    loss = float(totals.loss_sum) / weight
    means = {"loss": loss, **{k: float(v) / weight for k, v in totals.metric_sums.items()}}
    if perplexity_of is not None:
        means["perplexity"] = math.exp(min(means[perplexity_of], 50.0))
    return {f"{prefix}{k}": v for k, v in means.items()}
