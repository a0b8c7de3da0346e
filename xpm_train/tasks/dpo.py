"""Preference training with DPO from an upstream checkpoint (see objectives.dpo)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.preferences import PreferenceDataset
from xpm_train.tasks.finetune import FinetuneTask
from xpm_train.tasks.trainer import check_errors

if TYPE_CHECKING:
    from xpm_train.data.pairs import PairData
    from xpm_train.objectives.base import Objective


class DPO(FinetuneTask):
    """Train ``init`` to prefer the chosen completions, against a frozen ``reference``.

    ``batch_size`` and ``micro_batch_size`` count preference pairs; ``seq_len`` bounds the
    tokens of prompt + completion.
    """

    stage_name = "dpo"

    preferences: Param[PreferenceDataset]
    beta: Param[float] = field(default=0.1)
    """Inverse temperature of the implicit reward"""
    label_smoothing: Param[float] = field(default=0.0)
    """Assumed fraction of flipped preferences (conservative DPO); 0 is the DPO paper's loss"""
    rpo_alpha: Param[float] = field(default=0.0)
    """Weight of the chosen completions' mean token NLL added to the loss (RPO; TRL's
    rpo_alpha); 0 is the DPO paper's loss"""

    def stage_errors(self) -> list[str]:
        errors = super().stage_errors()
        if self.beta <= 0:
            errors.append(f"beta={self.beta} must be > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            errors.append(f"label_smoothing={self.label_smoothing} must be in [0, 0.5)")
        if self.rpo_alpha < 0:
            errors.append(f"rpo_alpha={self.rpo_alpha} must be >= 0")
        return errors + check_errors(self.preferences.check)

    def training_data(self) -> PreferenceDataset:
        return self.preferences

    def data_loader(self) -> type[PairData]:
        from xpm_train.data.pairs import PairData

        return PairData

    def objective(self) -> Objective:
        from xpm_train.objectives.dpo import DirectPreference

        return DirectPreference(
            self.reference_graphdef(), self.beta, self.label_smoothing, self.rpo_alpha
        )
