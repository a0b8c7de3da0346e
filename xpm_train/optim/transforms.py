"""The optax pieces of the optimizers (imported by ``Optimizer.build``, in job processes).

:func:`per_parameter` applies to each parameter its own :class:`LeafRule` (Adam or Muon, its
learning-rate multiplier and weight decay) with the arithmetic of optax's ``adamw`` and
``contrib.muon``, so that a parameter's update is exactly that of a separate optimizer with
its settings. Its state is one step count and two parameter-shaped trees (first moments or
muon momenta, second moments), as AdamW's: ``optax.tree_map_params`` (the trainer's state
shardings) maps it like any optax state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from xpm_train.optim.groups import path_text
from xpm_train.optim.optimizers import LeafRule

LearningRate = Callable[[Any], Any]
#: optax's (Keller Jordan's) quintic Newton-Schulz coefficients.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def scaled(learning_rate: LearningRate, scale: float) -> LearningRate:
    """``learning_rate`` times ``scale`` (itself when the scale is 1)."""
    if scale == 1.0:
        return learning_rate
    return lambda step: learning_rate(step) * scale


def clipped(tx: optax.GradientTransformation, clip_norm: float) -> optax.GradientTransformation:
    """``tx`` after global-norm clipping of the whole gradient (none when ``clip_norm`` is 0)."""
    if clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx


def adamw(
    learning_rate: LearningRate, b1: float, b2: float, eps: float, weight_decay: float
) -> optax.GradientTransformation:
    """optax's AdamW, the decay applied to parameters of 2 dimensions or more."""

    def decay_mask(params: Any) -> Any:
        return jax.tree.map(lambda p: p.ndim >= 2, params)

    return optax.adamw(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask
    )


class PerParameterState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def newton_schulz(x: jax.Array, steps: int, eps: float = 1e-8) -> jax.Array:
    """An approximately orthogonal matrix of ``x``'s row and column spaces (optax's quintic
    iteration, on the wide orientation of ``x``, after Frobenius normalisation)."""
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / (jnp.linalg.norm(x, ord="fro") + eps)
    a, b, c = jnp.asarray(NS_COEFFS).astype(x.dtype)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def shape_factor(shape: tuple[int, ...], consistent_rms: float | None) -> float:
    """``sqrt(max(1, fan_out / fan_in))``, or ``consistent_rms * sqrt(max(fan_in, fan_out))``."""
    fan_in, fan_out = shape
    if consistent_rms is None:
        return math.sqrt(max(1.0, fan_out / fan_in))
    return consistent_rms * math.sqrt(max(fan_in, fan_out))


def _direction(rule: LeafRule, g: Any, mu: Any, nu: Any, count: Any) -> tuple[Any, Any, Any]:
    """The update direction of one parameter before decay and learning rate, and its new
    moments (``count`` is the incremented step count)."""
    bias = optax.tree.bias_correction
    if rule.kind == "adam":
        mu = optax.tree.update_moment(g, mu, rule.b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(g, nu, rule.b2, 2)
        mu_hat, nu_hat = bias(mu, rule.b1, count), bias(nu, rule.b2, count)
        return mu_hat / (jnp.sqrt(nu_hat) + rule.eps), mu, nu
    beta = rule.momentum
    mu = optax.tree.update_moment(g, mu, beta, 1)
    if rule.nesterov:
        mu_hat = beta * bias(mu, beta, optax.safe_increment(count))
        mu_hat = mu_hat + (1 - beta) * bias(g, beta, count)
    else:
        mu_hat = bias(mu, beta, count)
    direction = newton_schulz(mu_hat, rule.ns_steps)
    return direction * shape_factor(g.shape, rule.consistent_rms), mu, nu


def per_parameter(
    rules_of: Callable[[dict[str, tuple[int, ...]]], dict[str, LeafRule]],
    learning_rate: LearningRate,
) -> optax.GradientTransformation:
    """Each parameter updated by its rule; ``rules_of({path: shape})`` gives the rules."""

    def init_fn(params: Any) -> PerParameterState:
        zeros = optax.tree.zeros_like(params)
        return PerParameterState(jnp.zeros([], jnp.int32), zeros, optax.tree.zeros_like(params))

    def update_fn(updates: Any, state: PerParameterState, params: Any = None) -> Any:
        if params is None:
            raise ValueError("per-parameter updates need the parameters (weight decay)")
        flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
        paths = [path_text(path) for path, _ in flat]
        rules = rules_of({path: leaf.shape for path, (_, leaf) in zip(paths, flat, strict=True)})
        count = optax.safe_increment(state.count)
        new_updates, new_mu, new_nu = [], [], []
        leaves = zip(
            paths,
            treedef.flatten_up_to(updates),
            treedef.flatten_up_to(state.mu),
            treedef.flatten_up_to(state.nu),
            treedef.flatten_up_to(params),
            strict=True,
        )
        for path, g, mu, nu, p in leaves:
            rule = rules[path]
            direction, mu, nu = _direction(rule, g, mu, nu, count)
            if rule.weight_decay is not None:
                direction = direction + rule.weight_decay * p
            step_size = -scaled(learning_rate, rule.lr_scale)(state.count)
            new_updates.append(jnp.array(step_size, dtype=direction.dtype) * direction)
            new_mu.append(mu)
            new_nu.append(nu)
        unflatten = treedef.unflatten
        return unflatten(new_updates), PerParameterState(
            count, unflatten(new_mu), unflatten(new_nu)
        )

    return optax.GradientTransformation(init_fn, update_fn)
