"""Tokenizers read from local Hugging Face files (``tokenizer.json`` and its configuration).

The files are read with the ``tokenizers`` library (imported lazily: planning stays fast) and
cached per path and modification time; nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from experimaestro import Meta, Param, field

from xpm_train.data.tokenizers import Tokenizer
from xpm_train.registry import register

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILES = ("tokenizer_config.json", "config.json", "generation_config.json")
TEMPLATE_FILE = "chat_template.jinja"
SPECIALS = ("bos", "eos", "pad")
#: The special tokens of the tokenizers this project writes (trained BPE, exported bytes).
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


class TokenizerError(ValueError):
    """Tokenizer files are missing or unusable."""


@dataclass(frozen=True)
class HFFiles:
    """What a folder's files give: the loaded ``tokenizers.Tokenizer``, the special ids and
    the chat template."""

    tokenizer: Any
    bos_id: int | None
    eos_id: int
    pad_id: int
    chat_template: str | None


_LOADED: dict[tuple[str, tuple[int, ...]], HFFiles] = {}


def tokenizer_file(path: str | Path) -> Path:
    """The ``tokenizer.json`` of ``path`` (a folder or the file itself)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TokenizerError(
            f"tokenizer path {str(path)!r} does not exist; give a local Hugging Face folder "
            f"holding {TOKENIZER_FILE} (or the file itself): nothing is downloaded"
        )
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        raise TokenizerError(
            f"tokenizer folder {str(path)!r} has no {TOKENIZER_FILE}; save a fast tokenizer "
            "there (tokenizer.save_pretrained(folder)) or give the path of a tokenizer.json"
        )
    return file


def read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerError(
            f"tokenizer file {str(file)!r} is not readable JSON ({error}); fix or re-save it"
        ) from None
    if not isinstance(data, dict):
        raise TokenizerError(f"tokenizer file {str(file)!r} does not hold a JSON object")
    return data


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_ids(tokenizer: Any, folder: Path) -> dict[str, int | None]:
    """bos/eos/pad ids: ``*_token`` of tokenizer_config.json, else ``*_token_id`` of
    config.json or generation_config.json (the first of a list)."""
    configs = [read_json(folder / name) for name in CONFIG_FILES]
    ids: dict[str, int | None] = {}
    for name in SPECIALS:
        text = _token_text(configs[0].get(f"{name}_token"))
        if text is not None:
            ids[name] = tokenizer.token_to_id(text)
            if ids[name] is None:
                raise TokenizerError(
                    f"{name}_token {text!r} of {folder / CONFIG_FILES[0]} is not in the "
                    f"vocabulary of {folder / TOKENIZER_FILE}; name a token of the vocabulary"
                )
            continue
        ids[name] = None
        for config in configs[1:]:
            value = config.get(f"{name}_token_id")
            value = value[0] if isinstance(value, list) and value else value
            if isinstance(value, int):
                ids[name] = value
                break
    return ids


def _chat_template(folder: Path) -> str | None:
    """The folder's chat template: chat_template.jinja first (as transformers), else the
    ``chat_template`` of tokenizer_config.json (a string or a list naming a ``default``)."""
    if (folder / TEMPLATE_FILE).is_file():
        return (folder / TEMPLATE_FILE).read_text(encoding="utf-8")
    template = read_json(folder / CONFIG_FILES[0]).get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def load_files(path: str | Path) -> HFFiles:
    """The tokenizer and special ids of ``path``, cached per path and modification times."""
    file = tokenizer_file(path).resolve()
    folder = file.parent
    watched = [file] + [folder / name for name in (*CONFIG_FILES, TEMPLATE_FILE)]
    key = (str(file), tuple(p.stat().st_mtime_ns if p.exists() else -1 for p in watched))
    if key not in _LOADED:
        _LOADED[key] = _load(file)
    return _LOADED[key]


def _load(file: Path) -> HFFiles:
    from tokenizers import Tokenizer as Loaded

    try:
        tokenizer = Loaded.from_file(str(file))
    except Exception as error:  # the library raises a bare Exception
        read_json(file)  # names the JSON error when that is the cause
        raise TokenizerError(
            f"{str(file)!r} cannot be read by the tokenizers library ({error}); re-save it "
            "with a recent transformers or tokenizers"
        ) from None
    ids = _special_ids(tokenizer, file.parent)
    eos = ids["eos"]
    if eos is None:
        raise TokenizerError(
            f"tokenizer folder {str(file.parent)!r} names no end-of-sequence token; add "
            '"eos_token" to its tokenizer_config.json (or eos_token_id to its config.json)'
        )
    pad = ids["pad"] if ids["pad"] is not None else eos
    return HFFiles(tokenizer, ids["bos"], eos, pad, _chat_template(file.parent))


