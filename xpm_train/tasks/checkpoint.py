"""A stage's output: a trained model as a Config that a downstream task takes as a Param."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experimaestro import Config, Meta, Param, field
from experimaestro.core.objects import ConfigMixin

from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig

if TYPE_CHECKING:
    from flax import nnx
    from jax.sharding import Mesh

    from xpm_train.training.state import ModelDef, Params


#: The checkpoints of a training job a stage can take: ``init: sft`` (or ``sft.final``) is its
#: final checkpoint, ``init: sft.best`` the one of its best evaluation (``best_metric``).
CHECKPOINT_CHOICES = ("final", "best")


def checkpoint_reference(value: str) -> tuple[str, str]:
    """``(stage, which)`` of a stage name given for a checkpoint: ``sft`` and ``sft.final``
    are ``("sft", "final")``, ``sft.best`` is ``("sft", "best")``."""
    stage, _, which = value.rpartition(".")
    return (stage, which) if stage and which in CHECKPOINT_CHOICES else (value, "final")


class Checkpoint(Config):
    """A model configuration, its tokenizer, and the checkpoint holding its parameters.

    Produced by a training task's ``task_outputs``: passing it to another task records the
    dependency on the training job (the producing job's identity is part of its own).
    """

    model: Param[ModelConfig]
    tokenizer: Param[Tokenizer]
    path: Meta[Path]
    """Checkpoints folder of the training job (its best checkpoint folder for ``best``)"""
    step: Meta[int]
    """The step of the checkpoint to use: the final one (for ``best``, the record's step is
    used instead: ``chosen_step``)"""
    metrics: Meta[Path | None] = field(default=None)
    """The training metrics (JSON lines) of the job that produced it"""
    which: Param[str] = field(default="final", ignore_default=True)
    """``final``: the job's last checkpoint; ``best``: the one of its best evaluation
    (``best_metric``), whose step the job records beside ``path``"""

    def load(self) -> LoadedModel:
        return load_checkpoint(self)

    def chosen_step(self) -> int:
        """The step of the checkpoint (for ``best``, read from the record: in a job)."""
        if self.which == "best":
            from xpm_train.training.result import best_step

            return best_step(Path(self.path))
        return self.step

    def read_params(self, definition: ModelDef, step: int | None = None) -> Params:
        """The parameters, placed with ``definition``'s shardings (``step``: another
        checkpoint of the job than ``chosen_step()``)."""
        return _orbax_params(self.path, self.chosen_step() if step is None else step, definition)


@dataclass(frozen=True)
class CheckpointValues:
    """The fields of a Checkpoint, for a checkpoint found from a job folder."""

    model: ModelConfig
    tokenizer: Tokenizer
    path: Path
    step: int
    metrics: Path | None = None

    def chosen_step(self) -> int:
        return self.step

    def read_params(self, definition: ModelDef, step: int | None = None) -> Params:
        return _orbax_params(self.path, self.step if step is None else step, definition)


AnyCheckpoint = Checkpoint | CheckpointValues


def model_factory(checkpoint: AnyCheckpoint, seed: int = 0) -> Callable[[], nnx.Module]:
    """A function creating a fresh model of the checkpoint's architecture."""
    model, tokenizer = _values(checkpoint.model), _values(checkpoint.tokenizer)
    return lambda: model.create(tokenizer.vocab_size, seed)


def restore_checkpoint(
    checkpoint: AnyCheckpoint, mesh: Mesh, step: int | None = None
) -> tuple[ModelDef, dict[str, Any]]:
    """The model's structure and its parameters, placed on ``mesh``."""
    from xpm_train.training.state import model_def

    definition = model_def(model_factory(checkpoint), mesh)
    return definition, checkpoint.read_params(definition, step)


def _orbax_params(path: Path, step: int, definition: ModelDef) -> Params:
    from xpm_train.training.checkpoint import restore_params
    from xpm_train.training.state import abstract_params

    return restore_params(Path(path), step, abstract_params(definition))


def _values(config: Any) -> Any:
    """The value object of a configuration (objects in a job process already are)."""
    return config.instance() if isinstance(config, ConfigMixin) else config


@dataclass
class LoadedModel:
    """A model ready to call (``model(tokens)`` gives logits) and its parameters."""

    model: nnx.Module
    params: dict[str, Any]
    tokenizer: Tokenizer
    step: int
    max_seq_len: int
    """The longest sequence (prompt and generated tokens) the model reads"""


def load_checkpoint(
    source: AnyCheckpoint | Path | str, step: int | None = None, best: bool = False
) -> LoadedModel:
    """Load a trained model from a Checkpoint output, a training job's folder or a Hugging
    Face model folder (config.json, safetensors weights, tokenizer.json).

    ``step`` selects another checkpoint of the job than the final one; ``best``, a job
    folder's best checkpoint (its stage's ``best_metric``).
    """
    from xpm_train.training.mesh import make_mesh

    if isinstance(source, (str, Path)):
        source = checkpoint_in_folder(Path(source), best)
    definition, params = restore_checkpoint(source, make_mesh(), step)
    chosen = source.chosen_step() if step is None else step
    tokenizer, config = _values(source.tokenizer), _values(source.model)
    return LoadedModel(definition.merge(params), params, tokenizer, chosen, config.max_seq_len)


def checkpoint_in_folder(folder: Path, best: bool = False) -> AnyCheckpoint:
    """The checkpoint a folder holds: a training job's final one (its best one with
    ``best``), or a Hugging Face model."""
    from xpm_train.tasks.hf_model import is_hf_folder, read_hf_folder

    if is_hf_folder(folder) and not best:
        return read_hf_folder(folder)
    if not (Path(folder) / "params.json").is_file():
        raise FileNotFoundError(
            f"{folder} is neither a training job's folder (with params.json) nor a Hugging "
            "Face model folder (with config.json)"
        )
    from experimaestro import from_task_dir

    final = from_task_dir(Path(folder), as_instance=True).checkpoint_values()
    if not best:
        return final
    from xpm_train.training.result import best_step

    path = Path(folder) / "best_checkpoint"
    return dataclasses.replace(final, path=path, step=best_step(path))
