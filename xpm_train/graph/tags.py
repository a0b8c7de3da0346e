"""The experimaestro tags of a job: what the monitors show next to it.

A training job is tagged with its stage (its section's name), an evaluation with the stage
whose checkpoint it evaluates, and both with their grid point. Tags are not part of a job's
identity; an upstream job's tags do not propagate (the graph gives its outputs through
``stop_tags``), so a job's tags are its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experimaestro import Config

from xpm_train.graph.sweeps import format_value

#: The tag naming a training job's stage, and an evaluation's: ``stage=dpo``, ``evaluates=dpo``.
STAGE_TAG, EVALUATES_TAG = "stage", "evaluates"


def tag_job(task: Config, role: str, stage: str, point: Mapping[str, Any]) -> None:
    """Tag ``task`` with ``role=stage`` (``role``: STAGE_TAG or EVALUATES_TAG) and its grid
    point, each swept key with ``_`` for ``.`` (``dpo_beta=0.1``: experimaestro's ``--filter``
    reads no dot in a tag's name)."""
    task.tag(role, stage)
    for key, value in point.items():
        task.tag(key.replace(".", "_"), format_value(value))


def tagged_stage(tags: Mapping[str, Any]) -> str | None:
    """``dpo`` for a job of the stage ``dpo``, ``evaluate dpo`` for the evaluation of its
    checkpoint; None for a job without those tags (the report, runs made before tags)."""
    if STAGE_TAG in tags:
        return str(tags[STAGE_TAG])
    if EVALUATES_TAG in tags:
        return f"evaluate {tags[EVALUATES_TAG]}"
    return None


def tagged_point(tags: Mapping[str, Any]) -> str:
    """The grid point among a job's tags: ``pretrain_schedule_lr=0.003, dpo_beta=0.1``."""
    swept = {k: v for k, v in tags.items() if k not in (STAGE_TAG, EVALUATES_TAG)}
    return ", ".join(f"{key}={value}" for key, value in swept.items())


def job_label(tags: Mapping[str, Any], name: str, job_id: str) -> str:
    """How the driver's lines name a job: ``dpo/c50f4453 (pretrain_schedule_lr=0.01,
    dpo_beta=0.5)``, ``evaluate dpo/2a23c2c9 (...)``; ``name`` when the tags name no stage."""
    label = f"{tagged_stage(tags) or name}/{job_id[:8]}"
    point = tagged_point(tags)
    return f"{label} ({point})" if point else label
