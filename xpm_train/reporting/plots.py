"""PNG plots of training curves and evaluation metrics (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def key_metrics() -> tuple[str, ...]:
    """What to plot besides the loss, when a stage's metrics have them: the ``key_metrics``
    of every registered stage kind."""
    from xpm_train.registry import registered

    stages = registered("stage").values()
    names = (name for cls in stages for name in getattr(cls, "key_metrics", ()))
    return tuple(dict.fromkeys(names))


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` and free it."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    return path


def training_curves(curves: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """A row of panels per stage: its loss (training and held-out), then each of its key
    metrics on an axis of its own (quantities of different scales never share one)."""
    plt = pyplot()
    rows = []
    for stage, records in curves.items():
        keys = {key for record in records for key in record}
        panels = [("loss", ["loss", "eval/loss"])]
        panels += [
            (name, [k for k in (name, f"eval/{name}") if k in keys])
            for name in key_metrics()
            if name in keys or f"eval/{name}" in keys
        ]
        rows.append((stage, records, panels))
    columns = max((len(panels) for _, _, panels in rows), default=1)
    figure, axes = plt.subplots(
        max(1, len(rows)), columns, figsize=(4.2 * columns, 3.0 * max(1, len(rows))), squeeze=False
    )
    for row, (stage, records, panels) in zip(axes, rows, strict=False):
        for axis in row[len(panels) :]:
            axis.set_visible(False)
        for axis, (name, keys) in zip(row, panels, strict=False):
            for key in keys:
                steps, values = metric_series(records, key)
                axis.plot(steps, values, "o-" if key.startswith("eval/") else "-", label=key, ms=3)
            axis.set_title(f"{stage}: {name}")
            axis.set_xlabel("step")
            axis.legend(fontsize=8)
            axis.grid(alpha=0.3)
    figure.tight_layout()
    return save(figure, path)


def metric_bars(values: dict[str, dict[str, float]], metric: str, path: Path) -> Path:
    """Grouped bars: for each dataset, one bar per stage (``values[stage][dataset]``)."""
    plt = pyplot()
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
    return save(figure, path)


#: The file name of a training job's curves, next to its ``metrics.jsonl``.
JOB_CURVES = "curves.png"


def metric_series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Steps and finite values of ``key`` in ``records`` (non-finite values are strings)."""
    points = [
        (r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "step" in r
    ]
    return [step for step, _ in points], [value for _, value in points]


def job_panels(records: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The panels of a training job's curves: (title, metric keys), empty ones left out.
    Keys of held-out metrics start with ``eval/``."""
    keys = {key for record in records for key in record}
    panels = [
        ("loss", ["loss", "eval/loss"]),
        ("learning rate", ["lr"]),
        ("gradient norm", ["grad_norm"]),
        ("stage metrics", [k for name in key_metrics() for k in (name, f"eval/{name}")]),
    ]
    return [
        (title, [k for k in names if k in keys]) for title, names in panels if keys & set(names)
    ]


def job_curves(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """One training job's curves in one PNG: loss (training and held-out), learning rate,
    gradient norm and the stage's key metrics, one panel each."""
    plt = pyplot()
    panels = job_panels(records) or [("loss", [])]
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    for axis, (name, keys) in zip(axes.flat, panels, strict=False):
        for key in keys:
            steps, values = metric_series(records, key)
            axis.plot(steps, values, "o-" if key.startswith("eval/") else "-", label=key, ms=3)
        axis.set_title(name)
        axis.set_xlabel("step")
        if keys:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return save(figure, path)
