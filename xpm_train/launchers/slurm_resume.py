"""experimaestro's SLURM launcher, extended for jobs of several processes that survive
preemption.

- A job whose SLURM state ends as ``PREEMPTED`` or ``NODE_FAIL`` (or ``BOOT_FAIL``), with no
  failure reason of its own, counts as timed out, so that experimaestro resubmits it (up to
  ``max_retries`` times) and it resumes from its last checkpoint; experimaestro 2.7.0
  resubmits only after ``TIMEOUT``.
- The job's ``srun`` runs with ``--kill-on-bad-exit=1``: when one process of a job fails, SLURM
  ends the others at once instead of leaving them waiting for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from experimaestro.launchers.slurm import SlurmLauncher
from experimaestro.launchers.slurm.base import (
    BatchSlurmProcess,
    SlurmProcessBuilder,
    SlurmScriptBuilder,
)

if TYPE_CHECKING:
    from experimaestro.scheduler.jobs import JobState

#: Final SLURM states after which a job is resubmitted, as after a time limit.
RESUBMITTED_STATES = ("PREEMPTED", "NODE_FAIL", "BOOT_FAIL")


class ResubmittingSlurmProcess(BatchSlurmProcess):
    """A SLURM job whose preemption or node failure reads as a timeout."""

    def get_job_state(self, code: int) -> JobState:
        from experimaestro.scheduler.jobs import JobFailureStatus, JobStateError

        state = self._last_state.slurm_state if self._last_state is not None else ""
        if code != 0 and state.rstrip("+") in RESUBMITTED_STATES:
            message = "SLURM job %s ended %s: it is resubmitted and resumes from its checkpoint"
            logging.getLogger("xpm_train").warning(message, self.jobid, state)
            return JobStateError(JobFailureStatus.TIMEOUT)
        return super().get_job_state(code)


class _ProcessBuilder(SlurmProcessBuilder):
    def start(self, task_mode: bool = False) -> BatchSlurmProcess:
        process = super().start(task_mode)
        if self.detach:
            return ResubmittingSlurmProcess(self.launcher, process.jobid)
        return process


class _ScriptBuilder(SlurmScriptBuilder):
    def write(self, job: Any) -> Any:
        script = super().write(job)  # the sbatch script, ending with "srun ./<task>.py"
        text = script.read_text()
        script.write_text(text.replace("\nsrun ./", "\nsrun --kill-on-bad-exit=1 ./", 1))
        return script


class ResubmittingSlurmLauncher(SlurmLauncher):
    """experimaestro's ``SlurmLauncher`` with the two changes of the module docstring."""

    def config(self, **kwargs: Any) -> ResubmittingSlurmLauncher:
        base = super().config(**kwargs)
        return ResubmittingSlurmLauncher(
            connector=base.connector,
            options=base.options,
            interval=base.interval,
            launcherenv=base.launcherenv,
            binpath=base.binpath,
        )

    def scriptbuilder(self) -> SlurmScriptBuilder:
        return _ScriptBuilder(self)

    def processbuilder(self) -> SlurmProcessBuilder:
        return _ProcessBuilder(self)
