"""Validation of configurations before anything is submitted: the one verb is *validate*.

Components and tasks define experimaestro's ``__validate__`` hook, raising :class:`ConfigError`
or ``ValueError``; planning calls it through :func:`validate` (docs/planning.md says why
experimaestro's own call is not relied on) and reports each problem under its YAML key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ConfigError(ValueError):
    """Parameter values that cannot work; ``problems`` pairs each parameter's dotted name
    (``""`` for the configuration as a whole) with what is wrong."""

    def __init__(self, problems: list[tuple[str, str]] | str) -> None:
        self.problems = [("", problems)] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(f"{k}: {m}" if k else m for k, m in self.problems))


def _joined(prefix: str, key: str) -> str:
    return ".".join(part for part in (prefix, key) if part)


class Problems:
    """Collects what is wrong with a configuration's parameters, key by key."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.found.append((key, message))

    def call(self, key: str, function: Callable[[], Any]) -> None:
        """Run ``function``; its ValueError becomes a problem of ``key``."""
        try:
            function()
        except ConfigError as error:
            self.found += [(_joined(key, k), m) for k, m in error.problems]
        except ValueError as error:
            self.add(key, str(error))

    def validate(self, key: str, config: Any) -> None:
        """The problems of a nested component, under ``key``."""
        self.call(key, lambda: validate(config))

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError(self.found)


def validate(config: Any) -> None:
    """Run ``config``'s ``__validate__`` (when it has one); raises ConfigError or ValueError.

    On a ``Cls.C(...)`` object, experimaestro's own no-op ``__validate__`` comes first in the
    method order: the first one defined outside experimaestro is the class's own.
    """
    for cls in type(config).__mro__:
        if "__validate__" in vars(cls) and not cls.__module__.startswith("experimaestro"):
            vars(cls)["__validate__"](config)
            return
