"""The plan of an experiment: every submitted job with its resolved parameters and dependencies.

experimaestro's ``--run-mode dry_run`` lists the jobs and their dependencies but not their
parameters. :func:`write_plan` describes each submitted task with all its parameters, defaults
filled in, nested components expanded, and the jobs it depends on. A dry run (or
``generate_only``) prints it; a normal run saves it as ``plan.yaml`` in the experiment's
run folder (``WORKDIR/experiments/<id>/<run>/plan.yaml``). Each training job also gets its
``cost`` (steps, tokens, parameters, FLOPs, estimated wall time: :mod:`.cost`), and the summary
their totals; a dry run first calibrates the job shapes it has no measurement of
(:mod:`.calibrate`, docs/plan-cost.md).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml
from experimaestro import Config

from xpm_train.planning import calibrate
from xpm_train.planning.cost import earlier_jobs, estimate, job_wall, shape_id, shape_of, work
from xpm_train.planning.failures import upstream_jobs
from xpm_train.tasks.trainer import TrainerTask


def _job_name(job: Any) -> str:
    """``<task id>/<hash>`` (computed once per job: experimaestro derives it from the
    job's identifier every time it is asked)."""
    name = getattr(job, "_xpm_train_name", None)
    if name is None:
        name = str(job.relpath)
        job._xpm_train_name = name
    return name


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


def describe_job(task: Config, cost: dict[str, Any] | None = None) -> dict[str, Any]:
    """One submitted task: its job folder, state, parameters, the jobs it waits for and, for
    a training job, its ``cost``."""
    job = task.__xpm__.job
    job.load_from_disk()
    described = {
        "job": _job_name(job),
        "state": _state(job),
        "parameters": _config(task),
        "depends on": sorted(_job_name(origin) for origin in upstream_jobs(job)),
    }
    if cost is not None:
        state = described["state"]
        wall = job_wall(Path(job.path)) if state == "done" else None
        described["cost"] = {**cost, **({"measured wall": duration(wall)} if wall else {})}
    return described


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _si(value: float) -> str:
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{unit}"
    return f"{value:.3g}"


def job_costs(workdir: Path, tasks: list[Config], calibrating: bool) -> dict[int, dict[str, Any]]:
    """The ``cost`` of each training task, by its index in ``tasks``. The wall time comes from
    earlier jobs of the same shape in ``workdir``, else from its calibration (measured now
    when ``calibrating`` and missing), else it is unknown."""
    training = {i: task for i, task in enumerate(tasks) if isinstance(task, TrainerTask)}
    shapes = {i: shape_id(shape_of(task)) for i, task in training.items()}
    earlier = earlier_jobs([Path(task.__xpm__.job.path).parent for task in training.values()])
    records = calibrate.read_cache(workdir)
    missing = {shapes[i]: t for i, t in training.items() if shapes[i] not in {**earlier, **records}}
    off = calibrate.switch(calibrate.SWITCH) is None
    why = f"{calibrate.SWITCH}=0" if off else f"not calibrated: dry run with {calibrate.SWITCH}=1"
    whys = dict.fromkeys(missing, why)
    if missing and calibrate.enabled(calibrating):
        print(
            f"Calibrating {len(missing)} job shape(s) on this machine, in a subprocess "
            f"(about 10 s each; {calibrate.SWITCH}=0 skips it)...",
            flush=True,
        )
        began = time.perf_counter()
        try:
            measured = calibrate.calibrate(workdir, missing)
        except calibrate.CalibrationError as error:
            print(f"Warning: {error}", file=sys.stderr, flush=True)
            measured = {key: {calibrate.ERROR: ""} for key in missing}
        for key, record in measured.items():
            if calibrate.ERROR not in record:
                records[key] = record
                continue
            whys[key] = "the calibration failed"
            if record[calibrate.ERROR]:
                print(f"Warning: calibration: {record[calibrate.ERROR]}", file=sys.stderr)
        print(f"Calibrated in {time.perf_counter() - began:.0f}s", flush=True)
    costs = {}
    for i, task in training.items():
        cost = work(task)
        guess = estimate(
            task, earlier.get(shapes[i]), records.get(shapes[i]), whys.get(shapes[i], "")
        )
        if guess.wall_s is not None and guess.tokens_per_s is not None:
            cost["tokens/s"] = round(guess.tokens_per_s)
            cost["estimated wall"] = duration(guess.wall_s)
            cost["estimated wall_s"] = round(guess.wall_s, 1)
        costs[i] = {**cost, "source": guess.source}
    return costs


def _kind(source: str) -> str:
    return "from earlier jobs" if source.startswith("from") else source.split(" (")[0]


def cost_totals(jobs: list[dict[str, Any]]) -> str | None:
    """The training jobs to run: their tokens, FLOPs and estimated wall time, summed."""
    costs = [job["cost"] for job in jobs if "cost" in job]
    if not costs:
        return None
    to_run = [job["cost"] for job in jobs if "cost" in job and job["state"] != "done"]
    done = f"; {len(costs) - len(to_run)} done" if len(costs) > len(to_run) else ""
    if not to_run:
        return f"Training: nothing to run{done}"
    tokens = sum(cost["tokens"] for cost in to_run)
    flops = [cost["flops"] for cost in to_run if cost["flops"] is not None]
    walls = [cost["estimated wall_s"] for cost in to_run if "estimated wall_s" in cost]
    sources = [_kind(cost["source"]) for cost in to_run]
    counted = "wall times: " + ", ".join(f"{sources.count(s)} {s}" for s in dict.fromkeys(sources))
    text = f"Training: {len(to_run)} job(s) to run{done}: {_si(tokens)} tokens"
    text += f", {sum(flops):.3g} FLOPs" if flops else ""
    if not walls:
        return f"{text}, estimated wall unknown ({counted})"
    some = f" for {len(walls)} of the {len(to_run)} jobs" if len(walls) < len(to_run) else ""
    return f"{text}, estimated wall {duration(sum(walls))}{some} (sum over the jobs; {counted})"


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
    totals = cost_totals(jobs)
    return "\n".join(lines + ([totals] if totals else []))


def write_plan(xp: Any, tasks: list[Config], sweeps: dict[str, list[str]] | None = None) -> None:
    """Print the plan when nothing runs (dry run, generate only); otherwise save it in the
    experiment's run folder. Both print the grid and how many jobs are new or cached."""
    from experimaestro.scheduler.workspace import RunMode

    dry_run = xp.run_mode == RunMode.DRY_RUN
    costs = job_costs(Path(xp.workspace.path), tasks, calibrating=dry_run)
    jobs = [describe_job(task, costs.get(index)) for index, task in enumerate(tasks)]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when installed
    text = yaml.dump(jobs, Dumper=dumper, sort_keys=False, default_flow_style=None)
    if xp.run_mode != RunMode.NORMAL:
        print(f"Plan ({len(tasks)} jobs):\n{text}", file=sys.stdout, flush=True)
    else:
        path = Path(xp.workdir) / "plan.yaml"
        path.write_text(text)
        print(f"Plan: {path}", flush=True)
    print(summary(jobs, sweeps or {}), flush=True)
