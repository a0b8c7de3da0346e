"""What the training loop takes: a stage (model, objective, data), its settings and its paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flax import nnx

from xpm_train.data.loader import Batch, StepBatches
from xpm_train.objectives.base import Objective
from xpm_train.optim.optimizers import Optimizer
from xpm_train.optim.schedules import Schedule
from xpm_train.training.state import ModelDef, Params


class StageData(Protocol):
    """A stage's data: training batches by step, held-out batches."""

    def train_batches(self, accum_steps: int) -> StepBatches:
        """The function (step, rows) -> batch shaped ``(accum_steps, batch_size //
        accum_steps, ...)``, or only the examples at ``rows`` of each micro-batch."""
        ...

    def eval_batches(self, batch_size: int) -> list[Batch]: ...

    @property
    def tokens_per_sample(self) -> int: ...


@dataclass(frozen=True)
class LoopSettings:
    total_steps: int
    batch_size: int
    """Sequences per optimizer step (the global batch)"""
    micro_batch_size: int
    """Sequences per device and forward/backward pass"""
    seed: int
    eval_interval: int
    log_interval: int = 10
    checkpoint_interval: int = 100
    keep_checkpoints: int = 2
    model_parallel: int = 1
    """Devices per model replica (the mesh's model axis)"""
    fsdp: int = 1
    """Devices over which parameters and optimizer state are split (-1: all that
    ``model_parallel`` leaves); the data axis is what is left"""
    prefetch: int = 2
    best_metric: str | None = None
    """A held-out metric as logged (``eval/loss``): keep the checkpoint where it is best"""
    best_mode: str = "min"
    """Whether the best value of ``best_metric`` is its ``min`` or its ``max``"""


@dataclass(frozen=True)
class RunPaths:
    checkpoints: Path
    metrics: Path
    result: Path
    best: Path | None = None
    """The folder of the best checkpoint (with ``best_metric``); its record lies beside it"""


@dataclass
class Stage:
    """What a stage brings to the loop."""

    make_model: Callable[[], nnx.Module]
    objective: Objective
    optimizer: Optimizer
    schedule: Schedule
    data: StageData
    initial_params: Callable[[ModelDef], Params] | None = None
    """Parameters to start from (default: a fresh initialisation)"""
    frozen: Callable[[ModelDef], Any] | None = None
    """What the objective needs besides the trained parameters (e.g. a reference model)"""


def accumulation_steps(settings: LoopSettings, data_parallel: int) -> int:
    """Forward/backward passes per step: the batch over the micro-batches of every
    data-parallel device."""
    per_step = settings.micro_batch_size * data_parallel
    if settings.batch_size % per_step:
        raise ValueError(
            f"batch_size={settings.batch_size} is not divisible by micro_batch_size="
            f"{settings.micro_batch_size} x {data_parallel} data-parallel device(s)"
        )
    return settings.batch_size // per_step


def format_duration(seconds: float) -> str:
    """``1h05m`` or ``3m07s``."""
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )
