"""Pretraining from scratch with next-token prediction."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.datasets import TextDataset
from xpm_train.data.tokenizers import ByteTokenizer, Tokenizer
from xpm_train.models.config import ModelConfig, TransformerConfig
from xpm_train.registry import register
from xpm_train.tasks.trainer import TrainerTask
from xpm_train.validation import ConfigError, Problems

if TYPE_CHECKING:
    from xpm_train.data.blocks import BlockData
    from xpm_train.training.loop import Stage


@register("stage", "pretrain")
class Pretrain(TrainerTask):
    """Train a language model from scratch on a text dataset (next-token prediction)."""

    model: Param[ModelConfig] = field(default=TransformerConfig.C())
    """The architecture, initialised from scratch"""
    tokenizer: Param[Tokenizer] = field(default=ByteTokenizer.C())
    """The tokenizer: a component, or the name of a bpe stage (its trained tokenizer)"""
    dataset: Param[TextDataset]
    """The training text (a held-out part is kept for evaluation)"""
    steps: Param[int | None] = field(default=None)
    """Number of optimizer steps (or give tokens, or epochs)"""
    tokens: Param[int | None] = field(default=None)
    """Token budget: steps = ceil(tokens / (batch_size * seq_len))"""

    def total_steps(self) -> int:
        given = [name for name in ("steps", "tokens", "epochs") if getattr(self, name) is not None]
        if len(given) != 1:
            found = f"{' and '.join(given)} are given" if given else "none is given"
            message = f"give exactly one of steps and tokens, or epochs instead ({found})"
            raise ConfigError([(given[-1] if given else "steps", message)])
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epoch_steps()
        return math.ceil(self.tokens / (self.batch_size * self.seq_len))

    def model_and_tokenizer(self) -> tuple[ModelConfig, Tokenizer]:
        return self.model, self.tokenizer

    def validate_stage(self, problems: Problems) -> None:
        problems.validate("model", self.model)
        problems.validate("tokenizer", self.tokenizer)
        problems.validate("dataset", self.dataset)

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
