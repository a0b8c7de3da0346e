"""Running an experiment file: check, submit the graph's jobs, write the plan, wait, report."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from experimaestro import Task
from experimaestro.experiments import ExperimentHelper
from experimaestro.launchers.direct import DirectLauncher
from experimaestro.scheduler.workspace import RunMode

from xpm_train.graph.dag import StageGraph
from xpm_train.graph.experiment import plan_experiment, stage_launcher, validate_experiment
from xpm_train.graph.tags import job_label
from xpm_train.launchers import planned_launchers
from xpm_train.launchers.config import LauncherBlock, LauncherSection
from xpm_train.planning.console import ConsoleListener, interrupted, quiet_experimaestro
from xpm_train.planning.failures import raise_on_failed_jobs
from xpm_train.planning.hook import PlanningError, strict_hook_ran
from xpm_train.planning.plan import write_plan
from xpm_train.planning.sources import Sources
from xpm_train.planning.strict import validate_section
from xpm_train.provenance import (
    CODE_CHANGES,
    CODE_PARAMETER,
    describe_other_code,
    export_experiment_git,
    jobs_made_by_other_code,
    sources_fingerprint,
)

#: An experiment id: one folder name under ``<workdir>/experiments/`` (no ``/``, no ``..``).
EXPERIMENT_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def validate_values(values: Mapping[str, Any], sources: Sources) -> list[str]:
    """The graph's problems, each with the file or override that set its key (the strict
    hook's second pass, once keys and types are right)."""
    errors = []
    identifier = values.get("id")
    if isinstance(identifier, str) and not EXPERIMENT_ID.fullmatch(identifier):
        errors.append(
            f"id: {identifier!r} cannot name the experiment's folder: use letters, digits, "
            f"'-', '_' and '.' (not starting with '.'), e.g. 'my-run-2' (from "
            f"{sources.origin('id')})"
        )
    code_changes = values.get("code_changes", "reuse")
    if code_changes not in CODE_CHANGES:
        errors.append(
            f"code_changes: {code_changes!r} is not one of {', '.join(CODE_CHANGES)} (from "
            f"{sources.origin('code_changes')})"
        )
    for name, section in (values.get("stages") or {}).items():
        launcher = section.get("launcher") if isinstance(section, Mapping) else None
        if isinstance(launcher, Mapping):
            errors += validate_section(LauncherBlock, launcher, f"stages.{name}.launcher", sources)
    if errors:
        return errors
    problems = validate_experiment(values)
    return [f"{key}: {message} (from {sources.origin(key)})" for key, message in problems]


#: The experimaestro counter token of ``launcher.local_jobs``.
LOCAL_TOKEN = "xpm-train-local-jobs"


def run_experiment(
    helper: ExperimentHelper,
    stages: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    launcher: LauncherSection,
    title: str,
    code_changes: str = "reuse",
) -> None:
    """Submit every job of the experiment, write its plan, wait, and fail if a job failed.
    ``code_changes``: ``rerun`` puts the xpm_train sources' fingerprint in every job's
    identity; ``reuse`` (default) reuses jobs made by other code and lists them."""
    checked = strict_hook_ran()
    problems = [] if checked else validate_experiment({"stages": stages, "evaluation": evaluation})
    if problems:
        listed = "; ".join(f"{key}: {message}" for key, message in problems)
        raise PlanningError(f"{listed}. Nothing was submitted.")
    graph = StageGraph(stages)
    own = {name: stage_launcher(graph.launcher(name)) for name in graph.sections}
    launchers = planned_launchers(launcher, own, helper.xp.run_mode)

    export_experiment_git()
    quiet_experimaestro()
    console = ConsoleListener({})
    helper.xp.scheduler.addlistener(console)
    limit = launcher.local_jobs
    local_token = helper.xp.token(LOCAL_TOKEN, limit) if limit is not None else None

    def submit(task: Any, name: str) -> Any:
        if not isinstance(task, Task):  # a source (a Hugging Face folder): no job
            return task.planned_output()
        if code_changes == "rerun":
            setattr(task, CODE_PARAMETER, sources_fingerprint())
        options = launchers.submit_options(name)
        if local_token is not None and isinstance(options["launcher"], DirectLauncher):
            task.add_dependencies(local_token.dependency(1))
        output = task.submit(**options)
        job_id = str(task.__xpm__.job.identifier)
        console.labels[job_id] = job_label(task.tags(), name, job_id)
        return output

    planned, _ = plan_experiment(stages, evaluation, title, submit, submit)
    assert planned is not None and planned.report is not None
    other_code = jobs_made_by_other_code([task.__xpm__.job.path for task in planned.tasks])
    if other_code:
        print(describe_other_code(other_code), flush=True)
    write_plan(helper.xp, planned.tasks, planned.sweeps())
    jobs = [task.__xpm__.job for task in planned.tasks]
    stopped = None
    try:
        helper.xp.wait()
    except KeyboardInterrupt:  # experimaestro's wait() after Ctrl-C
        stopped = interrupted(jobs)
    finally:
        helper.xp.scheduler.removelistener(console)
    if stopped is not None:
        raise stopped
    if helper.xp.run_mode in (None, RunMode.NORMAL):  # a dry run runs nothing
        print(console.summary(len(jobs)), flush=True)
    raise_on_failed_jobs(helper.xp)
    print(f"Report: {planned.report.report_path}", flush=True)
