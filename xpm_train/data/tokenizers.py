"""Tokenizers: text <-> token ids.

The interface (``encode``, ``decode``, ``vocab_size``, the special ids and ``encode_prompt``) is
what the rest of the code relies on; Hugging Face and trained BPE tokenizers are in
:mod:`xpm_train.data.hf_tokenizer`.

A document starts with the beginning-of-sequence token when the tokenizer has one, else with
end-of-sequence (in a packed stream, the end of the previous document), and ends with
end-of-sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from experimaestro import Config

from xpm_train.registry import register


class Tokenizer(Config):
    """Base class of tokenizers."""

    #: Number of embedding rows, all ids are below it: a property of subclasses, or a parameter
    #: where it must be known before the tokenizer's files exist (ClassVar: not a field here).
    vocab_size: ClassVar[int]

    @property
    def bos_id(self) -> int | None:
        """Beginning-of-sequence id, or None when documents start with ``eos_id``."""
        return None

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

    @property
    def document_start_id(self) -> int:
        """The token a document or a prompt starts with: ``bos_id``, or ``eos_id`` without one."""
        bos = self.bos_id
        return self.eos_id if bos is None else bos

    def encode_prompt(self, text: str) -> np.ndarray:
        """Token ids of a text that starts a document: the document start, then ``text``."""
        return np.concatenate([[self.document_start_id], self.encode(text)]).astype(np.int32)


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
    """Token ids of a text that starts a document (``tokenizer.encode_prompt``).

    A prompt gets the context of a document in a packed training stream: it starts with the
    beginning-of-sequence token, or, without one, with end-of-sequence, which every packed
    document follows.
    """
    return tokenizer.encode_prompt(text)
