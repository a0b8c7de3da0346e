"""Preference training with DPO from an upstream checkpoint (see objectives.dpo)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experimaestro import Param, field

from xpm_train.data.preferences import PreferenceDataset
from xpm_train.tasks.finetune import FinetuneTask

if TYPE_CHECKING:
    from xpm_train.training.loop import Stage


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

    def stage_errors(self) -> list[str]:
        errors = super().stage_errors()
        if self.beta <= 0:
            errors.append(f"beta={self.beta} must be > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            errors.append(f"label_smoothing={self.label_smoothing} must be in [0, 0.5)")
        try:
            self.preferences.check()
        except ValueError as error:
            errors.append(str(error))
        return errors

    def build_stage(self) -> Stage:
        from xpm_train.data.pairs import PairData
        from xpm_train.objectives.dpo import DirectPreference
        from xpm_train.training.loop import Stage

        data = PairData.from_dataset(
            self.preferences,
            self.init.tokenizer,
            self.seq_len,
            self.batch_size,
            self.eval_fraction,
            self.eval_batches,
            self.seed,
        )
        objective = DirectPreference(self.reference_graphdef(), self.beta, self.label_smoothing)
        return Stage(
            make_model=self.policy_factory(),
            objective=objective,
            optimizer=self.optimizer,
            schedule=self.schedule,
            data=data,
            initial_params=self.initial_params,
            frozen=self.reference_params,
        )
