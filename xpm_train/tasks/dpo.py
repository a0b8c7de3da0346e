"""Preference training with DPO from an upstream checkpoint (see objectives.dpo)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.preferences import PreferenceDataset
from xpm_train.registry import register
from xpm_train.tasks.finetune import ReferenceTask
from xpm_train.validation import Problems

if TYPE_CHECKING:
    from xpm_train.data.pairs import PairData
    from xpm_train.objectives.base import Objective


@register("stage", "dpo")
class DPO(ReferenceTask):
    """Train ``init`` to prefer the chosen completions, against a frozen ``reference``.

    ``batch_size`` and ``micro_batch_size`` count preference pairs; ``seq_len`` bounds the
    tokens of prompt + completion.
    """

    key_metrics = ("rewards/accuracies", "rewards/margins")
    held_out_metrics = (
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    )

    preferences: Param[PreferenceDataset]
    """The (prompt, chosen, rejected) triples"""
    steps: Param[int] = field(default=200, overrides=True)
    """Number of optimizer steps (or give epochs)"""
    beta: Param[float] = field(default=0.1)
    """Inverse temperature of the implicit reward"""
    label_smoothing: Param[float] = field(default=0.0)
    """Assumed fraction of flipped preferences (conservative DPO); 0 is the DPO paper's loss"""
    rpo_alpha: Param[float] = field(default=0.0)
    """Weight of the chosen completions' mean token NLL added to the loss (RPO; TRL's
    rpo_alpha); 0 is the DPO paper's loss"""

    def validate_stage(self, problems: Problems) -> None:
        super().validate_stage(problems)
        if self.beta <= 0:
            problems.add("beta", f"{self.beta} must be > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            problems.add("label_smoothing", f"{self.label_smoothing} must be in [0, 0.5)")
        if self.rpo_alpha < 0:
            problems.add("rpo_alpha", f"{self.rpo_alpha} must be >= 0")
        problems.validate("preferences", self.preferences)
        self.validate_lengths(problems, self.preferences.pairs)

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
