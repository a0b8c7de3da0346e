"""Every evaluation of a workdir in one table: ``xpm-train results WORKDIR``.

One row per (experiment run, evaluated checkpoint, held-out dataset): the experiment and its
run, the stage (its name in the experiment file), the step, the held-out loss and exact-match
accuracy, and the training parameters that differ between the rows, so that today's runs
compare with last week's without opening job folders. Read from the files experimaestro and
the jobs write: ``experiments/<id>/<run>/jobs.jsonl``, each job's ``params.json`` and each
evaluation's ``metrics.json``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xpm_train.tracking.session import job_config

EVALUATE = "xpm_train.tasks.evaluate.evaluate"
REPORT = "xpm_train.tasks.report.report"
#: Training parameters never shown as differences (identity-free bookkeeping).
HIDDEN = ("type", "numerics_version", "code_fingerprint", "content", "logger")
#: At most this many differing parameters become columns.
MAX_PARAMETERS = 8


@dataclass
class ResultRow:
    experiment: str
    run: str
    stage: str
    step: int | None
    dataset: str
    metrics: dict[str, float]
    parameters: dict[str, Any] = field(default_factory=dict)


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a job's parameters; an upstream checkpoint becomes its job's folder."""
    if not isinstance(config, dict):
        return {prefix: config}
    kind = str(config.get("type", ""))
    if kind.endswith(".Checkpoint"):
        path = str(config.get("path", ""))
        return {prefix: path.split("/")[2][:8] if path.startswith("jobs/") else path}
    values: dict[str, Any] = {}
    for key, value in config.items():
        if key in HIDDEN:
            continue
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            values.update(_flat(value, name))
        else:
            values[name] = json.dumps(value) if isinstance(value, list) else value
    if kind and "name" not in values and prefix:
        values[f"{prefix}.type"] = kind.rsplit(".", 1)[-1]
    return values


def _run_jobs(run: Path) -> list[tuple[str, str]]:
    """(task id, job id) of every job of an experiment run."""
    jobs = []
    for line in (run / "jobs.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
            jobs.append((record["task_id"], record["job_id"]))
        except (ValueError, KeyError):
            continue
    return jobs


def _labels(workdir: Path, jobs: list[tuple[str, str]]) -> dict[str, str]:
    """Checkpoint path -> the stage's name, from the run's report job."""
    labels = {}
    for task, job in jobs:
        if task == REPORT and (workdir / "jobs" / task / job / "params.json").is_file():
            config = job_config(workdir / "jobs" / task / job / "params.json")
            for label, evaluation in (config.get("evaluations") or {}).items():
                checkpoint = evaluation.get("checkpoint") or {}
                labels[f"{checkpoint.get('path')}|{checkpoint.get('which', 'final')}"] = label
    return labels


def collect(workdir: Path, experiment: str | None = None) -> list[ResultRow]:
    """Every finished evaluation of every run of ``workdir`` (or of one experiment)."""
    rows = []
    workdir = Path(workdir)
    for run in sorted(workdir.glob("experiments/*/*/jobs.jsonl")):
        run = run.parent
        if run.is_symlink() or (experiment and run.parent.name != experiment):
            continue
        jobs = _run_jobs(run)
        labels = _labels(workdir, jobs)
        for task, job in jobs:
            folder = workdir / "jobs" / task / job
            if task != EVALUATE or not (folder / "metrics.json").is_file():
                continue
            config = job_config(folder / "params.json")
            checkpoint = config.get("checkpoint") or {}
            path = str(checkpoint.get("path", ""))
            training = workdir / Path(path).parent
            stage = labels.get(f"{path}|{checkpoint.get('which', 'final')}")
            if stage is None:
                stage = training.parent.name.rsplit(".", 1)[-1]
            parameters = {}
            if (training / "params.json").is_file():
                parameters = _flat(job_config(training / "params.json"))
            measured = json.loads((folder / "metrics.json").read_text())
            for dataset, figures in (measured.get("datasets") or {}).items():
                rows.append(
                    ResultRow(
                        run.parent.name,
                        run.name,
                        stage,
                        measured.get("step"),
                        dataset,
                        {k: v for k, v in figures.items() if isinstance(v, (int, float))},
                        parameters,
                    )
                )
    return rows


def differing(rows: list[ResultRow]) -> list[str]:
    """The training parameters whose values differ between rows of the same stage (the same
    name in different runs, or the points of a sweep), shallowest first."""
    groups: dict[str, list[ResultRow]] = {}
    for row in rows:
        groups.setdefault(row.stage, []).append(row)
    found: set[str] = set()
    for group in groups.values():
        for key in {key for row in group for key in row.parameters}:
            values = {json.dumps(row.parameters.get(key), default=str) for row in group}
            if len(values) > 1:
                found.add(key)
    return sorted(found, key=lambda key: (key.count("."), key))[:MAX_PARAMETERS]


def table(rows: list[ResultRow], fmt: str = "markdown") -> str:
    """The rows as a Markdown table (or CSV), the differing parameters as columns."""
    parameters = differing(rows)
    header = ["experiment", "run", "stage", "step", "dataset", "loss", "exact match"]
    header += parameters
    lines = []
    for row in rows:
        accuracy = row.metrics.get("accuracy")
        values = [row.experiment, row.run, row.stage, row.step, row.dataset]
        values += [f"{row.metrics.get('loss', float('nan')):.4f}"]
        values += ["" if accuracy is None else f"{accuracy:.3f}"]
        values += [row.parameters.get(key, "") for key in parameters]
        lines.append(["" if value is None else str(value) for value in values])
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(lines)
        return out.getvalue()
    text = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    text += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(text) + "\n"
