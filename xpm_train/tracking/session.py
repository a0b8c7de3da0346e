"""What a training job does around its loop: open its logger, forward each metrics record to
it, and at the end write its curves (PNG), close the logger and print a summary paragraph."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xpm_train.reporting.plots import JOB_CURVES, key_metrics
from xpm_train.tracking.loggers import JobInfo, LoggerRun, MetricsLogger, NullRun
from xpm_train.training.metrics import read_metrics
from xpm_train.training.result import TrainResult


def summary_metrics() -> tuple[str, ...]:
    """Final metrics named in the summary paragraph (all of them are in ``result.json``)."""
    stage_metrics = (key for name in key_metrics() for key in (name, f"eval/{name}"))
    return ("loss", "eval/loss", "eval/perplexity", *stage_metrics)


def job_config(params: Path) -> dict[str, Any]:
    """The task's parameters from experimaestro's ``params.json``, as nested plain values:
    each component becomes ``{"type": <class>, <its parameters>}``, paths become strings."""
    if not Path(params).exists():
        return {}
    objects = {o["id"]: o for o in json.loads(Path(params).read_text())["objects"]}

    def value(item: Any, depth: int) -> Any:
        if isinstance(item, dict) and item.get("type") == "python" and "value" in item:
            referenced = objects.get(item["value"])
            return component(referenced, depth + 1) if referenced else None
        if isinstance(item, dict) and item.get("type") == "path":
            return item.get("value")
        if isinstance(item, dict):
            return {key: value(v, depth) for key, v in item.items()}
        if isinstance(item, list):
            return [value(v, depth) for v in item]
        return item

    def component(entry: dict[str, Any], depth: int) -> Any:
        if depth > 8:
            return entry.get("typename")
        fields = {key: value(v, depth) for key, v in entry.get("fields", {}).items()}
        return {"type": entry.get("typename"), **fields}

    task = list(objects.values())[-1]  # experimaestro writes the task last
    return component(task, 0)


def summary_paragraph(
    stage: str,
    result: TrainResult,
    metrics_path: Path,
    curves: Path | None,
    logged: str = "",
) -> str:
    """The paragraph a training job prints when it ends: final metrics, final checkpoint,
    wall time, and where its metrics, curves and logged run are."""
    shown = [key for key in summary_metrics() if key in result.metrics]
    metrics = ", ".join(f"{key} {result.metrics[key]:.4g}" for key in shown)
    throughput = result.metrics.get("tokens_per_s")
    speed = f" ({throughput:,.0f} tokens/s at the end)" if throughput else ""
    files = [Path(metrics_path).name, "result.json (every final metric)"]
    if curves is not None:
        files.append(curves.name)
    lines = [
        f"{stage} done: {result.step} steps in {result.wall_time_s:.1f}s{speed}",
        f"  final metrics: {metrics or 'none'}",
        f"  final checkpoint: {result.checkpoint}",
        f"  in the job folder: {', '.join(files)}",
    ]
    if logged:
        lines.append(f"  {logged}")
    return "\n".join(lines)


class TrainingSession:
    """The logger run of one training job, and what the job writes when it ends."""

    def __init__(self, stage: str, metrics_path: Path, run: LoggerRun):
        self.stage, self.metrics_path, self.run = stage, Path(metrics_path), run
        self.closed = False

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(record)

    def close(self, summary: Mapping[str, Any], exit_code: int = 0) -> None:
        if not self.closed:
            self.closed = True
            self.run.finish(summary, exit_code)

    def finish(self, result: TrainResult) -> str:
        """Write the curves, close the logger run, and return the summary paragraph."""
        from xpm_train.reporting.plots import job_curves

        curves: Path | None = self.metrics_path.parent / JOB_CURVES
        records = read_metrics(self.metrics_path)
        title = f"{self.stage} ({self.metrics_path.parent.name[:8]})"
        try:
            curves = job_curves(records, curves, title=title) if records else None
        except Exception as error:  # a plot is not worth the finished training
            print(f"could not draw {curves}: {error!r}", file=sys.stderr, flush=True)
            curves = None
        summary: dict[str, Any] = {**asdict(result), **result.metrics}
        del summary["metrics"]
        self.close(summary)
        return summary_paragraph(
            self.stage, result, self.metrics_path, curves, self.run.description
        )


@contextmanager
def training_session(
    stage: str, metrics_path: Path, logger: MetricsLogger | None
) -> Iterator[TrainingSession]:
    """Open ``logger`` for the job whose ``metrics.jsonl`` is ``metrics_path`` (the job
    folder is its parent); close it with a failure code if the training raises."""
    folder = Path(metrics_path).parent
    if logger is None:
        run: LoggerRun = NullRun()
    else:
        run = logger.open(JobInfo(stage, folder, job_config(folder / "params.json")))
    session = TrainingSession(stage, metrics_path, run)
    try:
        yield session
    except BaseException:
        session.close({}, exit_code=1)
        raise
