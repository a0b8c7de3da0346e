"""Stages that continue from an upstream checkpoint against a frozen reference (KL, DPO)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from experimaestro import Param

from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.tasks.checkpoint import Checkpoint, model_factory, restore_checkpoint
from xpm_train.tasks.trainer import TrainerTask

if TYPE_CHECKING:
    from flax import nnx

    from xpm_train.objectives.base import Objective
    from xpm_train.training.loop import Stage
    from xpm_train.training.state import ModelDef, Params


class FinetuneTask(TrainerTask):
    """Base of the stages initialised from ``init`` and regularised towards ``reference``."""

    init: Param[Checkpoint]
    """The checkpoint to start from"""
    reference: Param[Checkpoint | None]
    """The frozen reference model (default: the init checkpoint)"""
    steps: Param[int]

    def total_steps(self) -> int:
        return self.steps

    def model_and_tokenizer(self) -> tuple[ModelConfig, Tokenizer]:
        return self.init.model, self.init.tokenizer

    def reference_checkpoint(self) -> Checkpoint:
        return self.reference if self.reference is not None else self.init

    def stage_errors(self) -> list[str]:
        errors = []
        max_len = self.init.model.max_seq_len
        if not 1 <= self.seq_len <= max_len:
            errors.append(
                f"seq_len={self.seq_len} must be in [1, the model's max_seq_len={max_len}]"
            )
        reference = self.reference_checkpoint()
        if reference.tokenizer.vocab_size != self.init.tokenizer.vocab_size:
            errors.append(
                f"the reference's vocabulary ({reference.tokenizer.vocab_size} tokens) differs "
                f"from the init checkpoint's ({self.init.tokenizer.vocab_size})"
            )
        return errors

    def policy_factory(self) -> Callable[[], nnx.Module]:
        return model_factory(self.init, self.seed)

    def initial_params(self, definition: ModelDef) -> Params:
        return restore_checkpoint(self.init, definition.mesh)[1]

    def reference_params(self, definition: ModelDef) -> Params:
        return restore_checkpoint(self.reference_checkpoint(), definition.mesh)[1]

    def reference_graphdef(self) -> Any:
        from flax import nnx

        abstract = nnx.eval_shape(model_factory(self.reference_checkpoint()))
        return nnx.split(abstract, nnx.Param)[0]

    def objective(self) -> Objective:
        raise NotImplementedError

    def build_stage(self) -> Stage:
        from xpm_train.training.loop import Stage

        return Stage(
            make_model=self.policy_factory(),
            objective=self.objective(),
            optimizer=self.optimizer,
            schedule=self.schedule,
            data=self.stage_data(),
            initial_params=self.initial_params,
            frozen=self.reference_params,
        )
