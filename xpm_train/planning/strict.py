"""Strict checking of an experiment's merged YAML against its ``@configuration`` classes.

experimaestro 2.7.0 validates with ``extra="allow"``: a key that the configuration does not
define (``dpo.bta``) is silently dropped. Here every key must exist (else the closest valid
key is suggested), every value must have its field's type, and a component spec (a field
declared with :func:`component`) must name a registered component with known parameters.
Each message says where the value came from (a YAML file or a ``-c`` override).
"""

from __future__ import annotations

import difflib
import functools
import operator
import reprlib
import types
import typing
from typing import Any

import attrs
from pydantic import TypeAdapter, ValidationError

from xpm_train.planning.sources import Sources
from xpm_train.registry import validate_spec

#: attrs metadata key naming the registry kind of a component field.
COMPONENT = "xpm_train_component"

#: The type of a component field: a spec mapping. ``str`` is allowed only because
#: experimaestro 2.7.0 validates ``-c kl.schedule={name: wsd}`` as the string it received;
#: the strict hook reads that string as YAML, and a spec that is not a mapping is an error.
ComponentSpec = dict[str, Any] | str


def component(kind: str, name: str) -> Any:
    """An attrs field holding a component spec of ``kind``, by default ``{"name": name}``."""
    return attrs.field(factory=lambda: {"name": name}, metadata={COMPONENT: kind})


def _type_label(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        return " or ".join("null" if m is type(None) else _type_label(m) for m in members)
    if attrs.has(annotation):
        return "a mapping"
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(value) for value in typing.get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _union_parts(annotation: Any) -> tuple[type | None, Any]:
    """``(the attrs class, the other members)`` of a union holding one attrs class, e.g.
    ``str | LauncherBlock | None``; ``(None, annotation)`` for any other annotation."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None, annotation
    members = typing.get_args(annotation)
    nested = [member for member in members if attrs.has(member)]
    if len(nested) != 1:
        return None, annotation
    others = [member for member in members if member is not nested[0]]
    return nested[0], functools.reduce(operator.or_, others)


def _value_error(annotation: Any, value: Any) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return True
    except Exception:  # a type pydantic cannot check: leave it to experimaestro
        return False
    return False


def validate_configuration(schema: type, sources: Sources) -> list[str]:
    """Every unknown key, ill-typed value and bad component spec, one message each; then, if
    those are fine and the schema has a ``validate_values(values, sources)`` static method
    (e.g. the stage graph's checks), its messages."""
    errors = validate_section(schema, sources.values, "", sources)
    if not errors and hasattr(schema, "validate_values"):
        errors = schema.validate_values(sources.values, sources)
    return errors


def validate_section(schema: type, data: Any, prefix: str, sources: Sources) -> list[str]:
    where = prefix or "the top level"
    if not isinstance(data, dict):
        return [
            f"{prefix}: expected a mapping of keys, got {reprlib.repr(data)} (from "
            f"{sources.origin(prefix)})"
        ]
    fields = attrs.fields_dict(schema)
    hints = typing.get_type_hints(schema)
    errors = []
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        origin = sources.origin(path)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = (
                f"; did you mean {'.'.join(filter(None, [prefix, close[0]]))!r}?" if close else ""
            )
            valid = ", ".join(name for name in fields if not name.startswith("_"))
            errors.append(
                f"{path}: unknown key (from {origin}){hint} The keys of {where} are: {valid}."
            )
            continue
        field, annotation = fields[key], hints.get(key, Any)
        if COMPONENT in field.metadata:
            errors += [
                f"{message} (from {sources.origin(message.split(':', 1)[0])})"
                for message in validate_spec(field.metadata[COMPONENT], value, path)
            ]
        elif attrs.has(annotation):
            errors += validate_section(annotation, value, path, sources)
        elif (nested := _union_parts(annotation))[0] is not None and isinstance(value, dict):
            errors += validate_section(nested[0], value, path, sources)
        elif _value_error(nested[1], value):
            errors.append(
                f"{path}: expected {_type_label(annotation)}, got {reprlib.repr(value)} "
                f"(from {origin})"
            )
    return errors
