"""Stage 2: continued training on new data with a token-level KL penalty (see objectives.kl)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.datasets import TextDataset
from xpm_train.objectives import KL_DIRECTIONS
from xpm_train.tasks.finetune import FinetuneTask
from xpm_train.tasks.trainer import check_errors

if TYPE_CHECKING:
    from xpm_train.data.blocks import BlockData
    from xpm_train.objectives.base import Objective


class KLStage(FinetuneTask):
    """Continue training ``init`` on ``dataset`` with ``loss = CE + beta * KL(., reference)``."""

    stage_name = "kl"

    dataset: Param[TextDataset]
    """The new data"""
    beta: Param[float] = field(default=0.1)
    """Weight of the KL penalty (0: plain continued training)"""
    direction: Param[str] = field(default="forward")
    """forward: KL(reference || policy); reverse: KL(policy || reference)"""

    def stage_errors(self) -> list[str]:
        errors = super().stage_errors()
        if self.direction not in KL_DIRECTIONS:
            errors.append(f"direction={self.direction!r} is not one of {', '.join(KL_DIRECTIONS)}")
        if self.beta < 0:
            errors.append(f"beta={self.beta} must be >= 0")
        return errors + check_errors(self.dataset.check)

    def training_data(self) -> TextDataset:
        return self.dataset

    def data_loader(self) -> type[BlockData]:
        from xpm_train.data.blocks import BlockData

        return BlockData

    def objective(self) -> Objective:
        from xpm_train.objectives.kl import KLRegularizedLM

        return KLRegularizedLM(self.reference_graphdef(), self.beta, self.direction)
