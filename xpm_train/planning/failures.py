"""Make an experiment fail (exit status 1) when some of its jobs failed.

experimaestro 2.7.0's ``run-experiment`` logs ``Job ... failed, check the log file ...`` and
still exits 0. An experiment's ``run(helper, cfg)`` calls :func:`raise_on_failed_jobs` after
``helper.xp.wait()``: it raises experimaestro's :class:`FailedExperiment`, which the CLI prints
in red before exiting with status 1. The message has one paragraph per failed job: its task id
and short hash, its state, its folder, its stderr log and the log's last lines; jobs that
never ran because a job they depend on failed are listed as ``not run: dependency failed``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from experimaestro.scheduler.experiment import FailedExperiment
from experimaestro.scheduler.interfaces import JobFailureStatus, JobState
from experimaestro.scheduler.workspace import RunMode

from xpm_train.launchers.slurm_jobs import slurm_summary

if TYPE_CHECKING:
    from experimaestro.scheduler.experiment import experiment
    from experimaestro.scheduler.jobs import Job

#: How many lines of a failed job's stderr log the message shows.
LOG_LINES = 15

#: experimaestro's own logging in a job's stderr, e.g.
#: ``INFO:19983:26-11-24 13:29:07 [xpm] Releasing lock``: the bookkeeping lines after the
#: traceback are left out of the quoted log tail.
_XPM_LOG_LINE = re.compile(r"^(DEBUG|INFO):\d+:.* \[xpm\] ")

#: Run modes in which no job runs, hence none can fail.
_NOTHING_RUNS = (RunMode.DRY_RUN, RunMode.GENERATE_ONLY)


def raise_on_failed_jobs(xp: experiment, log_lines: int = LOG_LINES) -> None:
    """Raise :class:`FailedExperiment`, describing each failed job of ``xp``, if any failed.

    Call it after ``xp.wait()``. Does nothing when no job failed, and in the ``dry_run`` and
    ``generate_only`` run modes.
    """
    message = failure_report(xp, log_lines)
    if message is not None:
        raise FailedExperiment(message)


def failure_report(xp: experiment, log_lines: int = LOG_LINES) -> str | None:
    """The message describing the failed jobs of ``xp`` (None when none failed)."""
    if xp.run_mode in _NOTHING_RUNS:
        return None
    failed = failed_jobs(xp)
    if not failed:
        return None
    not_run = [job for job in failed if _is_dependency_failure(job)]
    direct = [job for job in failed if not _is_dependency_failure(job)]
    counts = [f"{_jobs(len(direct))} failed"] if direct else []
    if not_run:
        counts.append(f"{_jobs(len(not_run))} not run (dependency failed)")
    paragraphs = [f"Experiment {xp.name}: {', '.join(counts)}."]
    paragraphs += [_describe_failure(job, log_lines) for job in direct]
    paragraphs += [_describe_not_run(job) for job in not_run]
    return "\n\n".join(paragraphs)


def failed_jobs(xp: experiment) -> list[Job]:
    """The jobs of ``xp`` in an error state, in submission order.

    ``xp.failedJobs`` (filled when a job's scheduler state becomes an error) and the
    experiment's jobs whose scheduler or execution state is an error.
    """
    failed = {job.identifier: job for job in xp.jobs.values() if _state(job).is_error()}
    for identifier, job in xp.failedJobs.items():
        failed.setdefault(identifier, job)
    return list(failed.values())


def _state(job: Job) -> JobState:
    """The scheduler state if it is an error (it carries the dependency failures), else the
    execution state."""
    scheduler_state = job.scheduler_state
    return scheduler_state if scheduler_state.is_error() else job.state


def _is_dependency_failure(job: Job) -> bool:
    return getattr(_state(job), "failure_reason", None) == JobFailureStatus.DEPENDENCY


def _jobs(count: int) -> str:
    return f"{count} job{'s' if count != 1 else ''}"


def _name(job: Job) -> str:
    return f"{job.task_id}/{job.identifier[:8]}"


def _state_text(job: Job) -> str:
    """``error (failed, exit code 1)``: the state and, when known, the failure reason and the
    exit code (from the job's ``<name>.failed`` marker, else from the scheduler); without
    either, a note that the job's process died without writing its marker."""
    state = _state(job)
    details = []
    reason = getattr(state, "failure_reason", None)
    marker = _read_failed_marker(job.failedpath)
    if reason is not None:
        details.append(reason.name.lower())
    elif marker.get("reason"):
        details.append(str(marker["reason"]))
    code = marker.get("code", getattr(job, "exit_code", None))
    if code is not None:
        details.append(f"exit code {code}")
    if not details:
        details.append(f"no {job.failedpath.name} marker: the process crashed or was killed")
    name = getattr(state, "name", None) or str(state)
    return f"{name} ({', '.join(details)})"


def _read_failed_marker(path: Path) -> dict:
    """The content of a ``<name>.failed`` marker: ``{"code": 1, "reason": "failed"}`` (older
    markers hold only the exit code); empty when absent or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return {}
    try:
        content = json.loads(text)
    except ValueError:
        return {}
    if isinstance(content, int):
        return {"code": content}
    return content if isinstance(content, dict) else {}


def _describe_failure(job: Job, log_lines: int) -> str:
    lines = [
        f"Job {_name(job)} failed: {_state_text(job)}",
        f"  folder: {job.path}",
        f"  log:    {job.stderr}",
    ]
    slurm = slurm_summary(job)  # None when the job did not run on SLURM
    if slurm is not None:
        lines.insert(1, f"  slurm:  {slurm}")
    tail = log_tail(job.stderr, log_lines)
    first = first_failed_process(log_tail(job.stderr, 200, 256_000) or [])
    if first is not None:
        lines.insert(1, f"  first process to fail: {first}")
    if tail is None:
        lines.append("  (the log file does not exist: the job may not have started)")
    elif tail:
        lines.append("  last lines of the log:")
        lines += [f"    {line}" for line in tail]
    else:
        lines.append("  (the log file is empty)")
    return "\n".join(lines)


#: srun's line when a process of a job ends badly: ``srun: error: vm: task 1: Killed``.
_SRUN_TASK_ERROR = re.compile(
    r"srun: error: (?P<node>\S+): tasks? (?P<tasks>[\d,\-]+): (?P<how>.+)"
)


def first_failed_process(lines: list[str]) -> str | None:
    """``task 1 on node vm: Killed``: the first process of a job of several (one per SLURM
    task, their lines prefixed ``[process i/n on node]``) that srun reports as ended badly;
    None for a job of one process or when there is no such line."""
    if not any(line.startswith("[process ") for line in lines):
        return None
    for line in lines:
        found = _SRUN_TASK_ERROR.search(line)
        if found:
            return f"task {found['tasks']} on node {found['node']}: {found['how']}"
    return None


def upstream_jobs(job: Job) -> list[Job]:
    """The jobs ``job`` depends on (not its tokens, such as ``launcher.local_jobs``')."""
    origins = [getattr(dependency, "origin", None) for dependency in job.dependencies]
    return [origin for origin in origins if hasattr(origin, "relpath")]


def _describe_not_run(job: Job) -> str:
    upstream = [_name(origin) for origin in upstream_jobs(job) if _state(origin).is_error()]
    cause = f" ({', '.join(sorted(upstream))})" if upstream else ""
    return f"Job {_name(job)} not run: dependency failed{cause}\n  folder: {job.path}"


def log_tail(path: Path, count: int = LOG_LINES, max_bytes: int = 64_000) -> list[str] | None:
    """The last ``count`` lines of a job's log, without experimaestro's bookkeeping lines
    at its end (None when the file does not exist)."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # probably cut in the middle
    end = len(lines)
    while end and (not lines[end - 1].strip() or _XPM_LOG_LINE.match(lines[end - 1])):
        end -= 1
    return [line.rstrip() for line in lines[: end or len(lines)][-count:]]
