"""A stage's output: a trained model as a Config that a downstream task takes as a Param."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experimaestro import Config, Meta, Param
from experimaestro.core.objects import ConfigMixin

from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig

if TYPE_CHECKING:
    from flax import nnx


class Checkpoint(Config):
    """A model configuration, its tokenizer, and the checkpoint holding its parameters.

    Produced by a training task's ``task_outputs``: passing it to another task records the
    dependency on the training job (the producing job's identity is part of its own).
    """

    model: Param[ModelConfig]
    tokenizer: Param[Tokenizer]
    path: Meta[Path]
    """Checkpoints folder of the training job"""
    step: Meta[int]
    """The step of the checkpoint to use (the final one)"""
    metrics: Meta[Path | None]
    """The training metrics (JSON lines) of the job that produced it"""

    def load(self) -> LoadedModel:
        return load_checkpoint(self)


@dataclass
class LoadedModel:
    """A model ready to call (``model(tokens)`` gives logits) and its parameters."""

    model: nnx.Module
    params: dict[str, Any]
    tokenizer: Tokenizer
    step: int


def load_checkpoint(source: Checkpoint | Path | str, step: int | None = None) -> LoadedModel:
    """Load a trained model from a Checkpoint output or from a training job's folder.

    ``step`` selects another checkpoint of the job than the one of the output (default).
    """
    import jax

    from xpm_train.training.checkpoint import restore_params
    from xpm_train.training.mesh import make_mesh
    from xpm_train.training.state import model_def

    if isinstance(source, (str, Path)):
        from experimaestro import from_task_dir

        task = from_task_dir(Path(source), as_instance=True)
        model_config, tokenizer = task.model, task.tokenizer
        folder, final_step = Path(task.checkpoints), task.total_steps()
    else:
        model_config, tokenizer = source.model, source.tokenizer
        folder, final_step = Path(source.path), source.step
    if isinstance(model_config, ConfigMixin):  # a configuration, not a value object
        model_config, tokenizer = model_config.instance(), tokenizer.instance()
    mesh = make_mesh()

    def make_model() -> nnx.Module:
        return model_config.create(tokenizer.vocab_size, seed=0)

    definition = model_def(make_model, mesh)
    target = jax.tree.map(
        lambda shape, sharding: jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=sharding),
        definition.abstract_params,
        definition.param_shardings,
    )
    chosen = final_step if step is None else step
    params = restore_params(folder, chosen, target)
    return LoadedModel(definition.merge(params), params, tokenizer, chosen)
