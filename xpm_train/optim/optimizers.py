"""Optimizers as typed Configs that build an optax transformation (no jax import here).

Every optimizer takes parameter ``groups`` (:mod:`xpm_train.optim.groups`): the parameters a
group's pattern matches get the group's learning-rate multiplier and weight decay, exactly as a
separate optimizer with those settings would give them; the other parameters keep the
optimizer's own rules. ``validate_model`` checks the groups against a model's parameter paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from experimaestro import Config, Param, field

from xpm_train.optim.groups import SHORTCUTS, ParamGroup, assign_groups
from xpm_train.registry import register
from xpm_train.validation import Problems, validate

if TYPE_CHECKING:
    import optax

    from xpm_train.optim.paths import Shapes


@dataclass(frozen=True)
class LeafRule:
    """How one parameter is updated: ``adam`` (b1, b2, eps) or ``muon`` (momentum, nesterov,
    ns_steps, consistent_rms), then ``+ weight_decay * param`` (None: no decay), then
    ``* -(learning_rate * lr_scale)``."""

    kind: str
    lr_scale: float = 1.0
    weight_decay: float | None = None
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    momentum: float = 0.95
    nesterov: bool = True
    ns_steps: int = 5
    consistent_rms: float | None = None


class Optimizer(Config):
    """Base class: ``build(learning_rate)`` gives an optax GradientTransformation."""

    groups: Param[list[ParamGroup]] = field(default=[], ignore_default=True)
    """Parameter groups, each {pattern, lr_scale, weight_decay}; a parameter may be in one
    group at most, and every group must match a parameter"""

    def build(self, learning_rate: Callable[[Any], Any]) -> optax.GradientTransformation:
        raise NotImplementedError

    def rule(self, path: str, shape: tuple[int, ...]) -> str:
        """The name of the optimizer's own rule for a parameter (before groups)."""
        return "default"

    def assignment(self, shapes: Shapes) -> dict[str, tuple[str, int | None]]:
        """``{path: (rule, group index or None)}`` (ValueError, as
        :func:`~xpm_train.optim.groups.assign_groups`, for a bad group)."""
        groups = assign_groups(list(shapes), self.groups)
        return {path: (self.rule(path, shape), groups[path]) for path, shape in shapes.items()}

    def describe(self, shapes: Shapes) -> dict[str, str]:
        """``{path: "adam"}`` or ``{path: "adam, group 0 (embeddings)"}``, for people."""
        return {
            path: rule if index is None else f"{rule}, group {index} ({self.groups[index].pattern})"
            for path, (rule, index) in self.assignment(shapes).items()
        }

    def leaf_rule(
        self, rule: str, shape: tuple[int, ...], lr_scale: float, weight_decay: float | None
    ) -> LeafRule:
        """The update of a parameter of ``rule``, with its group's ``lr_scale`` and
        ``weight_decay`` (None: the optimizer's)."""
        raise NotImplementedError

    def leaf_rules(self, shapes: Shapes) -> dict[str, LeafRule]:
        """``{path: LeafRule}``: each parameter's update."""
        rules = {}
        for path, (rule, index) in self.assignment(shapes).items():
            group = None if index is None else self.groups[index]
            scale, decay = (1.0, None) if group is None else (group.lr_scale, group.weight_decay)
            rules[path] = self.leaf_rule(rule, shapes[path], scale, decay)
        return rules

    def validate_params(self, param_paths: list[str]) -> None:
        """ValueError naming the pattern or the parameter when a group matches no parameter
        or a parameter matches several groups."""
        assign_groups(param_paths, self.groups)

    def validate_model(self, model: Any, tokenizer: Any) -> None:
        """The optimizer's own checks, then its groups against the parameters of ``model``
        sized for ``tokenizer`` (from abstract shapes; nothing to compute without groups)."""
        validate(self)
        if self.groups:
            from xpm_train.optim.paths import param_shapes

            self.validate_params(list(param_shapes(model, tokenizer.vocab_size)))

    def __validate__(self) -> None:
        problems = Problems()
        for index, group in enumerate(self.groups):
            problems.validate(f"groups.{index}", group)
        problems.raise_any()


def validate_adam(problems: Problems, prefix: str, b1: float, b2: float, eps: float) -> None:
    """Adam's decay rates in [0, 1) and its epsilon > 0 (keys ``<prefix>b1``...)."""
    for key, value in (("b1", b1), ("b2", b2)):
        if not 0.0 <= value < 1.0:
            problems.add(f"{prefix}{key}", f"{value} must be in [0, 1)")
    if not eps > 0:
        problems.add(f"{prefix}eps", f"{eps} must be > 0")


