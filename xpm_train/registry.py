"""Registered names of components, so that YAML files can select a `Config` class by name.

A component spec is a mapping such as ``{"name": "cosine", "lr": 3e-3}``: ``name`` picks the class
registered under that kind, the other keys are its parameters (checked by experimaestro).
"""

from __future__ import annotations

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
    "xpm_train.data.hf_tokenizer",
    "xpm_train.data.datasets",
    "xpm_train.data.preferences",
    "xpm_train.models.config",
    "xpm_train.models.families",
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
    """What is wrong with a component spec, one ``key: message`` each: its name, unknown
    parameters (with the closest valid one), ill-typed or missing values (the same checks
    as a stage section's components: :mod:`xpm_train.graph.sections`)."""
    return [f"{key}: {message}" for key, message in _built(kind, spec, where)[1]]


def _built(kind: str, spec: Any, where: str) -> tuple[Config | None, list[tuple[str, str]]]:
    from xpm_train.graph.sections import build_component
    from xpm_train.validation import Problems

    problems = Problems()
    config = build_component(kind, spec, where or kind, problems)
    return config, problems.found


def build(kind: str, spec: Mapping[str, Any] | Config, where: str = "") -> Config:
    """Build the Config described by ``spec`` (a mapping with a ``name`` key, or a Config).

    ``where`` names the place of the spec (e.g. ``pretrain.model``) in error messages.
    """
    if isinstance(spec, Config):
        return spec
    config, problems = _built(kind, spec, where)
    if problems or config is None:
        raise ComponentError("; ".join(f"{key}: {message}" for key, message in problems))
    return config
