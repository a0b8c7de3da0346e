"""Sweeps: any value of a stage section given as ``{sweep: [v1, v2, ...]}`` expands into a grid.

A stage's grid is the product of its own swept values; a downstream stage is built once per
instance of its upstream stages (and per point of its own grid), so a sweep fans out through the
graph. Each instance carries the swept values that made it (its *point*).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from xpm_train.validation import Problems

#: The key of a sweep marker: ``lr: {sweep: [1.0e-3, 3.0e-3]}``.
SWEEP = "sweep"


def is_sweep(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {SWEEP}


def swept_values(section: Any, problems: Problems, prefix: str = "") -> dict[str, list[Any]]:
    """``{dotted key: values}`` of every sweep marker in a section (nested specs included)."""
    found: dict[str, list[Any]] = {}
    if not isinstance(section, Mapping):
        return found
    for key, value in section.items():
        path = f"{prefix}{key}"
        if is_sweep(value):
            values = value[SWEEP]
            if not isinstance(values, list) or not values:
                problems.add(
                    f"{path}.{SWEEP}", f"expected a non-empty list of values, got {values!r}"
                )
            elif any(is_sweep(item) for item in values):
                problems.add(f"{path}.{SWEEP}", "a sweep cannot contain another sweep")
            else:
                found[path] = values
        elif isinstance(value, Mapping):
            found.update(swept_values(value, problems, f"{path}."))
    return found


def grid(sweeps: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the swept values (one empty point when nothing is swept)."""
    keys = list(sweeps)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*sweeps.values())]


def substituted(section: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """The section with each sweep marker replaced by the point's value."""
    result = copy.deepcopy(dict(section))
    for path, value in point.items():
        *parents, last = path.split(".")
        target = result
        for key in parents:
            target = target[key]
        target[last] = value
    return result


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # exact: two swept values never print alike
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def point_label(stage: str, point: Mapping[str, Any]) -> str:
    """``stage`` or ``stage[pretrain.schedule.lr=0.001, dpo.beta=0.2]``."""
    if not point:
        return stage
    return f"{stage}[{', '.join(f'{k}={format_value(v)}' for k, v in point.items())}]"
