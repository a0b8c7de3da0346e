"""Stages that continue from an upstream checkpoint (SFT), and those also regularised towards
a frozen reference model (KL, DPO)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from experimaestro import Param, field

from xpm_train.data.datasets import readable_at_planning
from xpm_train.data.files import LocalFiles
from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.tasks.checkpoint import Checkpoint, model_factory, restore_checkpoint
from xpm_train.tasks.trainer import TrainerTask
from xpm_train.training.budget import explicit
from xpm_train.validation import ConfigError, Problems

if TYPE_CHECKING:
    from flax import nnx

    from xpm_train.objectives.base import Objective
    from xpm_train.training.loop import Stage
    from xpm_train.training.state import ModelDef, Params


class FinetuneTask(TrainerTask):
    """Base of the stages initialised from an upstream checkpoint (``init``)."""

    init: Param[Checkpoint]
    """The checkpoint to start from (in YAML: the name of the upstream stage)"""
    steps: Param[int] = field(default=300)
    """Number of optimizer steps (or give epochs)"""

    def total_steps(self) -> int:
        """``steps``, or the steps of ``epochs`` when given (then ``steps`` must not be)."""
        if self.epochs is None:
            return self.steps
        if explicit(self, "steps"):
            raise ConfigError(
                [("epochs", f"give steps or epochs, not both (steps={self.steps} is given)")]
            )
        return self.epoch_steps()

    def model_and_tokenizer(self) -> tuple[ModelConfig, Tokenizer]:
        return self.init.model, self.init.tokenizer

    def policy_factory(self) -> Callable[[], nnx.Module]:
        return model_factory(self.init, self.seed)

    def initial_params(self, definition: ModelDef) -> Params:
        return restore_checkpoint(self.init, definition.mesh)[1]

    def objective(self) -> Objective:
        raise NotImplementedError

    def reference_params(self, definition: ModelDef) -> Any:
        """What the objective needs besides the trained parameters (none here)."""
        return None

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

    def validate_lengths(self, problems: Problems, examples: Callable[[], list[Any]]) -> None:
        """Examples longer than ``seq_len`` tokens, found at planning: ``examples()`` (the
        training data's examples, read at planning when small enough) encoded as the job
        would encode them, once per (data, tokenizer, seq_len, loader): a sweep's jobs share
        their data. A job skips it: its components are instances, and it encodes its data
        anyway (with the same error)."""
        data = self.training_data()
        tokenizer = self.model_and_tokenizer()[1]
        if problems.found or not (hasattr(data, "__xpm__") and hasattr(tokenizer, "__xpm__")):
            return
        if isinstance(data, LocalFiles) and not readable_at_planning(*data.data_files()):
            return
        loader = self.data_loader()
        identities = (data.__xpm__.identifier.all, tokenizer.__xpm__.identifier.all)
        key = (*identities, self.seq_len, loader.__qualname__)
        if key not in _LENGTH_CHECKS:
            checked = Problems()
            checked.call("seq_len", lambda: loader.encode(examples(), tokenizer, self.seq_len))
            _LENGTH_CHECKS[key] = checked.found
        problems.found += _LENGTH_CHECKS[key]


#: The problems of each length check done at planning, by (data, tokenizer, seq_len, loader):
#: the jobs of a sweep share their data, which is then encoded once, not once per job.
_LENGTH_CHECKS: dict[tuple[bytes, bytes, int, str], list[tuple[str, str]]] = {}


class ReferenceTask(FinetuneTask):
    """Base of the stages regularised towards a frozen ``reference`` model."""

    reference: Param[Checkpoint | None] = field(default=None)
    """The frozen reference model (in YAML: a stage name; default: the init checkpoint)"""

    def reference_checkpoint(self) -> Checkpoint:
        return self.reference if self.reference is not None else self.init

    def validate_stage(self, problems: Problems) -> None:
        reference = self.reference_checkpoint()
        if reference.tokenizer.vocab_size != self.init.tokenizer.vocab_size:
            problems.add(
                "reference",
                f"the reference's vocabulary ({reference.tokenizer.vocab_size} tokens) differs "
                f"from the init checkpoint's ({self.init.tokenizer.vocab_size})",
            )

    def reference_params(self, definition: ModelDef) -> Params:
        return restore_checkpoint(self.reference_checkpoint(), definition.mesh)[1]

    def reference_graphdef(self) -> Any:
        from flax import nnx

        abstract = nnx.eval_shape(model_factory(self.reference_checkpoint()))
        return nnx.split(abstract, nnx.Param)[0]
