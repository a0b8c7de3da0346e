"""Parameter groups: a learning-rate multiplier and a weight decay for the parameters whose path
matches a pattern (no jax here: groups are checked at planning time).

A parameter's path is its keys joined with ``/``: ``blocks/0/attn/qkv/kernel``,
``embed/embedding``, ``layers/3/mlp_norm/scale``. A pattern is a regular expression searched in
the path (anchor it with ``^...$`` for a whole path) or one of the names of :data:`SHORTCUTS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from experimaestro import Config, Param, field

from xpm_train.validation import Problems

#: Named patterns, disjoint, that cover every parameter of the project's models.
SHORTCUTS: dict[str, str] = {
    "embeddings": r"(^|/)embedding$",
    "output": r"(^|/)lm_head/[^/]+$",
    "norms": r"(^|/)[^/]*norm[^/]*/[^/]+$",
    "biases": r"(^|/)(?!lm_head/)(?![^/]*norm)[^/]+/bias$",
    "matrices": r"(^|/)(?!lm_head/)[^/]+/kernel$",
}


class ParamGroup(Config):
    """Parameters whose path matches ``pattern`` get their own learning-rate multiplier and
    weight decay."""

    pattern: Param[str]
    """A regular expression searched in the parameter's path (e.g. layers/0/attn/q/kernel), or
    a shortcut: embeddings, output, norms, biases, matrices"""
    lr_scale: Param[float] = field(default=1.0)
    """Multiplies the learning rate of these parameters (decoupled weight decay included)"""
    weight_decay: Param[float | None] = field(default=None)
    """Weight decay of these parameters, whatever their shape (null: the optimizer's)"""

    def regex(self) -> re.Pattern[str]:
        """The compiled pattern (a shortcut's expression for a shortcut's name)."""
        try:
            return re.compile(SHORTCUTS.get(self.pattern, self.pattern))
        except re.error as error:
            raise ValueError(
                f"group pattern {self.pattern!r} is not a valid regex: {error}"
            ) from None

    def __validate__(self) -> None:
        problems = Problems()
        problems.call("pattern", self.regex)
        if self.lr_scale < 0:
            problems.add("lr_scale", f"{self.lr_scale} must be >= 0")
        if self.weight_decay is not None and self.weight_decay < 0:
            problems.add("weight_decay", f"{self.weight_decay} must be >= 0")
        problems.raise_any()


def assign_groups(paths: Sequence[str], groups: Sequence[ParamGroup]) -> dict[str, int | None]:
    """The index of the group of each parameter path (None: in no group).

    Raises ValueError, naming the pattern or the parameter, when a group matches no parameter or
    a parameter matches several groups.
    """
    regexes = [group.regex() for group in groups]
    assigned: dict[str, int | None] = {}
    matched: set[int] = set()
    problems = []
    for path in paths:
        matches = [i for i, regex in enumerate(regexes) if regex.search(path)]
        matched.update(matches)
        if len(matches) > 1:
            patterns = " and ".join(repr(groups[i].pattern) for i in matches)
            problems.append(f"parameter {path!r} is in several groups ({patterns})")
        assigned[path] = matches[0] if matches else None
    for index, group in enumerate(groups):
        if index not in matched:
            shown = ", ".join(list(paths)[:6]) + (", ..." if len(paths) > 6 else "")
            problems.append(
                f"group pattern {group.pattern!r} matches no parameter of the model (its "
                f"{len(paths)} parameters: {shown}; shortcuts: {', '.join(SHORTCUTS)})"
            )
    if problems:
        raise ValueError("; ".join(problems))
    return assigned


def path_text(keys: Sequence[object]) -> str:
    """``blocks/0/attn/qkv/kernel`` from a jax key path (dict keys, sequence indices)."""
    parts = []
    for key in keys:
        for attribute in ("key", "idx", "name"):
            if hasattr(key, attribute):
                parts.append(str(getattr(key, attribute)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)
