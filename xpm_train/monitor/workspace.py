"""The xpm-train jobs of an experimaestro workdir, as the monitor shows them.

Experiments, job states and live progress come from experimaestro's own
``WorkspaceStateProvider`` (what ``experimaestro experiments monitor`` reads), so running jobs
of an experiment driven by another process are seen too. Curves come from each job's
``metrics.jsonl``, read again only when the file changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xpm_train.graph.tags import tagged_point, tagged_stage

#: Task ids of this package start with this.
TASK_PREFIX = "xpm_train."


def stage_of(task_id: str) -> str:
    """The stage kind of a training task's id (its registered name), else the id's last part."""
    from xpm_train.registry import registered

    kinds = {
        str(cls.__getxpmtype__().identifier): name for name, cls in registered("stage").items()
    }
    return kinds.get(task_id, task_id.rsplit(".", 1)[-1])


@dataclass
class JobEntry:
    """One job of an experiment run."""

    experiment: str
    run: str
    """The experimaestro run id (``20261125_235220``)"""
    task_id: str
    job_id: str
    folder: Path
    state: str
    """experimaestro's state name: ``done``, ``running``, ``error``, ``waiting``..."""
    progress: float | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    """The experiment's tags of the job: its stage (or the stage it evaluates) and grid point"""

    @property
    def stage(self) -> str:
        """The stage's name in the experiment file, ``evaluate <stage>`` for an evaluation of
        its checkpoint; the kind for jobs without tags (runs before tags were written)."""
        return tagged_stage(self.tags) or stage_of(self.task_id)

    @property
    def point(self) -> str:
        return tagged_point(self.tags)

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.run}/{self.task_id}/{self.job_id}"

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.jsonl"


@dataclass
class ExperimentEntry:
    """One run of an experiment."""

    experiment: str
    run: str
    host: str
    status: str
    jobs: list[JobEntry] = field(default_factory=list)


def last_progress(folder: Path) -> tuple[float | None, str]:
    """The last progress event archived in a finished job's folder."""
    progress, desc = None, ""
    for path in sorted((Path(folder) / ".experimaestro" / "events").glob("event-*.jsonl")):
        for line in path.read_text().splitlines():
            if '"JobProgressEvent"' not in line:
                continue
            event = json.loads(line)
            if event.get("level", 0) == 0:
                progress, desc = event.get("progress"), event.get("desc") or ""
    return progress, desc


def _entry(experiment: str, run: str, job: Any, tags: dict[str, str]) -> JobEntry:
    state = getattr(job.state, "name", str(job.state)).lower()
    folder = Path(job.path)
    entry = JobEntry(experiment, run, job.task_id, job.identifier, folder, state, tags=tags)
    levels = [level for level in (job.progress or []) if level.level == 0]
    if levels:
        entry.progress, entry.description = levels[-1].progress, levels[-1].desc or ""
    elif state in ("done", "error"):
        entry.progress, entry.description = last_progress(entry.folder)
    return entry


class Workspace:
    """An experimaestro workdir, read through experimaestro's state provider."""

    def __init__(self, workdir: Path):
        from experimaestro.scheduler.workspace_state_provider import WorkspaceStateProvider

        self.workdir = Path(workdir).resolve()
        if not (self.workdir / "experiments").is_dir() and not (self.workdir / "jobs").is_dir():
            raise FileNotFoundError(f"{self.workdir} is not an experimaestro workdir")
        self.provider = WorkspaceStateProvider.get_instance(self.workdir)

    def experiments(
        self, only: str | None = None, refresh: bool = False, all_runs: bool = False
    ) -> list[ExperimentEntry]:
        """The latest run of each experiment (or only of the one named ``only``) with its
        xpm-train jobs; with ``all_runs``, every run experimaestro keeps, latest first."""
        entries = []
        for experiment in sorted(
            self.provider.get_experiments(refresh=refresh), key=lambda e: e.experiment_id
        ):
            name = experiment.experiment_id
            if only is not None and name != only:
                continue
            runs = [experiment]
            if all_runs:
                found = self.provider.get_experiment_runs(name, refresh=refresh)
                runs = sorted(found, key=lambda run: str(run.run_id), reverse=True) or runs
            for run in runs:
                entries.append(self._run(run, refresh))
        return entries

    def _run(self, run: Any, refresh: bool) -> ExperimentEntry:
        name, run_id = run.experiment_id, str(run.run_id)
        status = str(getattr(run.status, "value", run.status)).lower()
        entry = ExperimentEntry(name, run_id, run.hostname or "", status)
        jobs = self.provider.get_jobs(name, run_id=run_id, refresh=refresh)
        tags = self.provider.get_tags_map(name, run_id, refresh=refresh)
        entry.jobs = [
            _entry(name, run_id, job, dict(tags.get(job.identifier) or {}))
            for job in jobs
            if job.task_id.startswith(TASK_PREFIX)
        ]
        return entry


def complete_records(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file that a running job may be appending to: a last line
    not yet complete is left for the next read."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsCache:
    """The records of ``metrics.jsonl`` files, re-read when a file's size or time changed."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, int], list[dict[str, Any]]]] = {}

    def records(self, path: Path) -> tuple[list[dict[str, Any]], bool]:
        """The records of ``path`` and whether they changed since the last call."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            changed = path in self._cache
            self._cache.pop(path, None)
            return [], changed
        signature = (stat.st_size, stat.st_mtime_ns)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1], False
        records = complete_records(path)
        self._cache[path] = (signature, records)
        return records, True


def job_details(job: JobEntry) -> str:
    """A few lines about a job that has no curves (evaluations, reports) or about its files."""
    lines = [f"{job.task_id}/{job.job_id[:8]}  {job.state}", f"folder: {job.folder}"]
    lines.append(f"experiment {job.experiment}, run {job.run}")
    if job.point:
        lines.append(f"grid point: {job.point}")
    evaluation = job.folder / "metrics.json"
    if evaluation.exists():
        record = json.loads(evaluation.read_text())
        lines.append(f"checkpoint step {record.get('step')}:")
        for name, metrics in record.get("datasets", {}).items():
            values = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            lines.append(f"  {name}: {values}")
    report = job.folder / "report.md"
    if report.exists():
        lines.append(f"report: {report}")
    result = job.folder / "result.json"
    if result.exists():
        checkpoint = json.loads(result.read_text()).get("checkpoint")
        lines.append(f"final checkpoint: {checkpoint}")
    return "\n".join(lines)