@functools.lru_cache(maxsize=8)
def compile_template(template: str) -> Any:
    """A chat template compiled as transformers does: a sandboxed jinja2 environment with
    ``raise_exception``, a ``tojson`` that keeps non-ASCII text and loop controls."""
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, **options: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, **options)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.add_extension(loopcontrols)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render_chat(template: str, prompt: str, bos_token: str, eos_token: str) -> str:
    """``template`` rendered for one user message, with the generation prompt (as
    transformers' ``apply_chat_template``)."""
    return compile_template(template).render(
        messages=[{"role": "user", "content": prompt}],
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
    )


class HFFilesTokenizer(Tokenizer):
    """Shared code of the tokenizers read from a ``tokenizer.json`` and the files beside it."""

    def tokenizer_path(self) -> Path:
        """The tokenizer.json file or its folder."""
        raise NotImplementedError

    def uses_chat_template(self) -> bool:
        return False

    def files(self) -> HFFiles:
        return load_files(self.tokenizer_path())

    @property
    def bos_id(self) -> int | None:
        return self.files().bos_id

    @property
    def eos_id(self) -> int:
        return self.files().eos_id

    @property
    def pad_id(self) -> int:
        return self.files().pad_id

    def encode(self, text: str) -> np.ndarray:
        ids = self.files().tokenizer.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        values = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self.files().tokenizer.decode(values, skip_special_tokens=True)

    def encode_prompt(self, text: str) -> np.ndarray:
        """The document start and ``text``; with the chat template, the template rendered for
        ``text`` as a user message (its own leading bos is not doubled)."""
        if not self.uses_chat_template():
            return super().encode_prompt(text)
        files = self.files()
        token = files.tokenizer.id_to_token
        bos = token(files.bos_id) if files.bos_id is not None else ""
        assert files.chat_template is not None  # checked by __validate__
        rendered = render_chat(files.chat_template, text, bos, token(files.eos_id))
        ids = self.encode(rendered)
        if bos and rendered.startswith(bos) and len(ids) and ids[0] == files.bos_id:
            return ids
        return np.concatenate([[self.document_start_id], ids]).astype(np.int32)


@register("tokenizer", "hf")
class HFTokenizer(HFFilesTokenizer):
    """A local Hugging Face tokenizer: ``tokenizer.json`` with the special tokens named in
    ``tokenizer_config.json`` (or ``config.json`` / ``generation_config.json``)."""

    path: Param[str]
    """A local Hugging Face folder holding tokenizer.json, or the tokenizer.json file itself"""
    chat_template: Param[bool] = field(default=False)
    """Apply the folder's chat template to prompts"""

    def tokenizer_path(self) -> Path:
        return Path(self.path)

    def uses_chat_template(self) -> bool:
        return self.chat_template

    @property
    def vocab_size(self) -> int:
        return self.files().tokenizer.get_vocab_size(with_added_tokens=True)

    def __validate__(self) -> None:
        if not Path(self.path).expanduser().is_absolute():
            raise TokenizerError(
                f"tokenizer path {self.path!r} is relative: give an absolute path (a job reads "
                "it from its own folder)"
            )
        files = self.files()
        if not self.chat_template:
            return
        folder = tokenizer_file(self.path).parent
        if files.chat_template is None:
            raise TokenizerError(
                f"chat_template is true but tokenizer folder {str(folder)!r} has no chat "
                f"template (no chat_template in tokenizer_config.json, no {TEMPLATE_FILE}); "
                "add one or set chat_template: false"
            )
        from jinja2.exceptions import TemplateSyntaxError

        try:
            compile_template(files.chat_template)
        except TemplateSyntaxError as error:
            raise TokenizerError(
                f"the chat template of tokenizer folder {str(folder)!r} is not valid jinja "
                f"({error}); fix it or set chat_template: false"
            ) from None


class TrainedBPE(HFFilesTokenizer):
    """The byte-level BPE tokenizer written by a :class:`~xpm_train.tasks.bpe.TrainBPE` job
    (only produced by that task)."""

    path: Meta[Path]
    """The job's tokenizer.json (its tokenizer_config.json lies beside it)"""
    vocab_size: Param[int]
    """The requested vocabulary size: the embedding size (the trained tokenizer may use fewer
    ids)"""

    def tokenizer_path(self) -> Path:
        return Path(self.path)