@register("optimizer", "adamw")
class AdamW(Optimizer):
    """AdamW after global-norm clipping; weight decay applies to matrices only (not to
    norms' scales and biases)."""

    weight_decay: Param[float] = field(default=0.1)
    b1: Param[float] = field(default=0.9)
    b2: Param[float] = field(default=0.95)
    eps: Param[float] = field(default=1e-8)
    clip_norm: Param[float] = field(default=1.0)
    """Global gradient norm clipping threshold (0 disables clipping)"""

    def rule(self, path: str, shape: tuple[int, ...]) -> str:
        return "adamw"

    def __validate__(self) -> None:
        problems = Problems()
        problems.call("", super().__validate__)
        validate_adam(problems, "", self.b1, self.b2, self.eps)
        for key in ("weight_decay", "clip_norm"):
            if not getattr(self, key) >= 0:
                problems.add(key, f"{getattr(self, key)} must be >= 0")
        problems.raise_any()

    def leaf_rule(
        self, rule: str, shape: tuple[int, ...], lr_scale: float, weight_decay: float | None
    ) -> LeafRule:
        if weight_decay is None:  # the optimizer's: matrices only
            weight_decay = self.weight_decay if len(shape) >= 2 else None
        return LeafRule("adam", lr_scale, weight_decay, self.b1, self.b2, self.eps)

    def build(self, learning_rate: Callable[[Any], Any]) -> optax.GradientTransformation:
        from xpm_train.optim import transforms

        if not self.groups:  # optax's adamw: the state of checkpoints written before groups
            tx = transforms.adamw(learning_rate, self.b1, self.b2, self.eps, self.weight_decay)
        else:
            tx = transforms.per_parameter(self.leaf_rules, learning_rate)
        return transforms.clipped(tx, self.clip_norm)


@register("optimizer", "muon")
class Muon(Optimizer):
    """Muon (Newton-Schulz orthogonalised momentum) for the hidden weight matrices, AdamW for
    the rest (embeddings, output projection, norms, biases), after global-norm clipping."""

    muon_lr_scale: Param[float] = field(default=1.0)
    """Multiplies the schedule's learning rate for the muon parameters"""
    adam_lr_scale: Param[float] = field(default=0.1)
    """Multiplies the schedule's learning rate for the adam parameters"""
    momentum: Param[float] = field(default=0.95)
    """Muon's momentum (beta)"""
    nesterov: Param[bool] = field(default=True)
    ns_steps: Param[int] = field(default=5)
    """Newton-Schulz iterations"""
    consistent_rms: Param[float | None] = field(default=None)
    """null: scale orthogonalised updates by sqrt(max(1, fan_out / fan_in)) (Keller Jordan);
    a number r: by r * sqrt(max(fan_in, fan_out)) (Moonshot; 0.2 matches AdamW's update size)"""
    weight_decay: Param[float] = field(default=0.0)
    """Decoupled weight decay of the muon parameters (multiplied by their learning rate)"""
    adam_b1: Param[float] = field(default=0.9)
    adam_b2: Param[float] = field(default=0.95)
    adam_eps: Param[float] = field(default=1e-8)
    adam_weight_decay: Param[float] = field(default=0.1)
    """Weight decay of the adam parameters that are matrices (embeddings, output)"""
    clip_norm: Param[float] = field(default=1.0)
    """Global gradient norm clipping threshold (0 disables clipping)"""

    def rule(self, path: str, shape: tuple[int, ...]) -> str:
        """muon for the 2-D kernels of the attention and MLP layers, adam otherwise."""
        return "muon" if len(shape) == 2 and re.search(SHORTCUTS["matrices"], path) else "adam"

    def __validate__(self) -> None:
        problems = Problems()
        problems.call("", super().__validate__)
        if self.ns_steps < 1:
            problems.add("ns_steps", f"{self.ns_steps} must be >= 1")
        if not 0.0 <= self.momentum < 1.0:
            problems.add("momentum", f"{self.momentum} must be in [0, 1)")
        for key in ("muon_lr_scale", "adam_lr_scale", "weight_decay", "adam_weight_decay"):
            if not getattr(self, key) >= 0:
                problems.add(key, f"{getattr(self, key)} must be >= 0")
        validate_adam(problems, "adam_", self.adam_b1, self.adam_b2, self.adam_eps)
        problems.raise_any()

    def leaf_rule(
        self, rule: str, shape: tuple[int, ...], lr_scale: float, weight_decay: float | None
    ) -> LeafRule:
        if rule == "muon":
            return LeafRule(
                "muon",
                lr_scale * self.muon_lr_scale,
                self.weight_decay if weight_decay is None else weight_decay,
                momentum=self.momentum,
                nesterov=self.nesterov,
                ns_steps=self.ns_steps,
                consistent_rms=self.consistent_rms,
            )
        if weight_decay is None:  # matrices only (embeddings, output projection)
            weight_decay = self.adam_weight_decay if len(shape) >= 2 else None
        scale = lr_scale * self.adam_lr_scale
        return LeafRule("adam", scale, weight_decay, self.adam_b1, self.adam_b2, self.adam_eps)

    def build(self, learning_rate: Callable[[Any], Any]) -> optax.GradientTransformation:
        from xpm_train.optim import transforms

        tx = transforms.per_parameter(self.leaf_rules, learning_rate)
        return transforms.clipped(tx, self.clip_norm)
