"""The experiment report: every stage's evaluation in one table, with plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experimaestro import Meta, Param, PathGenerator, Task, field

from xpm_train.tasks.evaluate import Evaluate
from xpm_train.tasks.progress import report_progress
from xpm_train.tasks.versioned import Versioned
from xpm_train.training.processes import other_process


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_format(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


#: The evaluation's metrics, in the order of its tables (others follow, sorted).
EVALUATION_ORDER = ("loss", "accuracy", "perplexity", "train_accuracy")


def evaluation_section(results: dict[str, dict[str, Any]]) -> list[str]:
    """One table per held-out dataset: a row per stage, a column per metric (loss and
    exact-match accuracy first)."""
    lines = ["## Evaluation", ""]
    names = sorted({name for result in results.values() for name in result["datasets"]})
    for name in names:
        per_stage = {stage: result["datasets"].get(name, {}) for stage, result in results.items()}
        found = {key for values in per_stage.values() for key in values}
        metrics = [m for m in EVALUATION_ORDER if m in found] + sorted(found - {*EVALUATION_ORDER})
        rows = [
            [stage, results[stage]["step"]] + [values.get(m, "") for m in metrics]
            for stage, values in per_stage.items()
        ]
        lines += [f"Held-out `{name}`:", "", markdown_table(["stage", "step"] + metrics, rows), ""]
    return lines


def training_section(
    curves: dict[str, list[dict[str, Any]]], key_metrics: dict[str, tuple[str, ...]]
) -> list[str]:
    """Per stage, its loss and key metrics (``key_metrics[stage]``) at the end of training,
    on training and held-out data; every other logged metric in a collapsed table."""
    lines = ["## Final training metrics", ""]
    for stage, records in curves.items():
        train = next((r for r in reversed(records) if r.get("kind") == "train"), {})
        held_out = next((r for r in reversed(records) if r.get("kind") == "eval"), {})
        names = ["loss", *key_metrics.get(stage, ())]
        rows = [["training", *[train.get(n, "") for n in names]]]
        if held_out:
            rows.append(["held-out", *[held_out.get(f"eval/{n}", "") for n in names]])
        lines += [f"`{stage}`:", "", markdown_table(["", *names], rows), ""]
        shown = {*names, *(f"eval/{n}" for n in names), "kind", "step"}
        rest = {**train, **held_out}
        others = sorted(key for key in rest if key not in shown)
        if others:
            lines += ["<details><summary>every other metric</summary>", ""]
            lines += [markdown_table(others, [[rest[k] for k in others]]), "", "</details>", ""]
    return lines


class Report(Versioned, Task):
    """Gathers the evaluations of an experiment's stages (fan-in) into ``report.md``: a
    table per held-out dataset (stage x metric), the stages' final training metrics, and PNG
    plots (training curves, held-out loss and accuracy bars)."""

    evaluations: Param[dict[str, Evaluate]]
    """Stage job label -> the evaluation of its checkpoint (in graph order)"""
    title: Meta[str] = field(default="xpm-train report")
    stage_kinds: Meta[dict[str, str]] = field(default_factory=dict)
    """Stage job label -> its stage kind (whose key metrics the report shows)"""
    points: Meta[dict[str, dict[str, str]]] = field(default_factory=dict)
    """Stage job label -> the swept values that made it (empty without sweeps)"""

    report_path: Meta[Path] = field(default_factory=PathGenerator("report.md"))

    def stage_key_metrics(self) -> dict[str, tuple[str, ...]]:
        """Each job's stage kind's key metrics (``rewards/accuracies`` for dpo...)."""
        from xpm_train.registry import registered

        kinds = registered("stage")
        return {
            label: tuple(getattr(kinds.get(kind), "key_metrics", ()))
            for label, kind in self.stage_kinds.items()
        }

    def key_metric_finals(self, curves: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """Each job's last held-out value of its stage kind's key metrics."""
        from xpm_train.registry import registered

        kinds = registered("stage")
        finals = {}
        for label, records in curves.items():
            kind = kinds.get(self.stage_kinds.get(label, ""))
            last = next((r for r in reversed(records) if r.get("kind") == "eval"), {})
            names = getattr(kind, "key_metrics", ())
            finals[label] = {f"eval/{m}": last[f"eval/{m}"] for m in names if f"eval/{m}" in last}
        return finals

    def execute(self) -> None:
        self.record_code()
        if other_process():  # started once per SLURM task: the work is done once
            return
        from xpm_train.reporting.plots import metric_bars, training_curves
        from xpm_train.reporting.sweeps import sweep_section
        from xpm_train.tracking.report import embed_job_curves
        from xpm_train.training.metrics import read_metrics

        folder = Path(self.report_path).parent
        results = {
            stage: json.loads(Path(evaluation.metrics_path).read_text())
            for stage, evaluation in self.evaluations.items()
        }
        curves = {
            stage: read_metrics(evaluation.checkpoint.metrics)
            for stage, evaluation in self.evaluations.items()
            if evaluation.checkpoint.metrics is not None
        }
        lines = [f"# {self.title}", ""]
        lines += sweep_section(results, self.points, self.key_metric_finals(curves), folder)
        lines += evaluation_section(results) + training_section(curves, self.stage_key_metrics())
        report_progress(0.5, f"plotting {len(results)} stages")
        lines += ["## Plots", "", "![training curves](training_curves.png)", ""]
        training_curves(curves, folder / "training_curves.png")
        lines += embed_job_curves(
            {stage: e.checkpoint.metrics for stage, e in self.evaluations.items()}, folder
        )
        for metric in ("loss", "accuracy"):
            values = {
                stage: {name: m[metric] for name, m in result["datasets"].items() if metric in m}
                for stage, result in results.items()
            }
            if any(values.values()):
                metric_bars(values, metric, folder / f"{metric}.png")
                lines += [f"![{metric}]({metric}.png)", ""]
        self.report_path.write_text("\n".join(lines))
        report_progress(1.0, f"done: {len(results)} stages")
        print(f"report written to {self.report_path}", flush=True)
