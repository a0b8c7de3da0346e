"""Logger components: where a training job sends its metrics besides ``metrics.jsonl``.

A training task takes its logger as a ``Meta`` parameter: it is not part of the job's
identity, so turning wandb on (or changing its project) never reruns a finished job. No
credential is ever a parameter: wandb reads ``WANDB_API_KEY`` (or ``~/.netrc``) from the job's
environment, so nothing secret reaches ``params.json``, the logs or the report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from experimaestro import Config, Param
from experimaestro import field as xpm_field

from xpm_train.registry import build, register
from xpm_train.validation import validate

#: wandb modes accepted by ``mode`` (``None``: the ``WANDB_MODE`` variable, else offline).
WANDB_MODES = ("offline", "online", "disabled")


@dataclass(frozen=True)
class JobInfo:
    """What a logger knows about the job it logs."""

    stage: str
    """The stage name (``pretrain``, ``kl``, ``dpo``)"""
    folder: Path
    """The job folder"""
    config: dict[str, Any] = field(default_factory=dict)
    """The job's parameters (from ``params.json``)"""

    @property
    def job_id(self) -> str:
        return self.folder.name


class LoggerRun(Protocol):
    """An open logging run of one job."""

    description: str
    """One line for the job's summary (where the logged run is), or ``""``"""

    def log(self, record: Mapping[str, Any]) -> None:
        """Log one ``metrics.jsonl`` record (``kind``, ``step`` and metrics)."""
        ...

    def finish(self, summary: Mapping[str, Any], exit_code: int = 0) -> None: ...


class NullRun:
    description = ""

    def log(self, record: Mapping[str, Any]) -> None:
        pass

    def finish(self, summary: Mapping[str, Any], exit_code: int = 0) -> None:
        pass


class MetricsLogger(Config):
    """Base of the logger components."""

    def __validate__(self) -> None:
        """Raise ValueError on inconsistent parameters (at planning time)."""

    def open(self, job: JobInfo) -> LoggerRun:
        """Start logging ``job`` (in the job process)."""
        raise NotImplementedError


@register("logger", "none")
class NoLogger(MetricsLogger):
    """Log nothing besides ``metrics.jsonl`` (the default)."""

    def open(self, job: JobInfo) -> LoggerRun:
        return NullRun()


@register("logger", "wandb")
class WandbLogger(MetricsLogger):
    """Weights & Biases: one run per job, offline unless asked otherwise.

    The run is grouped by experiment id, named by stage and tags, has the job's parameters as
    its config, and keeps its id when the job resumes. Offline runs are written under
    ``<job folder>/wandb/`` and uploaded later with ``wandb sync``.
    """

    project: Param[str] = xpm_field(default="xpm-train")
    entity: Param[str | None] = xpm_field(default=None)
    """The wandb team or user (default: wandb's default entity)"""
    mode: Param[str | None] = xpm_field(default=None)
    """``offline``, ``online`` or ``disabled``; by default the ``WANDB_MODE`` environment
    variable, else ``offline``"""
    group: Param[str | None] = xpm_field(default=None)
    """The run group (default: the experiment id, set when the pipeline builds the logger)"""
    display_name: Param[str | None] = xpm_field(default=None)
    """The run name (default: the stage, followed by the tags)"""
    tags: Param[list[str] | None] = xpm_field(default=None)
    """Run tags, besides the stage name"""

    def __validate__(self) -> None:
        if self.mode is not None and self.mode not in WANDB_MODES:
            raise ValueError(
                f"wandb logger: mode={self.mode!r} is not one of {', '.join(WANDB_MODES)}"
            )

    def resolved_mode(self) -> str:
        """``mode``, else ``WANDB_MODE``, else ``offline``."""
        mode = self.mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in WANDB_MODES:
            raise ValueError(f"wandb mode {mode!r} is not one of {', '.join(WANDB_MODES)}")
        return mode

    def run_name(self, stage: str) -> str:
        if self.display_name:
            return self.display_name
        return f"{stage} ({', '.join(self.tags)})" if self.tags else stage

    def run_tags(self, stage: str) -> list[str]:
        return [stage, *(self.tags or [])]

    def open(self, job: JobInfo) -> LoggerRun:
        from xpm_train.tracking.wandb_run import open_wandb_run

        return open_wandb_run(self, job)


def build_logger(spec: Mapping[str, Any] | MetricsLogger, where: str) -> MetricsLogger:
    """Build a logger component from its YAML spec and check it; a wandb logger without a
    ``group`` is grouped by the running experiment's id."""
    logger = build("logger", spec, where=where)
    assert isinstance(logger, MetricsLogger)
    try:
        validate(logger)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    if isinstance(logger, WandbLogger) and logger.group is None:
        from experimaestro.scheduler.experiment import experiment

        if experiment.CURRENT is not None:
            logger.group = experiment.CURRENT.name
    return logger
