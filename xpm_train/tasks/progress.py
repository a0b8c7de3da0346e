"""Progress reporting through experimaestro, so its TUI and web UI show each job's progress."""

from __future__ import annotations

from experimaestro import progress
from experimaestro.taskglobals import Env


def report_progress(fraction: float, desc: str) -> None:
    """Report to experimaestro when running as a job; a no-op when a task runs in-process
    (tests, notebooks), where experimaestro has no job folder to write events to."""
    if Env.instance().taskpath is not None:
        progress(fraction, desc=desc)
