"""The merged configuration of ``run-experiment``, with where each value came from.

experimaestro 2.7.0 merges ``--pre-yaml`` < ``imports`` < the main file < ``--post-yaml`` <
``-c``, but keeps no trace of which file set a key and passes ``-c`` values as strings (so a
list cannot be overridden). ``Sources`` redoes that merge with experimaestro's own YAML loader,
records the origin of every key, and reads ``-c`` values as YAML (``-c dpo.beta=0.2`` is a
float, ``-c 'pretrain.dataset.operations=[+, -]'`` a list). A component spec whose ``name``
changes starts afresh instead of inheriting the previous component's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from experimaestro.experiments.cli import ConfigurationLoader

from xpm_train.graph.sweeps import is_sweep


class SourceError(ValueError):
    """A YAML file or a ``-c`` override that cannot be read."""


#: The deepest nesting of mappings and lists an experiment file may have.
MAX_DEPTH = 32
#: The most values a file may hold once its YAML aliases (``*name``) are expanded.
MAX_VALUES = 100_000


def check_size(data: Any, where: str) -> None:
    """Refuse a configuration nested deeper than :data:`MAX_DEPTH` or holding more than
    :data:`MAX_VALUES` values once aliases are expanded (counted without expanding them)."""
    size: dict[int, int] = {}  # values under each mapping or list, aliases expanded
    stack: list[tuple[Any, int, bool]] = [(data, 1, False)]
    while stack:
        node, level, done = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if not isinstance(node, (dict, list)):
            continue
        if level > MAX_DEPTH:
            raise SourceError(
                f"{where}: values are nested more than {MAX_DEPTH} levels deep; an experiment "
                "file is a few levels of mappings (stages, components, their parameters)"
            )
        if done:
            inner = [c for c in children if isinstance(c, (dict, list))]
            size[id(node)] = len(children) + sum(size[id(c)] for c in inner)
            if size[id(node)] > MAX_VALUES:
                raise SourceError(
                    f"{where}: the file holds more than {MAX_VALUES:,} values once its YAML "
                    "aliases (*name) are expanded; write the values out, or use fewer aliases"
                )
        elif id(node) not in size:
            stack.append((node, level, True))
            stack += [(c, level + 1, False) for c in children if isinstance(c, (dict, list))]


class _TracingLoader(ConfigurationLoader):
    """experimaestro's loader, remembering the file of each loaded mapping."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[Path] = []

    def load(self, yaml_file: Path) -> None:
        if not yaml_file.exists() and yaml_file.suffix != ".yaml":
            yaml_file = yaml_file.with_suffix(".yaml")
        if not yaml_file.is_file():
            raise SourceError(f"{yaml_file}: no such YAML file")
        try:
            data = yaml.safe_load(yaml_file.read_text())
        except yaml.YAMLError as error:
            raise SourceError(f"{yaml_file}: invalid YAML ({error})") from None
        if not isinstance(data, dict):
            raise SourceError(f"{yaml_file}: the file must hold a mapping of keys to values")
        check_size(data, str(yaml_file))
        super().load(yaml_file)
        self.files.append(yaml_file)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], value read as YAML)."""
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise SourceError(f"-c {item!r}: an override is written key.subkey=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as error:
        raise SourceError(f"-c {item!r}: the value is not valid YAML ({error})") from None
    check_size(value, f"-c {item!r}")
    return key.split("."), value


def _record(origins: dict[str, str], data: Any, prefix: str, origin: str) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            origins[path] = origin
            _record(origins, value, path, origin)


#: Keys whose change makes a mapping start afresh: a component's ``name``, a stage's ``kind``.
SELECTORS = ("name", "kind")


def _replaces(value: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether ``value`` replaces ``current`` instead of being merged into it: ``dataset:
    {name: jsonl, path: x}`` over an ``arithmetic`` spec must not inherit ``n_examples``, a
    stage of another kind not inherit the old kind's parameters, a sweep not be merged into
    the spec it sweeps over."""
    if is_sweep(value) or is_sweep(current):
        return True
    return any(key in value and key in current and value[key] != current[key] for key in SELECTORS)


def _merge(base: dict[str, Any], update: dict[str, Any], prefix: str, origins: dict) -> None:
    """experimaestro's deep merge, except for the mappings that :func:`_replaces`."""
    for key, value in update.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        current = base.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            if _replaces(value, current):
                base[key] = {}
                for stale in [k for k in origins if k.startswith(path + ".")]:
                    del origins[stale]
            _merge(base[key], value, path, origins)
        else:
            base[key] = value


@dataclass
class Sources:
    """The merged configuration and, for each dotted key, the file or override that set it."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        yaml_file: str | Path,
        pre_yaml: tuple[str, ...] = (),
        post_yaml: tuple[str, ...] = (),
        overrides: tuple[str, ...] = (),
    ) -> Sources:
        loader = _TracingLoader()
        for path in (*pre_yaml, yaml_file, *post_yaml):
            loader.load(Path(path))
        sources = cls()
        for data, path in zip(loader.yamls, loader.files, strict=True):
            sources.merge(data, str(path))
        for item in overrides:
            keys, value = parse_override(item)
            nested: dict[str, Any] = {keys[-1]: value}
            for key in reversed(keys[:-1]):
                nested = {key: nested}
            sources.merge(nested, f"-c {item}")
        return sources

    def merge(self, data: dict[str, Any], origin: str) -> None:
        _merge(self.values, data, "", self.origins)
        _record(self.origins, data, "", origin)

    def origin(self, key: str) -> str:
        """Where ``key`` (or, failing that, its closest parent) was set."""
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key.rpartition(".")[0]
        return "the experiment's defaults"
