"""The experiment graph: named stage sections, ordered by their upstream references, each
built once per point of the grid (sweeps) and per instance of its upstream stages."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from experimaestro import Config, Task

from xpm_train.graph.parameters import is_checkpoint, parameters, unknown_parameter
from xpm_train.graph.sections import KIND, LAUNCHER, build_stage, stage_class, stage_references
from xpm_train.graph.sweeps import grid, point_label, substituted, swept_values
from xpm_train.graph.tags import STAGE_TAG, tag_job
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.validation import Problems

#: Names a stage cannot have: the other jobs' keys in ``launcher:``.
RESERVED_NAMES = ("default", "evaluation", "report", "max_retries")

#: What turns a built stage into its output (a checkpoint, a tokenizer): ``planned_output()``
#: when planning, ``submit(...)`` when running (it gets the stage's name too).
Materialise = Callable[[Config, str], Any]


@dataclass
class StageInstance:
    """One job of a stage: the task built for one grid point."""

    stage: str
    """The stage's name in the YAML"""
    point: dict[str, Any]
    """The swept values that made it, upstream ones included: ``{"pretrain.schedule.lr": ..}``"""
    task: Config
    """A training Task, another Task, or a source that runs no job"""
    output: Any

    @property
    def is_job(self) -> bool:
        return isinstance(self.task, Task)

    @property
    def is_model(self) -> bool:
        """Whether it gives a model checkpoint (that the experiment then evaluates)."""
        return isinstance(self.output, Checkpoint)

    @property
    def label(self) -> str:
        return point_label(self.stage, self.point)

    @property
    def kind(self) -> str:
        return type(self.task).registered_name  # type: ignore[attr-defined]


@dataclass
class _Chosen:
    """The upstream instances one downstream instance is built from."""

    instances: dict[str, StageInstance]
    all_names: list[str] = field(default_factory=list)

    def output(self, stage: str) -> Any:
        return self.instances[stage].output

    def task(self, stage: str) -> Config:
        return self.instances[stage].task

    def names(self) -> list[str]:
        return self.all_names


def _compatible(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The union of points that agree on the keys they share, else None."""
    merged: dict[str, Any] = {}
    for point in points:
        for key, value in point.items():
            if key in merged and merged[key] != value:
                return None
            merged[key] = value
    return merged


class StageGraph:
    """The ``stages:`` mapping of an experiment file."""

    def __init__(self, stages: Mapping[str, Any]) -> None:
        # A stage set to null (e.g. ``-c stages.dpo=null``) is left out of an imported graph.
        self.sections = {name: section for name, section in stages.items() if section is not None}

    def order(self, problems: Problems) -> list[str]:
        """The stages, each after the ones it references; problems for unknown references and
        cycles (the stages involved are left out)."""
        references: dict[str, dict[str, list[str]]] = {}
        classes: dict[str, type[Config]] = {}
        for name, section in self.sections.items():
            if name in RESERVED_NAMES:
                problems.add(
                    name,
                    f"the name {name!r} is reserved (launcher.{name} is the launcher of the "
                    "jobs of that name); give the stage another name",
                )
                continue
            local = Problems()
            cls = stage_class(section, local)
            problems.found += [(f"{name}.{key}".rstrip("."), m) for key, m in local.found]
            if cls is not None:
                classes[name] = cls
                references[name] = stage_references(cls, section)
                known = list(parameters(cls))
                for key in section:
                    if key not in (*known, KIND, LAUNCHER):
                        what = f"stage kind {section[KIND]!r}"
                        problems.add(f"{name}.{key}", unknown_parameter(key, cls, what))
        ordered: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> bool:
            if state.get(name) == "done":
                return True
            if state.get(name) in ("visiting", "failed"):
                return False
            state[name] = "visiting"
            fine = True
            edges = [(key, up) for key, names in references[name].items() for up in names]
            for key, upstream in edges:
                chain = [*path, name]
                if upstream in chain:
                    cycle = " -> ".join([*chain[chain.index(upstream) :], upstream])
                    problems.add(f"{name}.{key}", f"the stages form a cycle: {cycle}")
                    fine = False
                elif upstream not in references:
                    if upstream not in self.sections:
                        known = ", ".join(sorted(self.sections))
                        argument = parameters(classes[name]).get(key)
                        data = argument is None or not is_checkpoint(argument)
                        spec = " (a component is a {name: ...} spec)" if data else ""
                        problems.add(
                            f"{name}.{key}",
                            f"unknown stage {upstream!r}{spec}; the stages are: {known}",
                        )
                    fine = False
                elif not visit(upstream, [*path, name]):
                    fine = False
            state[name] = "done" if fine else "failed"
            if fine:
                ordered.append(name)
            return fine

        for name in references:
            visit(name, [])
        return ordered

    def references(self, name: str, section: Mapping[str, Any]) -> list[str]:
        """The stages a section (of stage ``name``, one grid point) takes something from."""
        cls = stage_class(self.sections[name], Problems())
        assert cls is not None
        return sorted({up for names in stage_references(cls, section).values() for up in names})

    def launcher(self, name: str) -> Any:
        return self.sections[name].get(LAUNCHER)

    def sweeps(self, problems: Problems) -> dict[str, dict[str, list[Any]]]:
        """Every stage's swept values, ``{stage: {key: values}}``."""
        found = {}
        for name, section in self.sections.items():
            local = Problems()
            found[name] = swept_values(section, local)
            problems.found += [(f"{name}.{key}", m) for key, m in local.found]
        return found

    def instances(self, materialise: Materialise, problems: Problems) -> list[StageInstance]:
        """Every job of every stage, in an order where upstream jobs come first. Problems are
        keyed by ``<stage>.<parameter>``; a stage with problems has no instance."""
        order = self.order(problems)
        sweeps = self.sweeps(problems)
        built: dict[str, list[StageInstance]] = {}
        names = list(self.sections)
        for name in order:
            cls = stage_class(self.sections[name], Problems())
            assert cls is not None
            built[name] = []
            for own in grid(sweeps[name]):
                section = substituted(self.sections[name], own)
                upstream = self.references(name, section)
                for combination in itertools.product(*(built[u] for u in upstream)):
                    merged = _compatible([instance.point for instance in combination])
                    if merged is None:
                        continue
                    chosen = _Chosen(dict(zip(upstream, combination, strict=True)), names)
                    point = {**merged, **{f"{name}.{key}": v for key, v in own.items()}}
                    local = Problems()
                    task = build_stage(cls, section, chosen, local)
                    for key, message in local.found:
                        entry = (f"{name}.{key}".rstrip("."), message)
                        if entry not in problems.found:
                            problems.add(*entry)
                    if task is not None:
                        tag_job(task, STAGE_TAG, name, point)
                        instance = StageInstance(name, point, task, materialise(task, name))
                        built[name].append(instance)
        instances = [instance for name in order for instance in built[name]]
        labels = [instance.label for instance in instances]
        for label in sorted({label for label in labels if labels.count(label) > 1}):
            stage = label.split("[", 1)[0]
            problems.add(stage, f"two jobs are labelled {label}: give distinct swept values")
        return instances
