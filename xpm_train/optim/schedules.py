"""Learning-rate schedules (HRM-style parameters: ``lr``, ``lr_min_ratio``, ``lr_warmup_steps``).

``value(step, total_steps)`` is plain Python (used by tests and reports); ``build(total_steps)``
returns the same curve as a jax-traceable optax schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from experimaestro import Config, Param, field

from xpm_train.registry import register
from xpm_train.validation import Problems


class Schedule(Config):
    """Base class: learning rate as a function of the step."""

    lr: Param[float] = field(default=1e-3)
    """Peak learning rate"""
    lr_min_ratio: Param[float] = field(default=0.1)
    """Final learning rate as a fraction of lr"""
    lr_warmup_steps: Param[int] = field(default=100)
    """Steps of linear warmup from 0"""

    def __validate__(self) -> None:
        problems = Problems()
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.add("lr", f"{self.lr} must be a number > 0")
        if self.lr_warmup_steps < 0:
            problems.add("lr_warmup_steps", f"{self.lr_warmup_steps} must be >= 0")
        problems.raise_any()

    def validate_steps(self, total_steps: int) -> None:
        if self.lr_warmup_steps > total_steps:
            raise ValueError(
                f"schedule: lr_warmup_steps={self.lr_warmup_steps} is longer than the training "
                f"({total_steps} steps); lower lr_warmup_steps or train longer"
            )
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ValueError(f"schedule: lr_min_ratio={self.lr_min_ratio} must be in [0, 1]")

    def value(self, step: int, total_steps: int) -> float:
        return float(self.build(total_steps)(step))

    def build(self, total_steps: int) -> Callable[[Any], Any]:
        raise NotImplementedError

    def _warmup(self, step: Any, after: Callable[[Any], Any]) -> Any:
        import jax.numpy as jnp

        step = jnp.asarray(step, jnp.float32)
        warm = self.lr * step / max(1, self.lr_warmup_steps)
        return jnp.where(step < self.lr_warmup_steps, warm, after(step))


@register("schedule", "cosine")
class Cosine(Schedule):
    """Linear warmup from 0, then cosine decay from ``lr`` to ``lr * lr_min_ratio``."""

    def build(self, total_steps: int) -> Callable[[Any], Any]:
        import jax.numpy as jnp

        span = max(1, total_steps - self.lr_warmup_steps)

        def decay(step: Any) -> Any:
            progress = jnp.clip((step - self.lr_warmup_steps) / span, 0.0, 1.0)
            cosine = 0.5 * (1.0 + jnp.cos(math.pi * progress))
            return self.lr * (self.lr_min_ratio + (1.0 - self.lr_min_ratio) * cosine)

        return lambda step: self._warmup(step, decay)


@register("schedule", "wsd")
class WarmupStableDecay(Schedule):
    """Linear warmup, constant ``lr``, then a linear decay to ``lr * lr_min_ratio`` over the
    last ``decay_fraction`` of the steps."""

    lr_min_ratio: Param[float] = field(default=0.0, overrides=True)
    decay_fraction: Param[float] = field(default=0.2)

    def validate_steps(self, total_steps: int) -> None:
        super().validate_steps(total_steps)
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ValueError(f"wsd schedule: decay_fraction={self.decay_fraction} not in [0, 1]")
        if self.lr_warmup_steps + self.decay_steps(total_steps) > total_steps:
            raise ValueError(
                f"wsd schedule: warmup ({self.lr_warmup_steps}) and decay "
                f"({self.decay_steps(total_steps)}) steps exceed the {total_steps} training steps"
            )

    def decay_steps(self, total_steps: int) -> int:
        return int(round(total_steps * self.decay_fraction))

    def build(self, total_steps: int) -> Callable[[Any], Any]:
        import jax.numpy as jnp

        decay_steps = self.decay_steps(total_steps)
        decay_start = total_steps - decay_steps

        def stable_then_decay(step: Any) -> Any:
            progress = jnp.clip((step - decay_start) / max(1, decay_steps), 0.0, 1.0)
            return self.lr * (1.0 - (1.0 - self.lr_min_ratio) * progress)

        return lambda step: self._warmup(step, stable_then_decay)


@register("schedule", "wsds")
class WarmupStableDecayStable(Schedule):
    """For continued training: warmup, constant ``lr``, a linear decay over
    ``decay_fraction`` of the steps, then a constant tail at ``lr * lr_min_ratio`` for the last
    ``tail_fraction`` of the steps."""

    decay_fraction: Param[float] = field(default=0.1)
    tail_fraction: Param[float] = field(default=0.5)

    def phases(self, total_steps: int) -> tuple[int, int]:
        """(first step of the decay, first step of the tail)."""
        tail_start = total_steps - int(round(total_steps * self.tail_fraction))
        return tail_start - int(round(total_steps * self.decay_fraction)), tail_start

    def validate_steps(self, total_steps: int) -> None:
        super().validate_steps(total_steps)
        decay_start, _ = self.phases(total_steps)
        if not (0 <= self.decay_fraction <= 1 and 0 <= self.tail_fraction <= 1):
            raise ValueError("wsds schedule: decay_fraction and tail_fraction must be in [0, 1]")
        if decay_start < self.lr_warmup_steps:
            raise ValueError(
                f"wsds schedule: warmup ({self.lr_warmup_steps} steps), decay and tail "
                f"({self.decay_fraction} + {self.tail_fraction} of the steps) exceed the "
                f"{total_steps} training steps"
            )

    def build(self, total_steps: int) -> Callable[[Any], Any]:
        import jax.numpy as jnp

        decay_start, tail_start = self.phases(total_steps)
        span = max(1, tail_start - decay_start)

        def stable_decay_stable(step: Any) -> Any:
            progress = jnp.clip((step - decay_start) / span, 0.0, 1.0)
            return self.lr * (1.0 - (1.0 - self.lr_min_ratio) * progress)

        return lambda step: self._warmup(step, stable_decay_stable)
