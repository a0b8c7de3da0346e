import numpy as np
import pytest

from xpm_train.data.datasets import DatasetError, TextDataset
from xpm_train.data.packing import pack, prepare_data, split_documents, token_stream
from xpm_train.data.tokenizers import ByteTokenizer

from .support.tiny import tiny_components


def test_pack_makes_every_token_a_target_exactly_once():
    stream = np.arange(23, dtype=np.int32)
    blocks = pack(stream, seq_len=5)
    assert blocks.shape == (4, 6)
    targets = blocks[:, 1:].reshape(-1)
    np.testing.assert_array_equal(targets, np.arange(1, 21))
    np.testing.assert_array_equal(blocks[:, :-1].reshape(-1), np.arange(20))


def test_token_stream_separates_documents_with_eos():
    tokenizer = ByteTokenizer.C().instance()
    stream = token_stream(["ab", "c"], tokenizer)
    assert stream.tolist() == [97, 98, tokenizer.eos_id, 99, tokenizer.eos_id]


def test_split_is_deterministic_by_seed_and_disjoint():
    docs = [f"doc{i}" for i in range(100)]
    train, held_out = split_documents(docs, 0.1, seed=3)
    assert (train, held_out) == split_documents(docs, 0.1, seed=3)
    assert len(held_out) == 10 and not set(train) & set(held_out)
    assert split_documents(docs, 0.1, seed=4)[1] != held_out


def test_prepare_data_and_too_short_dataset():
    parts = tiny_components()
    dataset, tokenizer = parts["dataset"], parts["tokenizer"]
    data = prepare_data(dataset, tokenizer, seq_len=16, eval_fraction=0.1, seed=0)
    first, second = data.train_blocks(0, seed=0), data.train_blocks(1, seed=0)
    assert first.shape == second.shape and first.shape[1] == 17 and data.eval.shape[1] == 17
    assert len(first) > 5 * len(data.eval) > 0
    np.testing.assert_array_equal(first, data.train_blocks(0, seed=0))
    assert not np.array_equal(first, second)  # documents are reordered every epoch
    tokens = sum(len(doc) for doc in data.train_documents)
    assert len(first) == (tokens - 1) // 16
    with pytest.raises(DatasetError, match="shorter than one block"):
        prepare_data(dataset, tokenizer, seq_len=100_000, eval_fraction=0.1, seed=0)


class _Empty(TextDataset):
    def documents(self) -> list[str]:
        return []


def test_empty_dataset_is_an_error():
    with pytest.raises(DatasetError, match="is empty"):
        prepare_data(_Empty.C().instance(), ByteTokenizer.C().instance(), 8, 0.1, 0)
