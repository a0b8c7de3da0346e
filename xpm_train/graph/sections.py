"""One section of the YAML ``stages:`` mapping turned into its stage's Task.

A section names its stage kind (``kind: dpo``); every other key is a parameter of that kind's
registered Task, checked and converted with the Task's own declaration (no second list of
parameters): a checkpoint parameter (``init``, ``reference``) takes the name of an upstream
stage, a component parameter a ``{name: ..., ...}`` spec (or the name of a stage, whose
training data it then is), any other parameter a value of its type. ``launcher`` says where
the stage's jobs run (docs/slurm.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from experimaestro import Config, stop_tags

from xpm_train.data.datasets import TextDataset
from xpm_train.data.files import LocalFiles
from xpm_train.graph.parameters import (
    config_type,
    is_checkpoint,
    item_config_type,
    parameters,
    unknown_parameter,
)
from xpm_train.graph.sweeps import SWEEP, is_sweep
from xpm_train.registry import component_kind, registered, type_name
from xpm_train.tasks.checkpoint import Checkpoint, checkpoint_reference
from xpm_train.tasks.trainer import TrainerTask
from xpm_train.tracking.loggers import MetricsLogger, build_logger
from xpm_train.validation import ConfigError, Problems

#: Section keys that are not parameters of the stage's Task.
KIND, LAUNCHER = "kind", "launcher"
#: Parameters of a component that follow the stage whose training data it is given (so that
#: this stage's held-out part stays unseen), and the stage parameter each one follows.
SPLIT_PARAMETERS = {"eval_fraction": "eval_fraction", "split_seed": "seed"}


class Upstream(Protocol):
    """What a stage section may take from the stages built before it."""

    def output(self, stage: str) -> Any:
        """What the stage produces: a Checkpoint, a tokenizer, ..."""
        ...

    def task(self, stage: str) -> Config: ...

    def names(self) -> list[str]: ...


def stage_kinds() -> dict[str, type[Config]]:
    """The registered stage kinds: training Tasks, other Tasks (a tokenizer, an export) and
    sources that run no job (a Hugging Face folder)."""
    return registered("stage")


def stage_class(section: Any, problems: Problems) -> type[Config] | None:
    """The Task class the section's ``kind`` names (None, with a problem, if none)."""
    kinds = stage_kinds()
    if not isinstance(section, Mapping):
        problems.add("", f"expected a mapping with a 'kind' key, got {section!r}")
        return None
    kind = section.get(KIND)
    if not isinstance(kind, str) or kind not in kinds:
        if kind is None:
            what = "missing"
        elif is_sweep(kind):
            what = "a stage kind cannot be swept (declare one stage per kind)"
        else:
            what = f"unknown stage kind {kind!r}"
        problems.add(KIND, f"{what}; the stage kinds are: {', '.join(sorted(kinds))}")
        return None
    return kinds[kind]


def stage_references(cls: type[Config], section: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{key: upstream stages}`` for every value of the section naming other stages: its
    checkpoint parameters and the components given as a stage's training data (several
    stages when the value is swept)."""
    references: dict[str, list[str]] = {}

    def walk(config_class: type[Config], values: Mapping[str, Any], prefix: str) -> None:
        arguments = parameters(config_class)
        for key, value in values.items():
            argument = arguments.get(key)
            base = config_type(argument) if argument is not None else None
            if base is not None:
                # a swept value references every stage any of its values names
                for item in value[SWEEP] if is_sweep(value) else [value]:
                    visit(base, argument, item, f"{prefix}{key}")

    def visit(base: type, argument: Any, value: Any, path: str) -> None:
        if isinstance(value, str):
            stage = checkpoint_reference(value)[0] if is_checkpoint(argument) else value
            references.setdefault(path, []).append(stage)
        elif isinstance(value, Mapping) and not is_checkpoint(argument):
            kind = component_kind(base)
            name = value.get("name")
            chosen = registered(kind).get(name) if kind and isinstance(name, str) else None
            if chosen is not None:
                walk(chosen, value, f"{path}.")

    walk(cls, {k: v for k, v in section.items() if k not in (KIND, LAUNCHER)}, "")
    return references


def build_stage(
    cls: type[Config], section: Mapping[str, Any], upstream: Upstream, problems: Problems
) -> Config | None:
    """The stage's Task from a section without sweeps, validated; None if anything is wrong
    (each problem added under its key)."""
    values = {k: v for k, v in section.items() if k not in (KIND, LAUNCHER)}
    built = _build_config(
        cls,
        values,
        "",
        f"stage kind {getattr(cls, 'registered_name', cls.__name__)!r}",
        upstream,
        problems,
    )
    if built is None:
        return None
    problems.validate("", built)
    return None if problems.found else built


def _build_config(
    cls: type[Config],
    values: Mapping[str, Any],
    prefix: str,
    what: str,
    upstream: Upstream | None,
    problems: Problems,
) -> Config | None:
    arguments = parameters(cls)
    converted: dict[str, Any] = {}
    before = len(problems.found)
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key == "name" and prefix:
            continue
        if key not in arguments:
            problems.add(path, unknown_parameter(key, cls, what))
            continue
        if value is None and not arguments[key].required:
            continue  # null: the parameter's default
        converted[key] = convert_value(arguments[key], value, path, problems, upstream)
        if isinstance(value, str) and isinstance(converted[key], Config):
            # an upstream stage's output: its job's tags stay its own (docs/monitoring.md)
            converted[key] = stop_tags(converted[key])
    for key, argument in arguments.items():
        if argument.required and key not in values:
            doc = f" ({argument.help})" if argument.help else ""
            problems.add(f"{prefix}{key}", f"missing: {what} needs it{doc}")
    if len(problems.found) > before:
        return None
    try:
        config = cls.C(**converted)
    except (ValueError, TypeError, KeyError) as error:
        problems.add(prefix.rstrip("."), str(error))
        return None
    if isinstance(config, LocalFiles):
        problems.call(f"{prefix}path", config.resolve_files)
    return config


def convert_value(
    argument: Any, value: Any, path: str, problems: Problems, upstream: Upstream | None = None
) -> Any:
    """A section's value for ``argument``, converted to its type (stage names resolved)."""
    base = config_type(argument)
    if value is None:
        if argument.required:
            problems.add(path, "is required and cannot be null")
        return None
    item_type = item_config_type(argument)
    if item_type is not None and isinstance(value, list):
        return [
            _item(item_type, item, f"{path}.{index}", problems, upstream)
            for index, item in enumerate(value)
        ]
    if base is None:
        try:
            return argument.validate(value)
        except (ValueError, TypeError):
            problems.add(path, f"{value!r} is not a valid {type_name(argument)}")
            return None
    if isinstance(value, Config):  # built in Python (registry.build), not from YAML
        if not isinstance(value, base):
            problems.add(path, f"expected a {base.__name__}, got a {type(value).__name__}")
        return value
    if isinstance(value, str):
        if upstream is None:
            problems.add(path, f"expected a {{name: ...}} spec, got {value!r}")
            return None
        return _stage_value(base, value, path, upstream, problems)
    if issubclass(base, Checkpoint):
        problems.add(path, f"expected the name of an upstream stage, got {value!r}")
        return None
    if issubclass(base, MetricsLogger) and isinstance(value, Mapping):
        try:
            return build_logger(value, path)
        except ValueError as error:
            problems.add(path, str(error))
            return None
    return _component(base, value, path, upstream, problems)


