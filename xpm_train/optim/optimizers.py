"""Optimizers as typed Configs that build an optax transformation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from experimaestro import Config, Param, field

from xpm_train.registry import register

if TYPE_CHECKING:
    import optax


class Optimizer(Config):
    """Base class: ``build(learning_rate)`` gives an optax GradientTransformation."""

    def build(self, learning_rate: Callable[[Any], Any]) -> optax.GradientTransformation:
        raise NotImplementedError


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

    def build(self, learning_rate: Callable[[Any], Any]) -> optax.GradientTransformation:
        import jax
        import optax

        def decay_mask(params: Any) -> Any:
            return jax.tree.map(lambda p: p.ndim >= 2, params)

        adamw = optax.adamw(
            learning_rate,
            b1=self.b1,
            b2=self.b2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            mask=decay_mask,
        )
        if self.clip_norm > 0:
            return optax.chain(optax.clip_by_global_norm(self.clip_norm), adamw)
        return adamw
