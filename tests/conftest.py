"""Shared fixtures: tiny components, and a clean experimaestro scheduler for each test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xpm_train.registry import build

PROJECT = Path(__file__).resolve().parents[1]


def reset_scheduler() -> None:
    """experimaestro keeps one scheduler per process: forget the jobs it knows."""
    from experimaestro.scheduler.base import Scheduler

    scheduler = Scheduler._instance
    if scheduler is not None:
        for job in scheduler.jobs.values():
            job.experiments.clear()
        scheduler.jobs.clear()
        scheduler.waitingjobs.clear()


@pytest.fixture(autouse=True)
def fresh_scheduler():
    yield
    reset_scheduler()


def tiny_components(**overrides: Any) -> dict[str, Any]:
    """Instances of small components (a 1-layer transformer on arithmetic facts)."""
    specs = {
        "model": {
            "name": "transformer",
            "d_model": 32,
            "n_layers": 1,
            "n_heads": 2,
            "max_seq_len": 32,
        },
        "tokenizer": {"name": "bytes"},
        "dataset": {"name": "arithmetic", "n_examples": 300, "max_operand": 30},
        "optimizer": {"name": "adamw"},
        "schedule": {"name": "cosine", "lr": 1e-2, "lr_warmup_steps": 2},
    }
    for kind, spec in overrides.items():
        specs[kind] = {**specs[kind], **spec}
    return {kind: build(kind, spec).instance() for kind, spec in specs.items()}
