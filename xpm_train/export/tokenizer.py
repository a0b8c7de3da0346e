"""A tokenizer as Hugging Face files: ``transformers.AutoTokenizer.from_pretrained(folder)``
then encodes text to the ids of ``tokenizer.encode``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from xpm_train.data.hf_tokenizer import (
    EOS_TOKEN,
    PAD_TOKEN,
    TOKENIZER_FILE,
    HFFilesTokenizer,
    load_files,
    read_json,
    tokenizer_file,
)
from xpm_train.data.tokenizers import ByteTokenizer, Tokenizer


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: readers see the old file or the
    whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_hf_files(
    tokenizer: Any, path: Path, specials: dict[str, str | None], **settings: Any
) -> None:
    """Write a ``tokenizers.Tokenizer`` to ``path`` (a tokenizer.json) with the
    tokenizer_config.json and special_tokens_map.json beside it; ``specials`` maps bos, eos
    and pad to their token text, ``settings`` go to tokenizer_config.json. tokenizer.json is
    written last, so that its presence means the folder is complete."""
    tokens = {f"{name}_token": text for name, text in specials.items()}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **tokens,
        "model_max_length": 1_000_000_000,
        **settings,
    }
    present = {key: text for key, text in tokens.items() if text is not None}
    for name, content in (
        ("tokenizer_config.json", config),
        ("special_tokens_map.json", present),
    ):
        write_atomically(path.parent / name, json.dumps(content, indent=2) + "\n")
    write_atomically(path, tokenizer.to_str(pretty=True))


def bytes_to_unicode() -> dict[int, str]:
    """The printable character that byte-level BPE (GPT-2) uses for each byte."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def byte_tokenizer() -> Any:
    """A ``tokenizers.Tokenizer`` giving ByteTokenizer's ids: the UTF-8 bytes (0-255), then
    ``<|endoftext|>`` (256) and ``<|pad|>`` (257)."""
    from tokenizers import AddedToken, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as Loaded

    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    tokenizer = Loaded(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in (EOS_TOKEN, PAD_TOKEN)])
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, folder: Path) -> None:
    """Write ``tokenizer`` as tokenizer.json, tokenizer_config.json and special_tokens_map.json
    in ``folder``."""
    path = Path(folder) / TOKENIZER_FILE
    if isinstance(tokenizer, ByteTokenizer):
        built = byte_tokenizer()
        ids = {"eos": tokenizer.eos_id, "pad": tokenizer.pad_id}
        assert ids == {"eos": built.token_to_id(EOS_TOKEN), "pad": built.token_to_id(PAD_TOKEN)}
        specials = {"bos": None, "eos": EOS_TOKEN, "pad": PAD_TOKEN}
        # special token text in a document is bytes for ByteTokenizer: never matched as a token
        write_hf_files(built, path, specials, split_special_tokens=True)
    elif isinstance(tokenizer, HFFilesTokenizer):
        source = tokenizer_file(tokenizer.tokenizer_path())
        files = load_files(source)
        text = files.tokenizer.id_to_token
        specials = {
            "bos": None if files.bos_id is None else text(files.bos_id),
            "eos": text(files.eos_id),
            "pad": text(files.pad_id),
        }
        config = read_json(source.parent / "tokenizer_config.json")
        kept = {key: config[key] for key in ("model_max_length",) if key in config}
        if files.chat_template is not None:
            kept["chat_template"] = files.chat_template
        write_hf_files(files.tokenizer, path, specials, **kept)
    else:
        raise ValueError(
            f"cannot export a tokenizer of class {type(tokenizer).__name__} to Hugging Face "
            "files: only the bytes, hf and trained BPE tokenizers are supported"
        )
