"""The processes of a job: ``jax.distributed`` over SLURM's tasks, and who writes what.

A job started by SLURM with several tasks (``ntasks_per_node`` x ``nodes``; experimaestro's
script runs the job under ``srun``, one process per task) calls :func:`initialize` before any
other JAX call: ``jax.distributed.initialize()`` reads the coordinator (the first node), the
number of processes and this one's index from SLURM's environment, and from then on
``jax.devices()`` lists the devices of every process. On CPU the collectives go through gloo.

Process 0 is the only writer of the job's files (metrics, result, curves, logger runs,
progress); every process's output lines are prefixed with its rank and node.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
from typing import Any, TextIO

from xpm_train.training.mesh_shape import has_accelerator_plugin

#: Seconds the processes wait for each other at start-up (all must have started).
INITIALIZATION_TIMEOUT_S = 300
#: Seconds without news from a process before the others fail (SLURM's kill-on-bad-exit,
#: set by xpm-train's SLURM launcher, usually ends the job sooner).
HEARTBEAT_TIMEOUT_S = 30


def slurm_processes() -> int:
    """How many processes SLURM started for this job step (1 outside SLURM)."""
    for name in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def local_gpus() -> list[int] | None:
    """The GPUs of this process on its node: the node's GPUs (``SLURM_GPUS_ON_NODE``) shared
    evenly by its tasks in the order of their local rank (one task per GPU: its own; one task
    per node: all of them). None without GPUs (JAX's own default then: one per process)."""
    gpus = os.environ.get("SLURM_GPUS_ON_NODE", "")
    tasks = os.environ.get("SLURM_STEP_TASKS_PER_NODE", os.environ.get("SLURM_TASKS_PER_NODE", ""))
    tasks = tasks.split("(")[0].split(",")[0]
    local = os.environ.get("SLURM_LOCALID", "")
    if not (gpus.isdigit() and tasks.isdigit() and local.isdigit()) or int(gpus) == 0:
        return None
    each = int(gpus) // int(tasks)
    if each == 0:
        return None
    return list(range(int(local) * each, (int(local) + 1) * each))


def slurm_rank() -> int:
    value = os.environ.get("SLURM_PROCID", "")
    return int(value) if value.isdigit() else 0


class _Prefixed(io.TextIOBase):
    """A text stream that starts every line written to ``stream`` with ``prefix``."""

    def __init__(self, stream: TextIO, prefix: str):
        self.stream, self.prefix, self.at_line_start = stream, prefix, True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                out.append(self.prefix)
            out.append(piece)
            self.at_line_start = piece.endswith("\n")
        self.stream.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return False


def prefix_output(prefix: str) -> None:
    """Prefix every line of ``sys.stdout``, ``sys.stderr`` and the logging handlers that
    write to them."""
    streams = {}
    for name in ("stdout", "stderr"):
        original = getattr(sys, name)
        streams[id(original)] = wrapped = _Prefixed(original, prefix)
        setattr(sys, name, wrapped)
    for handler in logging.root.handlers:
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in streams:
            handler.setStream(streams[id(handler.stream)])


def initialize() -> int:
    """Join the job's other processes (``jax.distributed``) when SLURM started several;
    returns the number of processes. Call before any other JAX call."""
    count = slurm_processes()
    if count <= 1:
        return 1
    import jax

    rank = slurm_rank()
    prefix_output(f"[process {rank}/{count} on {socket.gethostname()}] ")
    if not jax.distributed.is_initialized():
        if not os.environ.get("CUDA_VISIBLE_DEVICES") and not has_accelerator_plugin():
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            local_device_ids=local_gpus(),
            initialization_timeout=INITIALIZATION_TIMEOUT_S,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
        )
    print(
        f"jax.distributed: process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local device(s) of {jax.device_count()}",
        flush=True,
    )
    return count


def is_writer() -> bool:
    """Whether this process writes the job's files: process 0 (the only one, usually)."""
    import jax

    return jax.process_index() == 0


def other_process() -> bool:
    """Whether this is a process other than the first of a job SLURM started several times
    (before JAX is initialised): jobs that are not distributed do their work only once."""
    return slurm_processes() > 1 and slurm_rank() > 0


def any_process(flag: int) -> int:
    """The largest of every process's ``flag`` (this one's in a one-process run): all
    processes take the same decision, e.g. to stop at the same step."""
    import jax

    if jax.process_count() == 1:
        return flag
    import numpy as np
    from jax.experimental import multihost_utils

    gathered: Any = multihost_utils.process_allgather(np.array([flag], dtype=np.int32))
    return int(np.max(gathered))


def from_first(value: int) -> int:
    """Process 0's ``value``, in every process."""
    import jax

    if jax.process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.array(value, dtype=np.int64)))
