"""What ``xpm-train stages`` and ``xpm-train configure`` print, read from the registry.

``configure`` writes a stage section with every parameter of the stage's Task (Meta ones
included) at its default, with its type and doc line as a comment, components expanded into
their own parameters. A parameter with no usable default gets a placeholder that still
validates where one can be derived: a checkpoint takes the name of a first stage (a kind
without required checkpoints, e.g. ``pretrain``), a component the first registered class whose
own required parameters can be filled by the same rules (recursively), e.g.
``preferences: {name: arithmetic, facts: {name: arithmetic, ...}}``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from experimaestro import Config

from xpm_train.graph.parameters import config_type, is_checkpoint, parameters
from xpm_train.graph.sections import stage_kinds
from xpm_train.registry import component_kind, registered, registered_kinds, type_name
from xpm_train.tasks.trainer import TrainerTask

#: Placeholders of optional parameters whose ``null`` default does not validate on its own
#: (the only special case: pretrain needs exactly one of ``steps`` and ``tokens``).
PLACEHOLDERS: dict[str, Any] = {"steps": 1000}
#: The key of a component spec that selects its class (a parameter of that name cannot be set).
NAME = "name"
INDENT = "  "


def summary(cls: type) -> str:
    """The first sentence of the class's own docstring, on one line."""
    doc = cls.__dict__.get("__doc__") or ""
    text = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "`")
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]


def _help(argument: Any) -> str:
    return " ".join((argument.help or "").split()).replace("``", "`")


def _flow(value: Any) -> str:
    """A value as one line of YAML."""
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    except yaml.representer.RepresenterError:  # e.g. a Path: its text
        text = yaml.safe_dump(str(value), default_flow_style=True, width=10**6)
    return text.removesuffix("\n").removesuffix("\n...")


def _type_text(argument: Any) -> str:
    """``int``, ``Array(str)``, ``stage name``, or a component kind and its names."""
    if is_checkpoint(argument):
        return "stage name"
    base = config_type(argument)
    if base is not None:
        return f"{component_kind(base) or base.__name__} ({', '.join(choices(base))})"
    return type_name(argument)


def choices(base: type) -> dict[str, type[Config]]:
    """The registered classes that can be given for a ``base`` parameter, by name."""
    kind = component_kind(base)
    found = registered(kind) if kind else {}
    return {name: cls for name, cls in found.items() if issubclass(cls, base)}


def first_stage() -> str:
    """The placeholder of a checkpoint: the first training stage kind that needs no upstream
    stage and whose section validates as printed."""
    kinds = stage_kinds()
    for name, cls in kinds.items():
        upstream = any(is_checkpoint(a) and a.required for a in parameters(cls).values())
        if issubclass(cls, TrainerTask) and not upstream and _fillable(cls):
            return name
    return next(iter(kinds))


def _fillable(cls: type[Config], seen: tuple[type, ...] = ()) -> bool:
    """Whether every required parameter of ``cls`` gets a placeholder that validates."""
    for argument in parameters(cls).values():
        if not argument.required or is_checkpoint(argument):
            continue
        base = config_type(argument)
        if base is None or base in seen or placeholder_class(base, (*seen, base)) is None:
            return False
    return True


def placeholder_class(base: type, seen: tuple[type, ...] = ()) -> type[Config] | None:
    """The class of a required ``base`` component: the first registered one that can be
    filled (None if none can)."""
    return next((cls for cls in choices(base).values() if _fillable(cls, seen)), None)


def _ordered(cls: type[Config], derived_first: bool = False) -> list[tuple[str, Any]]:
    """The parameters, required ones first and Meta ones last; otherwise in declaration order,
    or those of the most derived class first."""
    mro = [klass.__dict__.get("__annotations__", {}) for klass in cls.__mro__]

    def declared(name: str) -> int:
        found = (i for i, names in enumerate(mro) if name in names)
        return next(found, len(mro)) if derived_first else 0

    return sorted(
        parameters(cls).items(),
        key=lambda item: (not item[1].required, item[1].ignored, declared(item[0])),
    )


def _comment(head: str, doc: str = "") -> str:
    """``  # head: doc``."""
    text = f"{head}: {doc}" if head and doc else head or doc
    return f"  # {text}" if text else ""


def _argument_lines(key: str, argument: Any, value: Any, depth: int) -> list[str]:
    """The lines of one parameter: ``key: value  # type; doc``, a block for a component."""
    pad = INDENT * depth
    kind, doc = _type_text(argument), _help(argument)
    base = config_type(argument)
    if argument.required and value is None:
        if is_checkpoint(argument):
            head = f"{kind}, required (the upstream stage)"
            return [f"{pad}{key}: {first_stage()}{_comment(head, doc)}"]
        cls = placeholder_class(base) if base is not None else None
        if cls is None:
            return [f"{pad}{key}: null{_comment(f'{kind}, required: set it', doc)}"]
        head = f"{kind}, required (or a stage's name: its training data)"
        return [f"{pad}{key}:{_comment(head, doc)}", *component_lines(cls, None, depth + 1)]
    if isinstance(value, Config):
        xpm_type: Any = type(value).__xpmtype__
        lines = component_lines(xpm_type.value_type, value, depth + 1)
        return [f"{pad}{key}:{_comment(kind, doc)}", *lines]
    if value is None and key in PLACEHOLDERS:
        head = f"{kind}, a placeholder (default: null)"
        return [f"{pad}{key}: {_flow(PLACEHOLDERS[key])}{_comment(head, doc)}"]
    return [f"{pad}{key}: {_flow(value)}{_comment(kind, doc)}"]


def component_lines(cls: type[Config], config: Config | None, depth: int) -> list[str]:
    """A component spec as block mapping lines: its ``name`` then its parameters (the values of
    ``config``, else the defaults)."""
    pad = INDENT * depth
    registered_name = getattr(cls, "registered_name", cls.__name__)
    lines = [f"{pad}{NAME}: {registered_name}{_comment(summary(cls))}"]
    for key, argument in _ordered(cls):
        if key == NAME:  # the spec's ``name`` selects the class: this parameter is not settable
            continue
        value = getattr(config, key) if config is not None else argument.default
        lines += _argument_lines(key, argument, value, depth)
    return lines


def stage_section(kind: str, name: str | None = None) -> list[str]:
    """The lines of ``NAME: {kind: KIND, ...}`` (at depth 1, under ``stages:``)."""
    cls = stage_kinds()[kind]
    lines = [f"{INDENT}{name or kind}:", f"{INDENT * 2}kind: {kind}{_comment(summary(cls))}"]
    meta = False
    for key, argument in _ordered(cls, derived_first=True):
        if argument.ignored and not meta:
            meta = True
            lines.append(
                f"{INDENT * 2}# Meta: not part of the job's identity (changing one reruns nothing)"
            )
        lines += _argument_lines(key, argument, argument.default, 2)
    return lines


def configure(kinds: list[str], name: str | None = None) -> str:
    """The YAML of ``xpm-train configure``: stage sections under ``stages:``, or one component
    kind's spec (``name``: the registered name; default the first)."""
    known = stage_kinds()
    components = [k for k in registered_kinds() if k not in known and k != "stage"]
    unknown = [k for k in kinds if k not in known and k not in components]
    if unknown:
        raise ValueError(
            f"unknown kind {unknown[0]!r}; the stage kinds are: {', '.join(sorted(known))} "
            f"(component kinds: {', '.join(components)})"
        )
    if len(kinds) > 1 and name is not None:
        raise ValueError("--name goes with a single kind")
    if kinds[0] in components:
        if len(kinds) > 1:
            raise ValueError("a component kind is configured alone")
        found = registered(kinds[0])
        if name is not None and name not in found:
            raise ValueError(f"unknown {kinds[0]} {name!r}; available: {', '.join(found)}")
        cls = found[name or next(iter(found))]
        return "\n".join([f"{kinds[0]}:", *component_lines(cls, None, 1)]) + "\n"
    lines = ["stages:"]
    for kind in kinds:
        lines += stage_section(kind, name)
    return "\n".join(lines) + "\n"


def _upstream(cls: type[Config]) -> str:
    found = [
        f"{key} ({'required' if argument.required else 'optional'})"
        for key, argument in parameters(cls).items()
        if is_checkpoint(argument)
    ]
    return ", ".join(found) or "none (a first stage)"


def stages_listing() -> str:
    """The text of ``xpm-train stages``: the stage kinds, then every component kind."""
    kinds = stage_kinds()
    width = max(map(len, kinds))
    lines = ["Stage kinds (stages: {NAME: {kind: KIND, ...}}; xpm-train configure KIND):"]
    for kind, cls in sorted(kinds.items()):
        metrics = ", ".join(getattr(cls, "key_metrics", ())) or "none besides the loss"
        lines.append(f"  {kind:<{width}}  {summary(cls)}")
        lines.append(f"  {'':<{width}}  upstream: {_upstream(cls)}; key metrics: {metrics}")
    lines += ["", "Components ({name: NAME, ...}; xpm-train configure KIND [--name NAME]):"]
    for kind in registered_kinds():
        if kind == "stage":
            continue
        found = registered(kind)
        width = max(map(len, found))
        lines.append(f"  {kind}:")
        lines += [f"    {n:<{width}}  {summary(cls)}" for n, cls in found.items()]
    return "\n".join(lines) + "\n"
