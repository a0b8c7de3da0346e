"""The sizes of the mesh axes, without JAX: also checked at planning, against the devices
that a stage's launcher gives it (docs/scaling.md)."""

from __future__ import annotations

import importlib.util
import os
import re


class MeshError(ValueError):
    """Mesh axes that do not fit the devices; ``key``: the setting to change."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


def mesh_shape(devices: int, model_parallel: int = 1, fsdp: int = 1) -> tuple[int, int, int]:
    """``(data, fsdp, model)`` for ``devices`` devices; ``fsdp=-1``: every device that
    ``model_parallel`` leaves (no plain data parallelism)."""
    if model_parallel < 1 or devices % model_parallel:
        message = f"model_parallel={model_parallel} does not divide the {devices} device(s)"
        raise MeshError("model_parallel", message)
    left = devices // model_parallel
    if fsdp == -1:
        fsdp = left
    if fsdp < 1 or left % fsdp:
        raise MeshError(
            "fsdp",
            f"fsdp={fsdp} does not divide the {left} device(s) left by "
            f"model_parallel={model_parallel} (of {devices}); use a divisor or -1 (all of them)",
        )
    return left // fsdp, fsdp, model_parallel


def validate_layout(
    devices: int, model_parallel: int, fsdp: int, batch_size: int, micro_batch_size: int
) -> list[tuple[str, str]]:
    """``(key, problem)`` for mesh axes that do not divide ``devices``, or a batch that the
    data-parallel devices cannot share in whole micro-batches."""
    try:
        data, fsdp_size, _ = mesh_shape(devices, model_parallel, fsdp)
    except MeshError as error:
        return [(error.key, str(error))]
    parallel = data * fsdp_size
    if micro_batch_size > 0 and batch_size % (micro_batch_size * parallel):
        return [
            (
                "batch_size",
                f"{batch_size} is not divisible by micro_batch_size={micro_batch_size} x "
                f"{parallel} data-parallel device(s) of the {devices} the job gets",
            )
        ]
    return []


#: JAX's plugins for accelerators: with one installed, the devices are known only in the job.
ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm7_plugin", "libtpu")


def local_cpu_devices() -> int | None:
    """The devices a job on this machine gets when JAX runs on its CPU: 1, or the count that
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` forces; None when JAX has a GPU
    or TPU plugin (then the job counts them)."""
    if has_accelerator_plugin():
        return None
    forced = re.search(
        r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", "")
    )
    return int(forced.group(1)) if forced else 1


def has_accelerator_plugin() -> bool:
    """Whether a GPU or TPU plugin of JAX is installed."""
    return any(importlib.util.find_spec(name) is not None for name in ACCELERATOR_PLUGINS)
