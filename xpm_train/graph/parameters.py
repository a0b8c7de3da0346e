"""What a Config class lets a YAML section set: its parameters, the Config types they hold,
and the message for a key that is none of them (with the closest parameter, or the component
parameter it may mean)."""

from __future__ import annotations

import difflib
from typing import Any

from experimaestro import Config
from experimaestro.core.types import ArrayType, ObjectType

from xpm_train.registry import component_kind, registered
from xpm_train.tasks.checkpoint import Checkpoint

#: Parameters that planning sets, never the YAML: the sources' fingerprint of
#: ``code_changes: rerun`` and the content fingerprint of data files.
SET_AT_PLANNING = ("code_fingerprint", "content")


def parameters(cls: type[Config]) -> dict[str, Any]:
    """The arguments of a Config class a YAML file may set (generated paths, constants and
    what planning sets left out)."""
    return {
        name: argument
        for name, argument in cls.__getxpmtype__().arguments.items()
        if not (argument.generator or argument.constant or name in SET_AT_PLANNING)
    }


def config_type(argument: Any) -> type | None:
    """The Config class an argument holds, or None for a plain value."""
    return argument.type.value_type if isinstance(argument.type, ObjectType) else None


def item_config_type(argument: Any) -> type | None:
    """The Config class of the items of a list argument (``list[ParamGroup]``), or None."""
    kind = argument.type
    if isinstance(kind, ArrayType) and isinstance(kind.type, ObjectType):
        return kind.type.value_type
    return None


def is_checkpoint(argument: Any) -> bool:
    base = config_type(argument)
    return base is not None and issubclass(base, Checkpoint)


def unknown_parameter(key: str, cls: type[Config], what: str) -> str:
    """The message for ``key``, not a parameter of ``cls``: the closest parameter, or the
    components of ``cls`` that have ``key`` (``lr`` of a stage: ``schedule.lr``)."""
    known = list(parameters(cls))
    close = difflib.get_close_matches(key, known, n=1) or nested_parameter(key, cls)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown parameter{hint} of {what}; its parameters are: {', '.join(sorted(known))}"


def nested_parameter(key: str, cls: type[Config]) -> list[str]:
    """``<component>.<key>`` for the components of ``cls`` (any registered choice) that have
    a parameter ``key``."""
    found = []
    for name, argument in parameters(cls).items():
        base = config_type(argument) or item_config_type(argument)
        kind = component_kind(base) if base is not None else None
        choices = [c for c in registered(kind).values() if issubclass(c, base)] if kind else []
        if any(key in parameters(choice) for choice in choices or ([base] if base else [])):
            found.append(f"{name}.{key}")
    return found
