"""Shared fixtures: a clean experimaestro scheduler for each test, and the project's root.

The tiny components the tests train are in ``tests/support/tiny.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
