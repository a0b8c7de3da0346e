"""An experiment from its YAML: the stage graph's jobs, an evaluation of every checkpoint on
the held-out part of every text dataset of the graph, and a report (docs/yaml.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from experimaestro import stop_tags
from experimaestro.utils.config import validate_attrs

from xpm_train.data.datasets import TextDataset
from xpm_train.graph.dag import Materialise, StageGraph, StageInstance
from xpm_train.graph.parameters import parameters
from xpm_train.graph.sections import convert_value
from xpm_train.graph.sweeps import format_value
from xpm_train.graph.tags import EVALUATES_TAG, tag_job
from xpm_train.launchers.config import LauncherBlock, LauncherChoice, LauncherSection
from xpm_train.tasks.evaluate import Evaluate, HeldOutSplit
from xpm_train.tasks.report import Report
from xpm_train.tasks.trainer import TrainerTask
from xpm_train.training.mesh_shape import local_cpu_devices, validate_layout
from xpm_train.validation import Problems

#: The parameters of an evaluation that the graph sets (every other one is in ``evaluation:``).
SET_BY_THE_GRAPH = ("checkpoint", "datasets")


@dataclass
class PlannedExperiment:
    """Every job of an experiment, built (and submitted, when running)."""

    instances: list[StageInstance]
    evaluations: dict[str, Evaluate]
    report: Report | None
    """None when only validated"""

    @property
    def tasks(self) -> list[Any]:
        tasks = [i.task for i in self.instances if i.is_job] + list(self.evaluations.values())
        return tasks + ([self.report] if self.report is not None else [])

    def sweeps(self) -> dict[str, list[str]]:
        """Each swept key and its values, in the order of the grid."""
        found: dict[str, list[str]] = {}
        for instance in self.instances:
            for key, value in instance.point.items():
                values = found.setdefault(key, [])
                if format_value(value) not in values:
                    values.append(format_value(value))
        return found


def held_out_splits(instances: list[StageInstance]) -> dict[str, HeldOutSplit]:
    """The held-out part of each text dataset the stages train on, named by the stage that
    holds it out, or by the job's label when that stage's jobs differ in their data (a swept
    dataset). Every evaluation takes all of them: a new dataset reruns every evaluation."""
    by_stage: dict[str, dict[bytes, tuple[str, HeldOutSplit]]] = {}
    for instance in instances:
        task = instance.task
        data = task.training_data() if isinstance(task, TrainerTask) else None
        if isinstance(data, TextDataset):
            split = HeldOutSplit.C(dataset=data, eval_fraction=task.eval_fraction, seed=task.seed)
            distinct = by_stage.setdefault(instance.stage, {})
            distinct.setdefault(split.__xpm__.identifier.all, (instance.label, split))
    splits: dict[str, HeldOutSplit] = {}
    seen: set[bytes] = set()
    for stage, distinct in by_stage.items():
        for identity, (label, split) in distinct.items():
            if identity not in seen:
                seen.add(identity)
                splits[stage if len(distinct) == 1 else label] = split
    return splits


def evaluation_parameters(section: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """The ``evaluation:`` section's values, checked against Evaluate's own parameters."""
    arguments = {k: a for k, a in parameters(Evaluate).items() if k not in SET_BY_THE_GRAPH}
    values = {}
    for key, value in section.items():
        if key not in arguments:
            known = ", ".join(sorted(arguments))
            problems.add(key, f"unknown parameter of the evaluations; they are: {known}")
        elif value is None:
            continue  # null: the parameter's default
        else:
            values[key] = convert_value(arguments[key], value, key, problems)
    return values


def stage_launcher(value: Any) -> LauncherChoice:
    """A stage section's ``launcher`` value as the launcher section's types read it."""
    if isinstance(value, Mapping):
        return validate_attrs(LauncherBlock, dict(value))
    return value


def stage_devices(values: Mapping[str, Any]) -> dict[str, int]:
    """The devices each stage's jobs get, where planning knows them: from a ``{slurm: ...}``
    block, or this machine's CPU devices for a local job (when JAX has no GPU or TPU plugin)."""
    section = validate_attrs(LauncherSection, dict(values.get("launcher") or {}))
    devices = {}
    local = local_cpu_devices()
    for name, stage in (values.get("stages") or {}).items():
        own = stage.get("launcher") if isinstance(stage, Mapping) else None
        _, choice = section.choice(f"stages.{name}.launcher", stage_launcher(own))
        if isinstance(choice, LauncherBlock):
            devices[name] = choice.slurm.devices()
        elif choice == "local" and local is not None:
            devices[name] = local
    return devices


