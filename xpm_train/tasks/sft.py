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
    """Fine-tune ``init`` to answer prompts: cross-entropy on the completion tokens only.

    As TRL's SFT with a completion-only loss: the prompt is context, never a target (the model
    is taught to answer, not to write prompts); no reference model. ``batch_size`` and
    ``micro_batch_size`` count examples; ``seq_len`` bounds the tokens of prompt + completion.
    """

    #: The loss is already the completion tokens' cross-entropy (its exponential is logged
    #: as ``eval/perplexity``): no other metric.
    key_metrics = ()

    completions: Param[CompletionDataset]
    """The (prompt, completion) pairs"""
    steps: Param[int] = field(default=200, overrides=True)
    """Number of optimizer steps (or give epochs)"""

    def validate_stage(self, problems: Problems) -> None:
        problems.validate("completions", self.completions)
        self.validate_lengths(problems, self.completions.pairs)

    def training_data(self) -> CompletionDataset:
        return self.completions

    def data_loader(self) -> type[CompletionData]:
        from xpm_train.data.completions import CompletionData

        return CompletionData

    def objective(self) -> Objective:
        from xpm_train.objectives.language_model import NextTokenPrediction

        return NextTokenPrediction()
