"""The training state and its sharded creation.

Parameters are a plain nested dict of arrays (the model's ``nnx.Param`` values), so the state is
an ordinary pytree for ``jax.jit``, optax and orbax. The graph definition of the model is kept
aside and merged with the parameters inside the jitted functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh

from xpm_train.training.mesh import replicated, with_fsdp

Params = dict[str, Any]


@struct.dataclass
class TrainState:
    step: jax.Array
    params: Params
    opt_state: optax.OptState
    rng: jax.Array

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "params": self.params,
            "opt_state": self.opt_state,
            "rng": self.rng,
        }

    @classmethod
    def from_dict(cls, tree: dict[str, Any]) -> TrainState:
        return cls(**tree)


@dataclass(frozen=True)
class ModelDef:
    """A model's structure (graph definition) and the shardings of its parameters."""

    graphdef: nnx.GraphDef
    abstract_params: Params
    param_shardings: Params
    mesh: Mesh

    def merge(self, params: Params) -> nnx.Module:
        return nnx.merge(self.graphdef, params)


def model_def(make_model: Any, mesh: Mesh) -> ModelDef:
    """Structure and shardings of ``make_model()`` without allocating its parameters."""
    abstract = nnx.eval_shape(make_model)
    graphdef, params = nnx.split(abstract, nnx.Param)
    shapes = nnx.to_pure_dict(params)
    shardings = jax.tree.map(
        lambda sharding, shape: with_fsdp(sharding, shape.shape),
        nnx.to_pure_dict(nnx.get_named_sharding(params, mesh)),
        shapes,
    )
    return ModelDef(graphdef, shapes, shardings, mesh)


def abstract_params(definition: ModelDef) -> Params:
    """Shapes, dtypes and shardings of the parameters, as a restore target."""
    return jax.tree.map(
        lambda shape, sharding: jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=sharding),
        definition.abstract_params,
        definition.param_shardings,
    )


def init_params(make_model: Any, definition: ModelDef) -> Params:
    """Parameters created directly with their shardings (no unsharded copy on one device)."""

    def create() -> Params:
        return nnx.to_pure_dict(nnx.split(make_model(), nnx.Param)[1])

    return jax.jit(create, out_shardings=definition.param_shardings)()


def state_shardings(
    definition: ModelDef, tx: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """Shardings of every leaf of the state: optimizer moments follow their parameter."""
    abstract_opt = jax.eval_shape(tx.init, definition.abstract_params)
    opt_shardings = optax.tree_map_params(
        tx,
        lambda _, sharding: sharding,
        abstract_opt,
        definition.param_shardings,
        transform_non_params=lambda _: replicated(mesh),
    )
    return TrainState(
        step=replicated(mesh),
        params=definition.param_shardings,
        opt_state=opt_shardings,
        rng=replicated(mesh),
    )


def create_state(
    params: Params, tx: optax.GradientTransformation, seed: int, shardings: TrainState
) -> TrainState:
    """A step-0 state around ``params`` (already placed), built sharded by ``jit``."""

    def build(params: Params) -> TrainState:
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=jax.random.key_data(jax.random.key(seed)),
        )

    return jax.jit(build, out_shardings=shardings)(params)


def abstract_state(
    definition: ModelDef, tx: optax.GradientTransformation, shardings: TrainState
) -> TrainState:
    """Shapes, dtypes and shardings of the state, as a restore target."""
    shapes = jax.eval_shape(
        lambda p: TrainState(
            step=jnp.zeros((), jnp.int32),
            params=p,
            opt_state=tx.init(p),
            rng=jax.random.key_data(jax.random.key(0)),
        ),
        definition.abstract_params,
    )
    return jax.tree.map(
        lambda shape, sharding: jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=sharding),
        shapes,
        shardings,
    )


def bytes_per_device(state: Any) -> tuple[int, int]:
    """``(largest on one device, in all)`` bytes of the arrays of ``state`` (abstract, with
    shardings): what a device holds of the parameters and optimizer state."""
    per_device: dict[Any, int] = {}
    total = 0
    for leaf in jax.tree.leaves(state):
        size = jnp.dtype(leaf.dtype).itemsize
        total += int(np.prod(leaf.shape)) * size
        shard = int(np.prod(leaf.sharding.shard_shape(leaf.shape))) * size
        for device in leaf.sharding.device_set:
            per_device[device] = per_device.get(device, 0) + shard
    return max(per_device.values(), default=0), total
