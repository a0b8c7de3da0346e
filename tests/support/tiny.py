"""The tiny configuration the unit tests train, defined once.

A 1-layer transformer on arithmetic facts with the byte tokenizer, AdamW and a cosine schedule:
small enough to train in seconds on a CPU. Tests change single fields through ``tiny_specs``
instead of writing out their own spec dicts, and get the loop's stage and settings, or a bare
train state with its jitted step, from the same components.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import optax
from flax import nnx

from xpm_train.data.blocks import BlockData
from xpm_train.objectives.base import Batch
from xpm_train.objectives.language_model import NextTokenPrediction
from xpm_train.registry import build
from xpm_train.training.loop import LoopSettings, RunPaths, Stage
from xpm_train.training.mesh import make_mesh
from xpm_train.training.state import (
    ModelDef,
    TrainState,
    create_state,
    init_params,
    model_def,
    state_shardings,
)
from xpm_train.training.step import Metrics, make_train_step

#: The components, as a YAML file would give them to ``xpm_train.registry.build``.
TINY_SPECS: dict[str, dict[str, Any]] = {
    "model": {"name": "transformer", "d_model": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 32},
    "tokenizer": {"name": "bytes"},
    "dataset": {"name": "arithmetic", "n_examples": 300, "max_operand": 30},
    "optimizer": {"name": "adamw"},
    "schedule": {"name": "cosine", "lr": 1e-2, "lr_warmup_steps": 2},
}


def tiny_specs(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``TINY_SPECS`` with some fields replaced, e.g. ``tiny_specs(model={"n_layers": 2})``."""
    specs = {kind: dict(spec) for kind, spec in TINY_SPECS.items()}
    for kind, fields in overrides.items():
        specs[kind].update(fields)  # a KeyError for a kind that is not a component
    return specs


def tiny_components(**overrides: dict[str, Any]) -> dict[str, Any]:
    """Instances of the components of ``tiny_specs(**overrides)``, by kind."""
    return {kind: build(kind, spec).instance() for kind, spec in tiny_specs(**overrides).items()}


def model_factory(parts: dict[str, Any], seed: int = 0) -> Callable[[], nnx.Module]:
    """``make_model`` of the components: their transformer, sized for their tokenizer."""
    return lambda: parts["model"].create(parts["tokenizer"].vocab_size, seed=seed)


def tiny_model(seed: int = 0) -> nnx.Module:
    """The tiny transformer, initialised from ``seed`` (a policy and its reference differ)."""
    return model_factory(tiny_components(), seed)()


def tiny_stage(seq_len: int = 16, batch_size: int = 8, **overrides: dict[str, Any]) -> Stage:
    """A next-token-prediction stage on the arithmetic facts, with a small held-out set."""
    parts = tiny_components(**overrides)
    data = BlockData.from_dataset(
        parts["dataset"],
        parts["tokenizer"],
        seq_len,
        batch_size,
        eval_fraction=0.1,
        max_eval_batches=2,
        seed=0,
    )
    return Stage(
        make_model=model_factory(parts),
        objective=NextTokenPrediction(),
        optimizer=parts["optimizer"],
        schedule=parts["schedule"],
        data=data,
    )


def tiny_settings(**overrides: Any) -> LoopSettings:
    """24 steps of 2 micro-batches, with evaluations, logs and checkpoints along the way."""
    values = {
        "total_steps": 24,
        "batch_size": 8,
        "micro_batch_size": 4,
        "seed": 0,
        "eval_interval": 8,
        "log_interval": 4,
        "checkpoint_interval": 8,
        "keep_checkpoints": 2,
    }
    values.update(overrides)
    return LoopSettings(**values)


def run_paths(folder: Path) -> RunPaths:
    """Where a run in ``folder`` writes its checkpoints, metrics and result."""
    return RunPaths(folder / "checkpoints", folder / "metrics.jsonl", folder / "result.json")


TrainStep = Callable[[TrainState, Batch, Any], tuple[TrainState, Metrics]]


@dataclass
class TrainSetup:
    """A fresh train state on a one-device mesh, and what its step and restores need."""

    definition: ModelDef
    tx: optax.GradientTransformation
    shardings: TrainState
    state: TrainState

    def jitted_step(self, learning_rate: float) -> TrainStep:
        """The jitted next-token-prediction step, at a constant learning rate."""
        step = make_train_step(
            self.definition, NextTokenPrediction(), self.tx, lambda _: learning_rate
        )
        return jax.jit(step)


def train_setup(
    make_model: Callable[[], nnx.Module], tx: optax.GradientTransformation, seed: int = 0
) -> TrainSetup:
    """The state the training loop starts from, without the loop (for step-level tests)."""
    mesh = make_mesh()
    definition = model_def(make_model, mesh)
    shardings = state_shardings(definition, tx, mesh)
    state = create_state(init_params(make_model, definition), tx, seed, shardings)
    return TrainSetup(definition, tx, shardings, state)
