"""Registered names of components, so that YAML files can select a `Config` class by name.

A component spec is a mapping such as ``{"name": "cosine", "lr": 3e-3}``: ``name`` picks the class
registered under that kind, the other keys are its parameters (checked by experimaestro).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from experimaestro import Config

ConfigType = TypeVar("ConfigType", bound=type[Config])

#: The modules whose import registers the built-in components.
COMPONENT_MODULES = (
    "xpm_train.data.tokenizers",
    "xpm_train.data.datasets",
    "xpm_train.data.preferences",
    "xpm_train.models.config",
    "xpm_train.optim.optimizers",
    "xpm_train.optim.schedules",
    "xpm_train.tracking.loggers",
)
#: Packages whose every module is imported to register components: a new stage is a new
#: module in ``xpm_train.tasks`` and nothing else.
COMPONENT_PACKAGES = ("xpm_train.tasks",)

_REGISTRY: dict[str, dict[str, type[Config]]] = {}


class ComponentError(ValueError):
    """A component spec names an unknown component or gives it invalid parameters."""


def register(kind: str, name: str) -> Callable[[ConfigType], ConfigType]:
    """Class decorator: make ``cls`` selectable as ``{"name": name, ...}`` for ``kind``."""

    def decorator(cls: ConfigType) -> ConfigType:
        entries = _REGISTRY.setdefault(kind, {})
        if name in entries and entries[name] is not cls:
            raise ValueError(f"{kind} name {name!r} is already registered by {entries[name]}")
        entries[name] = cls
        cls.registered_name = name  # type: ignore[attr-defined]
        return cls

    return decorator


def _ensure_registered() -> None:
    for module in COMPONENT_MODULES:
        importlib.import_module(module)
    for package_name in COMPONENT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, f"{package_name}."):
            importlib.import_module(info.name)


def registered_kinds() -> list[str]:
    _ensure_registered()
    return sorted(_REGISTRY)


def component_kind(base: type) -> str | None:
    """The kind of the registered classes that are subclasses of ``base`` (e.g. ``dataset`` for
    TextDataset), or None."""
    _ensure_registered()
    for kind, classes in _REGISTRY.items():
        if any(issubclass(cls, base) for cls in classes.values()):
            return kind
    return None


def registered(kind: str) -> dict[str, type[Config]]:
    """The classes registered for ``kind``, by name."""
    _ensure_registered()
    if kind not in _REGISTRY:
        raise ComponentError(f"Unknown component kind {kind!r}; known kinds: {sorted(_REGISTRY)}")
    return dict(_REGISTRY[kind])


def type_name(argument: Any) -> str:
    """``Type(float)`` -> ``float``, ``Array(Type(str))`` -> ``Array(str)``."""
    return re.sub(r"Type\((\w+)\)", r"\1", str(argument.type))


def validate_spec(kind: str, spec: Any, where: str = "") -> list[str]:
    """What is wrong with a component spec: its name, unknown parameters (with the closest
    valid one) and ill-typed values. Parameters left out are not errors (defaults apply)."""
    label = where or kind
    if not isinstance(spec, Mapping):
        return [f"{label}: expected a mapping with a 'name' key selecting a {kind}, got {spec!r}"]
    choices = registered(kind)
    params = dict(spec)
    name = params.pop("name", None)
    if name not in choices:
        return [f"{label}.name: unknown {kind} {name!r}; available: {', '.join(sorted(choices))}"]
    arguments = {
        key: arg
        for key, arg in choices[name].__getxpmtype__().arguments.items()
        if not arg.generator
    }
    errors = []
    for key, value in params.items():
        if key not in arguments:
            close = difflib.get_close_matches(key, list(arguments), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(
                f"{label}.{key}: unknown parameter{hint} of {kind} {name!r}; "
                f"its parameters are: {', '.join(sorted(arguments))}"
            )
        elif not isinstance(value, (Config, Mapping)):
            try:
                arguments[key].validate(value)
            except (ValueError, TypeError):
                errors.append(
                    f"{label}.{key}: {value!r} is not a valid {type_name(arguments[key])}"
                )
    return errors


def build(kind: str, spec: Mapping[str, Any] | Config, where: str = "") -> Config:
    """Build the Config described by ``spec`` (a mapping with a ``name`` key, or a Config).

    ``where`` names the place of the spec (e.g. ``pretrain.model``) in error messages.
    """
    if isinstance(spec, Config):
        return spec
    errors = validate_spec(kind, spec, where)
    if errors:
        raise ComponentError("; ".join(errors))
    params = dict(spec)
    name = params.pop("name")
    try:
        return registered(kind)[name].C(**params)
    except (ValueError, TypeError, KeyError) as error:
        raise ComponentError(f"{where or kind} ({kind} {name!r}): {error}") from error