def _item(
    cls: type[Config], value: Any, path: str, problems: Problems, upstream: Upstream | None
) -> Any:
    """One item of a list of Configs: a Config, a ``{name: ...}`` spec for a registered kind,
    or a mapping of the class's parameters."""
    if isinstance(value, Config):
        return value
    if component_kind(cls) is not None:
        return _component(cls, value, path, upstream, problems)
    if not isinstance(value, Mapping):
        problems.add(path, f"expected a mapping of {cls.__name__} parameters, got {value!r}")
        return None
    return _build_config(cls, value, f"{path}.", cls.__name__, upstream, problems)


def _stage_value(base: type, value: str, path: str, upstream: Upstream, problems: Problems) -> Any:
    checkpoint = issubclass(base, Checkpoint)
    name, which = checkpoint_reference(value) if checkpoint else (value, "final")
    if name not in upstream.names():
        stages = ", ".join(sorted(upstream.names()))
        given = "" if checkpoint else " (a component is a {name: ...} spec)"
        problems.add(path, f"unknown stage {name!r}{given}; the stages are: {stages}")
        return None
    output = upstream.output(name)
    if isinstance(output, base) and which == "best":  # e.g. init: sft.best
        best = getattr(upstream.task(name), "best_output", None)
        if best is None:
            problems.add(path, f"stage {name!r} trains nothing: it has no best checkpoint")
            return None
        try:
            return best(output, name)
        except ConfigError as error:
            problems.add(path, str(error))
            return None
    if isinstance(output, base):
        return output
    stage = upstream.task(name)
    kind = getattr(stage, "registered_name", type(stage).__name__)
    if issubclass(base, Checkpoint):
        problems.add(path, f"stage {name!r} ({kind}) produces no model checkpoint")
        return None
    data = stage.training_data() if isinstance(stage, TrainerTask) else None
    if isinstance(data, base):
        return data
    if data is None or not issubclass(base, TextDataset):
        what = component_kind(base) or base.__name__
        problems.add(path, f"stage {name!r} ({kind}) gives no {what}")
        return None
    given = getattr(data, "registered_name", type(data).__name__)
    problems.add(
        path,
        f"stage {name!r} trains on a {given!r} {component_kind(type(data)) or 'dataset'}, "
        f"which is not a {base.__name__}; give a spec of its own instead of a stage name",
    )
    return None


def build_component(kind: str, spec: Any, where: str, problems: Problems) -> Config | None:
    """The component a ``{name: ..., ...}`` spec of ``kind`` describes (no stage to refer
    to); None if anything is wrong (each problem added under ``where.<key>``)."""
    return _component(Config, spec, where, None, problems, kind)


def _component(
    base: type,
    spec: Any,
    path: str,
    upstream: Upstream | None,
    problems: Problems,
    kind: str | None = None,
) -> Config | None:
    kind = kind or component_kind(base)
    choices = {
        name: cls
        for name, cls in (registered(kind) if kind else {}).items()
        if issubclass(cls, base)
    }
    name = spec.get("name") if isinstance(spec, Mapping) else None
    if not isinstance(name, str) or name not in choices:
        got = spec.get("name") if isinstance(spec, Mapping) else spec
        problems.add(
            f"{path}.name" if isinstance(spec, Mapping) else path,
            f"unknown {kind or base.__name__} {got!r}; available: {', '.join(sorted(choices))}",
        )
        return None
    cls = choices[spec["name"]]
    values = dict(spec)
    arguments = parameters(cls)
    for key, value in spec.items():
        argument = arguments.get(key)
        if isinstance(value, str) and argument is not None and config_type(argument) is not None:
            stage = upstream.task(value) if upstream and value in upstream.names() else None
            if isinstance(stage, TrainerTask):  # a stage's data: its split
                for own, stage_key in SPLIT_PARAMETERS.items():
                    if own in arguments and own not in spec:
                        values[own] = getattr(stage, stage_key)
    return _build_config(cls, values, f"{path}.", f"{kind} {spec['name']!r}", upstream, problems)
