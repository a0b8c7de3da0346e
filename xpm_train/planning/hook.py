"""The ``pre_experiment`` hook that makes ``run-experiment`` strict (``yaml/pre_experiment.py``).

It runs inside experimaestro's ``run-experiment`` command, before the experiment module is
loaded and before anything is submitted. It re-reads the YAML files and ``-c`` overrides
(:class:`Sources`), checks them against the experiment's configuration class
(:func:`validate_configuration`) and, on any problem, prints one message per problem and
exits with status 2. With ``--show`` it prints the merged YAML, each value annotated with the file
or override that set it. The experiment's ``run`` then calls :func:`checked_configuration` to
get the configuration with typed ``-c`` values (lists included).
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from experimaestro.exceptions import HandledException
from experimaestro.utils.config import validate_attrs

from xpm_train.planning.sources import SourceError, Sources
from xpm_train.planning.strict import validate_configuration

ConfigurationType = TypeVar("ConfigurationType")

#: The merged configuration checked by the hook (None when the hook did not run).
_checked_values: dict[str, Any] | None = None


def experiment_schema(values: dict[str, Any]) -> type:
    """The configuration class of the experiment named by ``file`` or ``module``: the
    annotation of its ``run(helper, configuration)``'s second parameter."""
    if values.get("file"):
        path = Path(values["file"])
        path = path if path.exists() or path.suffix == ".py" else path.with_suffix(".py")
        spec = importlib.util.spec_from_file_location(f"_xpm_train_schema_{path.stem}", path)
        if spec is None or spec.loader is None or not path.is_file():
            raise SourceError(f"file: {values['file']!r}: no such experiment file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    elif values.get("module"):
        module = importlib.import_module(values["module"])
    else:
        raise SourceError("the YAML names no experiment: give a 'file' or a 'module' key")
    run = getattr(module, "run", None)
    parameters = list(inspect.signature(run).parameters.values()) if callable(run) else []
    if len(parameters) != 2:
        raise SourceError(f"{module.__name__}: no run(helper, configuration) function")
    schema = parameters[1].annotation
    return getattr(module, schema) if isinstance(schema, str) else schema


def annotated_yaml(values: Any, sources: Sources, prefix: str = "", indent: str = "") -> str:
    """``values`` as YAML, each leaf followed by a comment naming where it was set."""
    lines = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.append(annotated_yaml(value, sources, path, indent + "  "))
        else:
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            text = text.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"{indent}{key}: {text}  # {sources.origin(path)}")
    return "\n".join(lines)


def _fail(yaml_file: str, problems: list[str]) -> NoReturn:
    message = "\n".join(f"  - {problem}" for problem in problems)
    click.secho(
        f"Invalid experiment configuration ({yaml_file}); nothing was submitted:\n{message}",
        fg="red",
        err=True,
    )
    sys.exit(2)


def strict_configuration() -> None:
    """Check the configuration of the running ``run-experiment`` command (no-op elsewhere)."""
    global _checked_values
    context = click.get_current_context(silent=True)
    if context is None or "extra_conf" not in context.params:
        return
    params = context.params
    yaml_file = params["yaml_file"]
    try:
        sources = Sources.load(
            yaml_file, params["pre_yaml"], params["post_yaml"], params["extra_conf"]
        )
        schema = experiment_schema(sources.values)
    except SourceError as error:
        _fail(yaml_file, [str(error)])
    problems = validate_configuration(schema, sources)
    if params.get("show"):
        click.echo(annotated_yaml(sources.values, sources))
        if problems:
            _fail(yaml_file, problems)
        sys.exit(0)
    if problems:
        _fail(yaml_file, problems)
    _checked_values = sources.values


def strict_hook_ran() -> bool:
    """Whether the strict hook checked this run's configuration (``validate_values``
    included), so the experiment need not check it again."""
    return _checked_values is not None


def checked_configuration(configuration: ConfigurationType) -> ConfigurationType:
    """The configuration as the strict hook read it (``-c`` values typed as YAML, lists
    included), or ``configuration`` itself when the hook did not run."""
    if _checked_values is None:
        return configuration
    return validate_attrs(type(configuration), copy.deepcopy(_checked_values))


class PlanningError(HandledException):
    """A check of the experiment's tasks failed before anything was submitted
    (experimaestro prints the message and exits with status 1)."""
