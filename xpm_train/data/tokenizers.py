"""Tokenizers: text <-> token ids.

The interface (``encode``, ``decode``, ``vocab_size`` and the special ids) is what the rest of
the code relies on, so a trained BPE tokenizer can be added later as another registered Config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from experimaestro import Config

from xpm_train.registry import register


class Tokenizer(Config):
    """Base class of tokenizers."""

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    @property
    def eos_id(self) -> int:
        raise NotImplementedError

    @property
    def pad_id(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (int32, no special tokens added)."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids``; special tokens are dropped."""
        raise NotImplementedError


@register("tokenizer", "bytes")
class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as tokens (ids 0-255), plus end-of-sequence (256) and padding (257)."""

    @property
    def vocab_size(self) -> int:
        return 258

    @property
    def eos_id(self) -> int:
        return 256

    @property
    def pad_id(self) -> int:
        return 257

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        data = bytes(int(i) for i in np.asarray(ids).reshape(-1) if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")


def encode_prompt(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """Token ids of a text that starts a document.

    In packed training streams every document follows an end-of-sequence token, so a prompt
    gets the same context by starting with one.
    """
    return np.concatenate([[tokenizer.eos_id], tokenizer.encode(text)]).astype(np.int32)
