"""The SLURM jobs that ran an experimaestro job, from ``sacct``.

experimaestro 2.7.0 forgets a job's SLURM id once the job has ended (its ``status.json`` then
has ``"process": null``). ``sacct`` still knows: each attempt is a SLURM job named
``<task>.sh`` whose working directory is the job's folder. A job resubmitted after a time limit
has one SLURM job per attempt.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from experimaestro.launchers.slurm import SlurmLauncher

if TYPE_CHECKING:
    from experimaestro.scheduler.jobs import Job

#: How far back ``sacct`` looks (its default is since midnight).
SACCT_SINCE = "now-7days"


@dataclass(frozen=True)
class SlurmJob:
    """One SLURM job (one attempt of an experimaestro job)."""

    job_id: str
    state: str
    """``COMPLETED``, ``FAILED``, ``TIMEOUT``, ``CANCELLED by 0``, ``OUT_OF_MEMORY``..."""
    exit_code: str
    """``<exit code>:<signal>``"""
    partition: str


def sacct_jobs(
    folder: Path, name: str, binpath: Path | str = "/usr/bin", env: dict[str, str] | None = None
) -> list[SlurmJob]:
    """The SLURM jobs named ``<name>.sh`` that ran in ``folder``, oldest first (empty when
    sacct cannot be run)."""
    command = [
        str(Path(binpath) / "sacct"),
        "-n",
        "-X",
        "-P",
        "-S",
        SACCT_SINCE,
        f"--name={name}.sh",
        "--format=JobID,State,ExitCode,Partition,WorkDir",
    ]
    try:
        output = subprocess.run(
            command, capture_output=True, text=True, timeout=30, env=env, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    folder = Path(folder).resolve()
    jobs = []
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) >= 5 and fields[4] and Path(fields[4]).resolve() == folder:
            jobs.append(SlurmJob(*fields[:4]))
    return sorted(jobs, key=lambda job: int(job.job_id) if job.job_id.isdigit() else 0)


def slurm_jobs(job: Job) -> list[SlurmJob] | None:
    """The SLURM jobs of an experimaestro job; None when its launcher is not SLURM."""
    launcher = getattr(job, "launcher", None)
    if not isinstance(launcher, SlurmLauncher):
        return None
    return sacct_jobs(job.path, job.name, launcher.binpath, launcher.launcherenv)


def slurm_summary(job: Job) -> str | None:
    """``SLURM job 42 (partition cpu): FAILED, exit code 1:0; earlier attempts: 40 (TIMEOUT)``
    for a job run by SLURM; None for another launcher."""
    jobs = slurm_jobs(job)
    if jobs is None:
        return None
    if not jobs:
        return "no SLURM job found with sacct (the job may never have been submitted)"
    last = jobs[-1]
    text = f"SLURM job {last.job_id} (partition {last.partition}): {last.state}"
    text += f", exit code {last.exit_code}"
    if len(jobs) > 1:
        earlier = ", ".join(f"{attempt.job_id} ({attempt.state})" for attempt in jobs[:-1])
        text += f"; earlier attempts: {earlier}"
    return text
