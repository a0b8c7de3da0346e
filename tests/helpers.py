"""Helpers to run the training loop in-process on tiny configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xpm_train.data.blocks import BlockData
from xpm_train.objectives.language_model import NextTokenPrediction
from xpm_train.training.loop import LoopSettings, RunPaths, Stage

from .conftest import tiny_components


def tiny_stage(seq_len: int = 16, batch_size: int = 8, **overrides: Any) -> Stage:
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
        make_model=lambda: parts["model"].create(parts["tokenizer"].vocab_size, seed=0),
        objective=NextTokenPrediction(),
        optimizer=parts["optimizer"],
        schedule=parts["schedule"],
        data=data,
    )


def tiny_settings(**overrides: Any) -> LoopSettings:
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
    return RunPaths(folder / "checkpoints", folder / "metrics.jsonl", folder / "result.json")
