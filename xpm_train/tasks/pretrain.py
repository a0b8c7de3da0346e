"""Pretraining from scratch with next-token prediction."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from experimaestro import Param

from xpm_train.data.datasets import TextDataset
from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.tasks.trainer import ConfigError, TrainerTask, check_errors

if TYPE_CHECKING:
    from xpm_train.data.blocks import BlockData
    from xpm_train.training.loop import Stage


class Pretrain(TrainerTask):
    """Train a language model from scratch on a text dataset."""

    stage_name = "pretrain"

    model: Param[ModelConfig]
    tokenizer: Param[Tokenizer]
    dataset: Param[TextDataset]
    steps: Param[int | None]
    """Number of optimizer steps (or give tokens)"""
    tokens: Param[int | None]
    """Token budget: steps = ceil(tokens / (batch_size * seq_len))"""

    def total_steps(self) -> int:
        if (self.steps is None) == (self.tokens is None):
            raise ConfigError("give exactly one of steps and tokens")
        if self.steps is not None:
            return self.steps
        return math.ceil(self.tokens / (self.batch_size * self.seq_len))

    def model_and_tokenizer(self) -> tuple[ModelConfig, Tokenizer]:
        return self.model, self.tokenizer

    def stage_errors(self) -> list[str]:
        errors = []
        if self.seq_len < 1:
            errors.append(f"seq_len={self.seq_len} must be >= 1")
        if self.seq_len > self.model.max_seq_len:
            errors.append(
                f"seq_len={self.seq_len} exceeds the model's max_seq_len={self.model.max_seq_len}"
            )
        return errors + check_errors(self.model.check, self.dataset.check)

    def training_data(self) -> TextDataset:
        return self.dataset

    def data_loader(self) -> type[BlockData]:
        from xpm_train.data.blocks import BlockData

        return BlockData

    def build_stage(self) -> Stage:
        from xpm_train.objectives.language_model import NextTokenPrediction
        from xpm_train.training.loop import Stage

        return Stage(
            make_model=lambda: self.model.create(self.tokenizer.vocab_size, self.seed),
            objective=NextTokenPrediction(),
            optimizer=self.optimizer,
            schedule=self.schedule,
            data=self.stage_data(),
        )
