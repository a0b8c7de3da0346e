"""A local Hugging Face model folder as a node of the experiment graph.

``stages: {base: {kind: hf, path: models/tiny-llama}}`` makes the folder's model (config.json,
safetensors weights, tokenizer.json) a checkpoint that later stages take as ``init`` or
``reference``. It runs no job: the folder is read when a stage starts from it. Nothing is
ever downloaded; a missing file or an option the implementation does not honour is a
planning error (docs/hf.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from experimaestro import Config, Param, field

from xpm_train.data.hf_tokenizer import HFTokenizer
from xpm_train.models.config import DTYPES
from xpm_train.registry import register
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.validation import Problems, validate

if TYPE_CHECKING:
    from xpm_train.training.state import ModelDef, Params


class HFCheckpoint(Checkpoint):
    """The weights of a Hugging Face folder (``path``) as a checkpoint."""

    fingerprint: Param[str]
    """Names, sizes and modification times of the folder's weight and tokenizer files,
    hashed: a changed file makes every job starting from it a new job"""

    def read_params(self, definition: ModelDef, step: int | None = None) -> Params:
        from xpm_train.models.hf_weights import load_params
        from xpm_train.training.state import abstract_params

        return load_params(Path(self.path), self.model, abstract_params(definition))


def is_hf_folder(folder: Path) -> bool:
    """A folder with a config.json and weights, not an experimaestro job folder."""
    folder = Path(folder)
    return (folder / "config.json").is_file() and not (folder / "params.json").is_file()


#: The files besides the weights that change what a model computes or how text is encoded.
FINGERPRINTED = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def folder_fingerprint(folder: Path) -> str:
    from xpm_train.models.hf_weights import weight_files

    digest = hashlib.sha256()
    others = [folder / name for name in FINGERPRINTED if (folder / name).is_file()]
    for file in sorted({*weight_files(folder).values(), *others}):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def read_hf_folder(
    folder: Path, chat_template: bool = False, param_dtype: str = "float32"
) -> HFCheckpoint:
    """The checkpoint of a Hugging Face folder (ValueError naming what is wrong)."""
    from xpm_train.models.hf_config import model_from_folder

    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder (a Hugging Face model is a local folder)")
    model = model_from_folder(folder)
    model.param_dtype = param_dtype
    validate(model)
    tokenizer = HFTokenizer.C(path=str(folder), chat_template=chat_template)
    validate(tokenizer)
    if tokenizer.vocab_size > model.vocab_size:
        raise ValueError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens, more than the model's "
            f"vocab_size {model.vocab_size}"
        )
    return HFCheckpoint.C(
        model=model,
        tokenizer=tokenizer,
        path=folder,
        step=0,
        fingerprint=folder_fingerprint(folder),
    )


@register("stage", "hf")
class HFModel(Config):
    """A pretrained model from a local Hugging Face folder (llama, qwen2, gpt_neox)."""

    path: Param[str]
    """The folder: config.json, model.safetensors (or shards and their index), tokenizer.json"""
    chat_template: Param[bool] = field(default=False)
    """Apply the folder's chat template to the prompts of the stages that start from it"""
    param_dtype: Param[str] = field(default="float32")
    """Type of the parameters when training from it: float32 or bfloat16"""

    def __validate__(self) -> None:
        problems = Problems()
        if self.param_dtype not in DTYPES:
            problems.add("param_dtype", f"{self.param_dtype!r} is not one of {', '.join(DTYPES)}")
        else:
            problems.call("path", self.planned_output)
        problems.raise_any()

    def planned_output(self) -> HFCheckpoint:
        return read_hf_folder(Path(self.path), self.chat_template, self.param_dtype)
