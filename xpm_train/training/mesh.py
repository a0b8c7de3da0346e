"""The device mesh ``data x fsdp x model``, and batches placed on it from each process's rows.

- ``data``: data parallel; parameters and optimizer state are replicated over it.
- ``fsdp``: data parallel too (each device gets its own examples), but every parameter and its
  optimizer state is split over it along one dimension (:func:`with_fsdp`); XLA gathers a
  parameter where it is used and reduces its gradient back to the shards.
- ``model``: tensor parallel, along the dimensions the model's layers annotate.

The mesh spans every device of every process (``jax.devices()``); one device is ``1x1x1``.
A batch is split over ``data x fsdp`` along its example axis: each process builds only the
examples its own devices hold (:func:`local_rows`) and the global array is assembled from them
(:func:`place_rows`), so a run with N processes sees the batches of a one-process run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from xpm_train.training.mesh_shape import mesh_shape

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
MODEL_AXIS = "model"
#: The axes a batch's examples are split over.
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)

__all__ = ["mesh_shape"]  # re-exported: the arithmetic, without JAX, for planning


def make_mesh(
    model_parallel: int = 1, devices: Sequence[jax.Device] | None = None, fsdp: int = 1
) -> Mesh:
    """All (or the given) devices as a ``data x fsdp x model`` mesh; the model axis groups
    neighbouring devices (those of one process first)."""
    devices = list(devices if devices is not None else jax.devices())
    shape = mesh_shape(len(devices), model_parallel, fsdp)
    return Mesh(np.array(devices).reshape(shape), (DATA_AXIS, FSDP_AXIS, MODEL_AXIS))


def data_parallel_size(mesh: Mesh) -> int:
    """How many devices get different examples of a batch."""
    return mesh.shape[DATA_AXIS] * mesh.shape[FSDP_AXIS]


def _axes(entry: Any) -> tuple[str, ...]:
    """The mesh axes of one entry of a ``PartitionSpec``."""
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, tuple) else (entry,)


def with_fsdp(sharding: NamedSharding, shape: tuple[int, ...]) -> NamedSharding:
    """``sharding`` also split over the fsdp axis, along the largest dimension that it
    divides once the other axes have split it (one they leave whole first); unchanged when
    there is none (a small bias)."""
    mesh = sharding.mesh
    size = mesh.shape.get(FSDP_AXIS, 1)
    if size == 1:
        return sharding
    spec = list(sharding.spec) + [None] * (len(shape) - len(sharding.spec))
    split = [int(np.prod([mesh.shape[axis] for axis in _axes(entry)])) for entry in spec]
    free = [dim for dim in range(len(shape)) if shape[dim] % (split[dim] * size) == 0]
    if not free:
        return sharding
    dim = max(free, key=lambda d: (split[d] == 1, shape[d]))
    axes = _axes(spec[dim]) + (FSDP_AXIS,)
    spec[dim] = axes if len(axes) > 1 else FSDP_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


def batch_sharding(mesh: Mesh, ndim: int, batch_axis: int) -> NamedSharding:
    """Split dimension ``batch_axis`` of an ``ndim`` array over the data and fsdp axes."""
    spec: list[Any] = [None] * ndim
    spec[batch_axis] = BATCH_AXES
    return NamedSharding(mesh, PartitionSpec(*spec))


def _bounds(index: tuple[slice, ...], axis: int, size: int) -> range:
    part = index[axis]
    return range(part.start or 0, size if part.stop is None else part.stop)


def local_rows(mesh: Mesh, size: int) -> np.ndarray:
    """The positions, along a batch axis of ``size`` examples, that this process's devices
    hold (all of them in a one-process run)."""
    sharding = batch_sharding(mesh, 1, 0)
    held = {
        row
        for index in sharding.addressable_devices_indices_map((size,)).values()
        for row in _bounds(index, 0, size)
    }
    return np.array(sorted(held), dtype=np.int64)


def place_rows(
    local: dict[str, np.ndarray], rows: np.ndarray, mesh: Mesh, batch_axis: int, size: int
) -> dict[str, jax.Array]:
    """Global arrays of ``size`` examples along ``batch_axis``, from this process's examples
    ``local`` (those at ``rows``, in that order), each device given its own part."""
    placed = {}
    for key, array in local.items():
        array = np.asarray(array)
        shape = list(array.shape)
        shape[batch_axis] = size
        sharding = batch_sharding(mesh, array.ndim, batch_axis)
        parts = []
        for device, index in sharding.addressable_devices_indices_map(tuple(shape)).items():
            wanted = np.searchsorted(rows, np.asarray(_bounds(index, batch_axis, size)))
            parts.append(jax.device_put(np.take(array, wanted, axis=batch_axis), device))
        placed[key] = jax.make_array_from_single_device_arrays(tuple(shape), sharding, parts)
    return placed


def shard_batch(batch: dict[str, Any], mesh: Mesh, batch_axis: int) -> dict[str, jax.Array]:
    """Place a whole batch (every process has all of it), split along ``batch_axis``."""
    size = np.shape(next(iter(batch.values())))[batch_axis]
    rows = local_rows(mesh, size)
    local = {key: np.take(np.asarray(v), rows, axis=batch_axis) for key, v in batch.items()}
    return place_rows(local, rows, mesh, batch_axis, size)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