def validate_layouts(instances: list[StageInstance], devices: Mapping[str, int]) -> list[Any]:
    """The mesh and batch of each training job against the devices its launcher gives."""
    found = []
    for instance in instances:
        task = instance.task
        if instance.stage in devices and isinstance(task, TrainerTask):
            layout = (task.model_parallel, task.fsdp, task.batch_size, task.micro_batch_size)
            for key, message in validate_layout(devices[instance.stage], *layout):
                found.append((f"stages.{instance.stage}.{key}", message))
    return found


def plan_experiment(
    stages: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    title: str,
    materialise: Materialise,
    submit: Callable[[Any, str], Any] | None = None,
    devices: Mapping[str, int] | None = None,
) -> tuple[PlannedExperiment | None, list[tuple[str, str]]]:
    """Build every job; ``submit(task, launcher key)`` submits evaluations and the report
    (None: only build); ``devices``: those a stage's launcher gives its jobs, when known.
    Returns the experiment (None on problems) and the problems, keyed by their YAML path."""
    problems = Problems()
    graph = StageGraph(stages)
    instances = graph.instances(materialise, problems)
    found = [(f"stages.{key}", message) for key, message in problems.found]
    found += validate_layouts(instances, devices or {})
    local = Problems()
    settings = evaluation_parameters(evaluation, local)
    found += [(f"evaluation.{key}", message) for key, message in local.found]
    if not graph.sections and not found:
        found.append(("stages", "no training stage: give at least one (docs/yaml.md)"))
    if found:
        return None, found
    splits = held_out_splits(instances)
    evaluations: dict[str, Evaluate] = {}
    models = [instance for instance in instances if instance.is_model]
    if models and not splits:
        message = (
            "no stage trains on a text dataset, so no held-out text to evaluate the models on: "
            "add one (e.g. continued pretraining from the first model: a kl stage with beta 0 "
            "and a dataset, as in yaml/backbone.yaml)"
        )
        return None, [("stages", message)]
    for instance in models:
        task = Evaluate.C(checkpoint=stop_tags(instance.output), datasets=splits, **settings)
        tag_job(task, EVALUATES_TAG, instance.stage, instance.point)
        local = Problems()
        local.validate("", task)
        found += [(f"evaluation.{key}".rstrip("."), m) for key, m in local.found]
        evaluations[instance.label] = task
    if found:
        return None, list(dict.fromkeys(found))
    if submit is None:  # validated: a report cannot take evaluations that are not submitted
        return PlannedExperiment(instances, evaluations, None), []
    outputs = {label: submit(task, "evaluation") for label, task in evaluations.items()}
    report = Report.C(
        evaluations=stop_tags(outputs),
        title=title,
        stage_kinds={i.label: i.kind for i in models},
        points={i.label: {k: format_value(v) for k, v in i.point.items()} for i in models},
    )
    submit(report, "report")
    return PlannedExperiment(instances, evaluations, report), []


def validate_experiment(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem of an experiment's ``stages:`` and ``evaluation:`` sections, built with
    stand-ins for the checkpoints (nothing is submitted)."""
    _, problems = plan_experiment(
        values.get("stages") or {},
        values.get("evaluation") or {},
        "",
        lambda task, _: task.planned_output(),
        devices=stage_devices(values),
    )
    return problems
