"""The experiment report: every stage's evaluation in one table, with plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experimaestro import Meta, Param, PathGenerator, Task, field

from xpm_train.tasks.evaluate import Evaluate
from xpm_train.tasks.progress import report_progress


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_format(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class Report(Task):
    """Gathers the evaluations of an experiment's stages (fan-in) into ``report.md``: a
    table (stage x dataset metric), the stages' final training metrics, and PNG plots."""

    evaluations: Param[dict[str, Evaluate]]
    """Stage name -> the evaluation of its checkpoint (in pipeline order)"""
    title: Meta[str] = field(default="xpm-train report")

    report_path: Meta[Path] = field(default_factory=PathGenerator("report.md"))

    def execute(self) -> None:
        from xpm_train.reporting.plots import metric_bars, training_curves
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
        report_progress(0.3, "plotting")
        per_dataset = {stage: r["datasets"] for stage, r in results.items()}
        lines = [f"# {self.title}", "", "## Evaluation", ""]
        for name in sorted({name for d in per_dataset.values() for name in d}):
            metrics = sorted({k for d in per_dataset.values() for k in d.get(name, {})})
            rows = [
                [stage, results[stage]["step"]]
                + [per_dataset[stage].get(name, {}).get(m, "") for m in metrics]
                for stage in results
            ]
            lines += [
                f"Held-out `{name}`:",
                "",
                markdown_table(["stage", "step"] + metrics, rows),
                "",
            ]
        final = {
            stage: next((r for r in reversed(records) if r.get("kind") == "train"), {})
            for stage, records in curves.items()
        }
        train_keys = sorted({k for record in final.values() for k in record} - {"kind", "step"})
        lines += ["## Final training metrics", ""]
        lines += [
            markdown_table(
                ["stage"] + train_keys,
                [[s] + [r.get(k, "") for k in train_keys] for s, r in final.items()],
            ),
            "",
        ]
        lines += ["## Plots", "", "![training curves](training_curves.png)", ""]
        training_curves(curves, folder / "training_curves.png")
        for metric in ("loss", "accuracy"):
            values = {
                stage: {d: m[metric] for d, m in datasets_.items() if metric in m}
                for stage, datasets_ in per_dataset.items()
            }
            if any(values.values()):
                metric_bars(values, metric, folder / f"{metric}.png")
                lines += [f"![{metric}]({metric}.png)", ""]
        self.report_path.write_text("\n".join(lines))
        report_progress(1.0, "done")
        print(f"report written to {self.report_path}", flush=True)
