"""PNG plots of training curves and evaluation metrics (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: What to plot for each stage besides the loss, when its metrics have them.
KEY_METRICS = ("ce", "kl", "rewards/accuracies", "rewards/margins")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(curves: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """One panel per stage: training loss, held-out loss, and the stage's key metrics."""
    plt = _pyplot()
    figure, axes = plt.subplots(
        1, max(1, len(curves)), figsize=(5 * max(1, len(curves)), 3.6), squeeze=False
    )
    for axis, (stage, records) in zip(axes[0], curves.items(), strict=False):
        train = [r for r in records if r.get("kind") == "train"]
        evals = [r for r in records if r.get("kind") == "eval"]
        axis.plot([r["step"] for r in train], [r["loss"] for r in train], label="loss")
        if evals:
            axis.plot(
                [r["step"] for r in evals], [r["eval/loss"] for r in evals], "o-", label="eval/loss"
            )
        for key in KEY_METRICS:
            if train and key in train[0]:
                axis.plot([r["step"] for r in train], [r[key] for r in train], label=key)
        axis.set_title(stage)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def metric_bars(values: dict[str, dict[str, float]], metric: str, path: Path) -> Path:
    """Grouped bars: for each dataset, one bar per stage (``values[stage][dataset]``)."""
    plt = _pyplot()
    stages = list(values)
    datasets = sorted({name for per_stage in values.values() for name in per_stage})
    width = 0.8 / max(1, len(stages))
    figure, axis = plt.subplots(figsize=(max(4, 2.5 * len(datasets)), 3.6))
    for index, stage in enumerate(stages):
        xs = [i + index * width for i in range(len(datasets))]
        ys = [values[stage].get(name, float("nan")) for name in datasets]
        axis.bar(xs, ys, width=width, label=stage)
    axis.set_xticks([i + width * (len(stages) - 1) / 2 for i in range(len(datasets))], datasets)
    axis.set_ylabel(metric)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
