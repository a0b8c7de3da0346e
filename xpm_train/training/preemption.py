"""SIGTERM: write a checkpoint, then exit so that the job resumes from it.

SLURM sends SIGTERM before it preempts a job, drains a node or cancels a job, and
``scancel --signal=TERM`` sends it alone. :class:`StopRequest` replaces experimaestro's own
handler (which marks the job cancelled at once) with a flag; the training loop looks at it
after each step (every process agrees on the step), writes a checkpoint and raises:

- :class:`Preempted` (an experimaestro ``GracefulTimeout``) when the SLURM job is still
  running: a signal sent ahead of a preemption or a drain. experimaestro resubmits the job, as
  after a time limit, and it resumes from the checkpoint.
- :class:`StoppedBySignal` otherwise: a SLURM job being cancelled or ended (the launcher of
  :mod:`xpm_train.launchers.slurm_resume` resubmits it when SLURM's final state is
  ``PREEMPTED`` or ``NODE_FAIL``, not when a user cancelled it), or a local job (a rerun of the
  experiment resumes it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from types import FrameType
from typing import Any

from experimaestro.exceptions import GracefulTimeout


def _stopped(step: int, total: int, checkpoint: str, then: str) -> str:
    return f"SIGTERM: stopped at step {step}/{total} after writing checkpoint {checkpoint}; {then}"


class Preempted(GracefulTimeout):
    """SLURM signalled a running job: it stopped after writing a checkpoint of ``step``."""

    def __init__(self, step: int, total: int, checkpoint: str):
        self.step, self.total = step, total
        super().__init__(
            _stopped(step, total, checkpoint, "the job resumes from it when resubmitted")
        )


class StoppedBySignal(RuntimeError):
    """The job stopped on SIGTERM after writing a checkpoint of ``step``."""

    def __init__(self, step: int, total: int, checkpoint: str):
        self.step, self.total = step, total
        super().__init__(
            _stopped(step, total, checkpoint, "running the experiment again resumes from it")
        )


def slurm_job_running() -> bool:
    """Whether this process runs in a SLURM job that SLURM still reports as RUNNING (not
    being cancelled or ended)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    squeue = shutil.which("squeue") or "/usr/bin/squeue"
    try:
        state = subprocess.run(
            [squeue, "-h", "-j", job, "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return state == "RUNNING"


class StopRequest:
    """Records SIGTERM instead of stopping the job at once (see the module docstring)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            print(
                f"received signal {signum}: stopping after this step with a checkpoint",
                flush=True,
            )
        self.received = signum

    def install(self) -> StopRequest:
        """Handle SIGTERM from now on (in the main thread; elsewhere, nothing changes)."""
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave the handler as it is
            self._previous = None
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def stop(self, step: int, total: int, checkpoint: str) -> BaseException:
        """The exception that ends the job after the checkpoint of ``step``."""
        if slurm_job_running():
            return Preempted(step, total, checkpoint)
        return StoppedBySignal(step, total, checkpoint)
