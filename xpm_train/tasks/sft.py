"""Supervised fine-tuning (SFT) on (prompt, completion) pairs from an upstream checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.completions import CompletionDataset
from xpm_train.registry import register
from xpm_train.tasks.finetune import FinetuneTask
from xpm_train.validation import Problems

if TYPE_CHECKING:
    from xpm_train.data.completions import CompletionData
    from xpm_train.objectives.base import Objective


@register("stage", "sft")
class SFT(FinetuneTask):
    """Train ``init`` to produce the completions of prompts: next-token cross-entropy on the
    completion tokens only (TRL's SFT with a completion-only loss), no reference model.

    ``batch_size`` and ``micro_batch_size`` count examples; ``seq_len`` bounds the tokens of
    prompt + completion.
    """

    #: The loss is already the completion tokens' cross-entropy (its exponential is logged
    #: as ``eval/perplexity``): no other metric.
    key_metrics = ()

    completions: Param[CompletionDataset]
    """The (prompt, completion) pairs"""
    steps: Param[int] = field(default=200, overrides=True)
    """Number of optimizer steps"""

    def validate_stage(self, problems: Problems) -> None:
        problems.validate("completions", self.completions)

    def training_data(self) -> CompletionDataset:
        return self.completions

    def data_loader(self) -> type[CompletionData]:
        from xpm_train.data.completions import CompletionData

        return CompletionData

    def objective(self) -> Objective:
        from xpm_train.objectives.language_model import NextTokenPrediction

        return NextTokenPrediction()
