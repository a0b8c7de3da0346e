"""Pretraining from scratch with next-token prediction."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from experimaestro import Meta, Param, PathGenerator, ResumableTask, field

from xpm_train.data.datasets import TextDataset
from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.optim.optimizers import Optimizer
from xpm_train.optim.schedules import Schedule
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.progress import report_progress


class ConfigError(ValueError):
    """Inconsistent task parameters, found before the job is submitted."""


class Pretrain(ResumableTask):
    """Train a language model from scratch on a text dataset.

    Resumable: a job killed or timed out restarts from its latest checkpoint and ends with the
    parameters of an uninterrupted run.
    """

    model: Param[ModelConfig]
    tokenizer: Param[Tokenizer]
    dataset: Param[TextDataset]
    optimizer: Param[Optimizer]
    schedule: Param[Schedule]
    seq_len: Param[int]
    """Tokens per training sequence"""
    batch_size: Param[int]
    """Sequences per optimizer step (global batch)"""
    micro_batch_size: Param[int]
    """Sequences per device in one forward/backward pass (gradient accumulation below it)"""
    steps: Param[int | None]
    """Number of optimizer steps (or give tokens)"""
    tokens: Param[int | None]
    """Token budget: steps = ceil(tokens / (batch_size * seq_len))"""
    eval_fraction: Param[float] = field(default=0.05)
    """Fraction of the dataset's documents held out for evaluation"""
    eval_interval: Param[int] = field(default=100)
    eval_batches: Param[int] = field(default=8)
    """At most this many held-out batches per evaluation"""
    seed: Param[int] = field(default=0)

    log_interval: Meta[int] = field(default=10)
    checkpoint_interval: Meta[int] = field(default=100)
    keep_checkpoints: Meta[int] = field(default=2)
    """Checkpoints kept (the latest ones; the final one is always among them)"""
    model_parallel: Meta[int] = field(default=1)
    prefetch: Meta[int] = field(default=2)

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    metrics_path: Meta[Path] = field(default_factory=PathGenerator("metrics.jsonl"))
    result_path: Meta[Path] = field(default_factory=PathGenerator("result.json"))

    def total_steps(self) -> int:
        if (self.steps is None) == (self.tokens is None):
            raise ConfigError("pretrain: give exactly one of steps and tokens")
        if self.steps is not None:
            return self.steps
        return math.ceil(self.tokens / (self.batch_size * self.seq_len))

    def check(self) -> None:
        """Cross-field checks that experimaestro cannot do; call before submitting."""
        total = self.total_steps()
        errors = []
        for key in (
            "seq_len",
            "batch_size",
            "micro_batch_size",
            "eval_interval",
            "log_interval",
            "checkpoint_interval",
        ):
            if getattr(self, key) < 1:
                errors.append(f"{key}={getattr(self, key)} must be >= 1")
        if total < 1:
            errors.append(f"the run has {total} steps; it needs at least 1")
        if self.micro_batch_size > 0 and self.batch_size % self.micro_batch_size:
            errors.append(
                f"batch_size={self.batch_size} is not divisible by "
                f"micro_batch_size={self.micro_batch_size}"
            )
        if self.seq_len > self.model.max_seq_len:
            errors.append(
                f"seq_len={self.seq_len} exceeds the model's max_seq_len={self.model.max_seq_len}"
            )
        for part in (self.model.check, self.dataset.check, lambda: self.schedule.check(total)):
            try:
                part()
            except ValueError as error:
                errors.append(str(error))
        if errors:
            raise ConfigError("pretrain: " + "; ".join(errors))

    def checkpoint_output(self) -> Checkpoint:
        return Checkpoint.C(
            model=self.model,
            tokenizer=self.tokenizer,
            path=self.checkpoints,
            step=self.total_steps(),
        )

    def task_outputs(self, dep: Any) -> Checkpoint:
        return dep(self.checkpoint_output())

    def execute(self) -> None:
        from xpm_train.data.blocks import BlockData
        from xpm_train.training.loop import LoopSettings, RunPaths, Stage, train
        from xpm_train.training.objectives import NextTokenPrediction

        self.check()
        data = BlockData.from_dataset(
            self.dataset,
            self.tokenizer,
            self.seq_len,
            self.batch_size,
            self.eval_fraction,
            self.eval_batches,
            self.seed,
        )
        stage = Stage(
            make_model=lambda: self.model.create(self.tokenizer.vocab_size, self.seed),
            objective=NextTokenPrediction(),
            optimizer=self.optimizer,
            schedule=self.schedule,
            data=data,
        )
        settings = LoopSettings(
            total_steps=self.total_steps(),
            batch_size=self.batch_size,
            micro_batch_size=self.micro_batch_size,
            seed=self.seed,
            eval_interval=self.eval_interval,
            log_interval=self.log_interval,
            checkpoint_interval=self.checkpoint_interval,
            keep_checkpoints=self.keep_checkpoints,
            model_parallel=self.model_parallel,
            prefetch=self.prefetch,
        )
        paths = RunPaths(self.checkpoints, self.metrics_path, self.result_path)
        result = train(stage, settings, paths, on_progress=report_progress)
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
        print(
            f"Pretrain done: {result.step} steps in {result.wall_time_s:.1f}s; {metrics}; "
            f"final checkpoint {result.checkpoint}; metrics in {self.metrics_path}",
            flush=True,
        )
