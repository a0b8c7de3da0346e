"""The report's view of a sweep: one results table (grid point x key metrics) and a plot of
each held-out metric against each swept parameter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: Held-out metrics of the evaluations shown for each dataset.
EVALUATION_METRICS = ("loss", "accuracy")


def file_name(label: str) -> str:
    """A file-name-safe version of a job label such as ``dpo[dpo.beta=0.1]``."""
    return re.sub(r"[^\w.-]+", "_", label).strip("_")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def results_rows(
    results: dict[str, dict[str, Any]],
    points: dict[str, dict[str, str]],
    finals: dict[str, dict[str, Any]],
) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of the results table: a row per evaluated job, a column per swept
    parameter, the stages' key metrics on their own held-out data at the end of training
    (``finals``: label -> ``eval/<metric>`` values), then each held-out dataset's metrics."""
    keys = list(dict.fromkeys(key for point in points.values() for key in point))
    datasets = list(dict.fromkeys(name for r in results.values() for name in r["datasets"]))
    columns = [
        (name, metric)
        for name in datasets
        for metric in EVALUATION_METRICS
        if any(metric in r["datasets"].get(name, {}) for r in results.values())
    ]
    finals_keys = list(dict.fromkeys(key for final in finals.values() for key in final))
    header = ["stage", *keys, *finals_keys, *(f"{name} {metric}" for name, metric in columns)]
    rows = []
    for label, result in results.items():
        point, final = points.get(label, {}), finals.get(label, {})
        stage = label.split("[", 1)[0]
        values = [result["datasets"].get(name, {}).get(metric, "") for name, metric in columns]
        own = [final.get(key, "") for key in finals_keys]
        rows.append([stage, *(point.get(key, "") for key in keys), *own, *values])
    return header, rows


def sweep_plot(
    results: dict[str, dict[str, Any]], points: dict[str, dict[str, str]], key: str, path: Path
) -> Path:
    """Each held-out metric against the swept ``key``: a panel per (dataset, metric), a
    series per stage, a marker per job."""
    from xpm_train.reporting.plots import pyplot, save

    plt = pyplot()
    panels = sorted(
        {
            (name, metric)
            for r in results.values()
            for name, values in r["datasets"].items()
            for metric in EVALUATION_METRICS
            if metric in values
        }
    )
    figure, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.4), squeeze=False
    )
    values = [points[label][key] for label in results if key in points.get(label, {})]
    numeric = all(_number(value) is not None for value in values)
    order = sorted(set(values), key=lambda v: _number(v) if numeric else v)
    for axis, (name, metric) in zip(axes[0], panels, strict=False):
        series: dict[str, list[tuple[Any, float]]] = {}
        for label, result in results.items():
            point = points.get(label, {})
            if key in point and metric in result["datasets"].get(name, {}):
                x = _number(point[key]) if numeric else order.index(point[key])
                series.setdefault(label.split("[", 1)[0], []).append(
                    (x, result["datasets"][name][metric])
                )
        for stage, xy in series.items():
            xs, ys = zip(*sorted(xy), strict=True)
            axis.plot(xs, ys, "o", label=stage, alpha=0.8)
        if numeric and len(order) > 1 and min(_number(v) for v in order) > 0:  # type: ignore[type-var]
            axis.set_xscale("log")
        if not numeric:
            axis.set_xticks(range(len(order)), order)
        axis.set_title(f"{name}: {metric}")
        axis.set_xlabel(key)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    return save(figure, path)


def sweep_section(
    results: dict[str, dict[str, Any]],
    points: dict[str, dict[str, str]],
    finals: dict[str, dict[str, Any]],
    folder: Path,
) -> list[str]:
    """The report lines of a sweep (none when nothing is swept)."""
    from xpm_train.tasks.report import markdown_table

    keys = list(dict.fromkeys(key for point in points.values() for key in point))
    if not keys:
        return []
    header, rows = results_rows(results, points, finals)
    lines = ["## Sweep", "", markdown_table(header, rows), ""]
    for key in keys:
        name = f"sweep_{file_name(key)}.png"
        sweep_plot(results, points, key, Path(folder) / name)
        lines += [f"![{key}]({name})", ""]
    return lines
