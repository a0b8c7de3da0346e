"""Device mesh: ``data`` (data parallel) x ``model`` (tensor parallel); one device is 1x1."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
MODEL_AXIS = "model"


def make_mesh(model_parallel: int = 1, devices: list[jax.Device] | None = None) -> Mesh:
    """All (or the given) devices as a ``data x model`` mesh."""
    devices = list(devices if devices is not None else jax.devices())
    if model_parallel < 1 or len(devices) % model_parallel:
        raise ValueError(
            f"model_parallel={model_parallel} does not divide the {len(devices)} device(s)"
        )
    grid = np.array(devices).reshape(len(devices) // model_parallel, model_parallel)
    return Mesh(grid, (DATA_AXIS, MODEL_AXIS))


def data_parallel_size(mesh: Mesh) -> int:
    return mesh.shape[DATA_AXIS]


def batch_sharding(mesh: Mesh, ndim: int, batch_axis: int) -> NamedSharding:
    """Shard dimension ``batch_axis`` of an ``ndim`` array over the data axis."""
    spec = [None] * ndim
    spec[batch_axis] = DATA_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


def shard_batch(batch: dict[str, Any], mesh: Mesh, batch_axis: int) -> dict[str, jax.Array]:
    """Place every array of ``batch`` on ``mesh``, split along ``batch_axis`` over ``data``."""
    return {
        key: jax.device_put(value, batch_sharding(mesh, np.ndim(value), batch_axis))
        for key, value in batch.items()
    }


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
