"""Held-out split by seed and packing of documents into fixed-length token blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from xpm_train.data.datasets import DatasetError, TextDataset
from xpm_train.data.tokenizers import Tokenizer

T = TypeVar("T")


@dataclass(frozen=True)
class PackedData:
    """A dataset's training documents (token ids, each ending with end-of-sequence) and its
    held-out blocks of ``seq_len + 1`` tokens (inputs and shifted targets)."""

    train_documents: list[np.ndarray]
    eval: np.ndarray
    seq_len: int

    def train_blocks(self, epoch: int, seed: int) -> np.ndarray:
        """The training blocks of an epoch: the documents in a seeded order of that epoch,
        then packed. Reordering every epoch keeps a model from memorising which document
        follows which at fixed block positions, which it does within a few epochs of a small
        dataset packed once."""
        order = np.random.default_rng([seed, epoch, 1]).permutation(len(self.train_documents))
        return pack(np.concatenate([self.train_documents[i] for i in order]), self.seq_len)


def split_documents(documents: list[T], eval_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Deterministic held-out split: the same documents (or any items) go to eval for the
    same seed."""
    if not 0.0 <= eval_fraction < 1.0:
        raise DatasetError(f"eval_fraction={eval_fraction} must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(len(documents))
    n_eval = int(round(len(documents) * eval_fraction))
    if eval_fraction > 0 and n_eval == 0:
        n_eval = 1
    if n_eval >= len(documents):
        raise DatasetError(
            f"eval_fraction={eval_fraction} leaves no training document out of {len(documents)}"
        )
    eval_ids = set(order[:n_eval].tolist())
    train = [doc for i, doc in enumerate(documents) if i not in eval_ids]
    held_out = [doc for i, doc in enumerate(documents) if i in eval_ids]
    return train, held_out


def encode_documents(documents: list[str], tokenizer: Tokenizer) -> list[np.ndarray]:
    """Each document's tokens followed by the end-of-sequence token, and preceded by the
    beginning-of-sequence token when the tokenizer has one (without one, the previous
    document's end-of-sequence token starts the next)."""
    eos = np.array([tokenizer.eos_id], dtype=np.int32)
    bos = np.array([] if tokenizer.bos_id is None else [tokenizer.bos_id], dtype=np.int32)
    return [np.concatenate([bos, tokenizer.encode(doc), eos]) for doc in documents]


def token_stream(documents: list[str], tokenizer: Tokenizer) -> np.ndarray:
    """All documents' tokens as ``encode_documents`` gives them, one after the other."""
    parts = encode_documents(documents, tokenizer)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def pack(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """Cut a token stream into blocks of ``seq_len + 1`` tokens overlapping by one token.

    Block ``i`` covers ``stream[i*seq_len : i*seq_len + seq_len + 1]``, so every token is a
    target exactly once; the incomplete tail is dropped.
    """
    n_blocks = max(0, (len(stream) - 1) // seq_len)
    starts = np.arange(n_blocks)[:, None] * seq_len
    return stream[starts + np.arange(seq_len + 1)[None, :]].astype(np.int32)


def prepare_data(
    dataset: TextDataset,
    tokenizer: Tokenizer,
    seq_len: int,
    eval_fraction: float,
    seed: int,
) -> PackedData:
    """Split ``dataset`` into train / held-out documents and pack both into blocks."""
    documents = dataset.documents()
    if not documents:
        raise DatasetError(f"dataset {dataset} is empty")
    train_docs, eval_docs = split_documents(documents, eval_fraction, seed)
    train = encode_documents(train_docs, tokenizer)
    if sum(len(doc) for doc in train) < seq_len + 1:
        raise DatasetError(
            f"dataset {dataset}: its training split is shorter than one block of "
            f"seq_len + 1 = {seq_len + 1} tokens; lower seq_len or use more data"
        )
    held_out = pack(token_stream(eval_docs, tokenizer), seq_len)
    if eval_docs and len(held_out) == 0:
        raise DatasetError(
            f"dataset {dataset}: its held-out split ({len(eval_docs)} documents) is shorter than "
            f"one block of {seq_len + 1} tokens; raise eval_fraction or lower seq_len"
        )
    return PackedData(train_documents=train, eval=held_out, seq_len=seq_len)
