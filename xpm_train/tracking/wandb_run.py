"""The wandb side of :class:`~xpm_train.tracking.loggers.WandbLogger` (job process only).

Run identity: the run id is the first 16 hex digits of the job identifier followed by 8
random hex digits drawn the first time the job starts and kept in ``<job>/wandb/run-id``.
A resumed job (same folder) reopens the same run (``resume="allow"``); the same parameters
run in another workdir get a run of their own instead of appending to this one.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xpm_train.tracking.loggers import JobInfo, WandbLogger

#: The file, in the job's ``wandb/`` folder, that keeps the run id across resumptions.
RUN_ID_FILE = "run-id"


def run_id(folder: Path) -> str:
    """The wandb run id of the job in ``folder``: drawn once, then read back."""
    path = Path(folder) / "wandb" / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    identifier = f"{Path(folder).name[:16]}-{secrets.token_hex(4)}"
    path.write_text(identifier + "\n")
    return identifier


def _numeric(record: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of a record that wandb can plot (``kind`` and ``step`` dropped)."""
    values = {}
    for key, value in record.items():
        if key in ("kind", "step") or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            values[key] = value
        elif isinstance(value, str):  # MetricsLog writes non-finite floats as strings
            try:
                values[key] = float(value)
            except ValueError:
                pass
    return values


class WandbRun:
    """One open wandb run; logs each metrics record at its step."""

    def __init__(self, run: Any, mode: str):
        self.run = run
        self.mode = mode
        folder = Path(run.dir).parent  # <job>/wandb/<offline-run-...>/files -> the run folder
        if mode == "offline":
            self.description = f"wandb: offline run {run.id}; upload it with: wandb sync {folder}"
        elif mode == "online":
            self.description = f"wandb: run {run.id}, {run.url}"
        else:
            self.description = ""

    def log(self, record: Mapping[str, Any]) -> None:
        values = _numeric(record)
        if values:
            self.run.log(values, step=int(record["step"]))

    def finish(self, summary: Mapping[str, Any], exit_code: int = 0) -> None:
        self.run.summary.update(dict(summary))
        self.run.finish(exit_code=exit_code)


def open_wandb_run(logger: WandbLogger, job: JobInfo) -> WandbRun:
    """Start (or resume) the job's wandb run. An online run that cannot start (no API key, no
    network) falls back to an offline run, so that logging never costs the training."""
    import wandb

    mode = logger.resolved_mode()
    config = {key: value for key, value in job.config.items() if key != "logger"}
    config["xpm_job"] = {"id": job.job_id, "folder": str(job.folder), "stage": job.stage}
    arguments = {
        "project": logger.project,
        "entity": logger.entity,
        "group": logger.group,
        "name": logger.run_name(job.stage),
        "job_type": job.stage,
        "tags": logger.run_tags(job.stage),
        "config": config,
        "id": run_id(job.folder),
        "resume": "allow",
        "dir": str(job.folder),
        "settings": wandb.Settings(console="off"),
    }
    try:
        run = wandb.init(mode=mode, **arguments)
    except Exception as error:
        if mode != "online":
            raise
        print(
            f"wandb: could not start an online run ({type(error).__name__}: {error}); "
            "logging offline instead",
            file=sys.stderr,
            flush=True,
        )
        mode = "offline"
        run = wandb.init(mode=mode, **arguments)
    return WandbRun(run, mode)
