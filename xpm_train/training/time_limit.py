"""Stopping a training job before its time limit (SLURM's ``--time``), so that it can resume.

The loop asks :meth:`TimeLimit.must_stop` after each step. When the job's remaining time no
longer covers the safety margin, two more steps and one more checkpoint, the loop writes a
checkpoint and raises :class:`TimeLimitReached`: an experimaestro ``GracefulTimeout``, so that
experimaestro marks the job as timed out and resubmits it (up to ``max_retries`` times); the
new job resumes from that checkpoint and ends with the parameters of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from experimaestro.exceptions import GracefulTimeout

#: Seconds kept free before the limit by default: the process exits (experimaestro writes its
#: markers), and SLURM's estimate of the time left is rounded to the second.
DEFAULT_MARGIN_S = 30.0


class TimeLimitReached(GracefulTimeout):
    """The job stopped before its time limit, after writing a checkpoint of ``step``."""

    def __init__(self, step: int, total: int, remaining_s: float, checkpoint: str):
        self.step, self.total, self.remaining_s = step, total, remaining_s
        super().__init__(
            f"time limit: stopped at step {step}/{total} with {remaining_s:.0f}s left, "
            f"after writing checkpoint {checkpoint}; the job resumes from it when resubmitted"
        )


@dataclass
class TimeLimit:
    """When to stop: ``remaining()`` gives the seconds left to the job (None: no limit), e.g.
    experimaestro's ``ResumableTask.remaining_time``."""

    remaining: Callable[[], float | None]
    margin_s: float = DEFAULT_MARGIN_S
    _last: float | None = field(default=None, repr=False)
    _step_s: float = field(default=0.0, repr=False)
    _save_s: float = field(default=0.0, repr=False)
    _unlimited: bool = field(default=False, repr=False)

    def saved(self, seconds: float) -> None:
        """Record how long a checkpoint took to write (the longest one counts)."""
        self._save_s = max(self._save_s, seconds)

    def must_stop(self) -> float | None:
        """Call once per step: the seconds left if the job must stop now, else None."""
        now = time.perf_counter()
        if self._last is not None:
            self._step_s = max(0.8 * self._step_s, now - self._last)  # slowly forgets spikes
        self._last = now
        if self._unlimited:
            return None
        left = self.remaining()
        if left is None:
            # No limit. experimaestro asks squeue again at each call when the answer was
            # UNLIMITED (it caches only a time): ask once.
            self._unlimited = True
            return None
        if left > self.margin_s + 2 * self._step_s + self._save_s:
            return None
        return left
