"""The plan of an experiment: every submitted job with its resolved parameters and dependencies.

experimaestro's ``--run-mode dry_run`` lists the jobs and their dependencies but not their
parameters. :func:`write_plan` describes each submitted task with all its parameters, defaults
filled in, nested components expanded, and the jobs it depends on. A dry run (or
``generate_only``) prints it; a normal run saves it as ``plan.yaml`` in the experiment's
run folder (``WORKDIR/experiments/<id>/<run>/plan.yaml``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from experimaestro import Config


def _job_name(job: Any) -> str:
    return str(job.relpath)


def _value(value: Any) -> Any:
    if isinstance(value, Config):
        return _config(value)
    if isinstance(value, dict):
        return {str(key): _value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _config(config: Config) -> dict[str, Any]:
    """A Config's type and its parameters (defaults included); generated paths left out."""
    xpmtype = config.__xpm__.xpmtype
    described: dict[str, Any] = {"type": str(xpmtype.identifier)}
    for name, argument in xpmtype.arguments.items():
        if argument.generator is None:
            described[name] = _value(getattr(config, name, None))
    return described


def _state(job: Any) -> str:
    if job.state.is_error():
        return "failed"
    return "done" if job.state.finished() else "to run"


def describe_job(task: Config) -> dict[str, Any]:
    """One submitted task: its job folder, state, parameters and the jobs it waits for."""
    job = task.__xpm__.job
    job.load_from_disk()
    return {
        "job": _job_name(job),
        "state": _state(job),
        "parameters": _config(task),
        "depends on": sorted(_job_name(dependency.origin) for dependency in job.dependencies),
    }


def summary(jobs: list[dict[str, Any]], sweeps: dict[str, list[str]]) -> str:
    """The grid of the sweeps (if any) and how many jobs are new, done or failed."""
    lines = []
    if sweeps:
        points = 1
        for values in sweeps.values():
            points *= len(values)
        lines.append(f"Grid ({points} points):")
        lines += [f"  {key}: {', '.join(values)}" for key, values in sweeps.items()]
    states = [job["state"] for job in jobs]
    counts = ", ".join(
        f"{states.count(state)} {label}"
        for state, label in (("to run", "new"), ("done", "cached"), ("failed", "failed"))
        if states.count(state) or state != "failed"
    )
    lines.append(f"Jobs: {len(jobs)} ({counts})")
    return "\n".join(lines)


def write_plan(xp: Any, tasks: list[Config], sweeps: dict[str, list[str]] | None = None) -> None:
    """Print the plan when nothing runs (dry run, generate only); otherwise save it in the
    experiment's run folder. Both print the grid and how many jobs are new or cached."""
    from experimaestro.scheduler.workspace import RunMode

    jobs = [describe_job(task) for task in tasks]
    text = yaml.safe_dump(jobs, sort_keys=False, default_flow_style=None)
    if xp.run_mode != RunMode.NORMAL:
        print(f"Plan ({len(tasks)} jobs):\n{text}", file=sys.stdout, flush=True)
    else:
        path = Path(xp.workdir) / "plan.yaml"
        path.write_text(text)
        print(f"Plan: {path}", flush=True)
    print(summary(jobs, sweeps or {}), flush=True)
