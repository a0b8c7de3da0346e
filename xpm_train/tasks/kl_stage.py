"""Stage 2: continued training on new data with a token-level KL penalty (see objectives.kl)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.datasets import TextDataset
from xpm_train.objectives import KL_DIRECTIONS
from xpm_train.registry import register
from xpm_train.tasks.finetune import ReferenceTask
from xpm_train.validation import Problems

if TYPE_CHECKING:
    from xpm_train.data.blocks import BlockData
    from xpm_train.objectives.base import Objective


@register("stage", "kl")
class KLStage(ReferenceTask):
    """Continue training ``init`` on ``dataset`` with ``loss = CE + beta * KL(., reference)``."""

    key_metrics = ("ce", "kl")
    held_out_metrics = ("loss", "ce", "kl", "perplexity")

    dataset: Param[TextDataset]
    """The new data"""
    beta: Param[float] = field(default=0.1)
    """Weight of the KL penalty (0: plain continued training)"""
    direction: Param[str] = field(default="forward")
    """forward: KL(reference || policy); reverse: KL(policy || reference)"""

    def validate_stage(self, problems: Problems) -> None:
        super().validate_stage(problems)
        if self.direction not in KL_DIRECTIONS:
            problems.add(
                "direction", f"{self.direction!r} is not one of {', '.join(KL_DIRECTIONS)}"
            )
        if self.beta < 0:
            problems.add("beta", f"{self.beta} must be >= 0")
        problems.validate("dataset", self.dataset)

    def training_data(self) -> TextDataset:
        return self.dataset

    def data_loader(self) -> type[BlockData]:
        from xpm_train.data.blocks import BlockData

        return BlockData

    def objective(self) -> Objective:
        from xpm_train.objectives.kl import KLRegularizedLM

        return KLRegularizedLM(self.reference_graphdef(), self.beta, self.direction)
