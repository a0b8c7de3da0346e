"""Stage data made of encoded examples (preference pairs, prompt/completion pairs): the
training examples shuffled by step and the held-out ones in fixed-size batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xpm_train.data.datasets import DatasetError
from xpm_train.data.loader import Batch, StepBatches, eval_batches
from xpm_train.data.packing import split_documents
from xpm_train.data.tokenizers import Tokenizer


@dataclass
class ExampleData:
    """Arrays of encoded examples (one row each) split into training and held-out parts.

    A subclass says how a dataset's examples are encoded (``encode``), how many sequences an
    example holds, and which arrays hold tokens: the last held-out batch is padded with
    ``pad_id`` there, with 0 in masks and weights (which then count for nothing).
    """

    #: What the examples are, in error messages.
    what: ClassVar[str] = "example"

    #: Array name -> whether it holds token ids (padded with ``pad_id``) or not (0).
    token_arrays: ClassVar[dict[str, bool]] = {}
    #: Sequences of ``seq_len`` tokens in one example.
    sequences_per_example: ClassVar[int] = 1

    train: dict[str, np.ndarray]
    eval: dict[str, np.ndarray]
    batch_size: int
    seed: int
    pad_id: int
    max_eval_batches: int
    seq_len: int

    @classmethod
    def encode(cls, examples: list[Any], tokenizer: Tokenizer, seq_len: int) -> dict[str, Any]:
        """The arrays of ``examples``, one row each."""
        raise NotImplementedError

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        tokenizer: Tokenizer,
        seq_len: int,
        batch_size: int,
        eval_fraction: float,
        max_eval_batches: int,
        seed: int,
    ) -> Any:
        """The dataset's examples (``dataset.pairs()``), encoded, split into training and
        held-out parts. Encoded before the split, so that an error names the example's place
        in the dataset; the split depends only on the count and the seed."""
        examples = dataset.pairs()
        if not examples:
            raise DatasetError(f"{cls.what} dataset {dataset} is empty")
        encoded = cls.encode(examples, tokenizer, seq_len)
        train, held_out = split_documents(list(range(len(examples))), eval_fraction, seed)
        return cls(
            {key: array[train] for key, array in encoded.items()},
            {key: array[held_out] for key, array in encoded.items()},
            batch_size,
            seed,
            tokenizer.pad_id,
            max_eval_batches,
            seq_len,
        )

    @property
    def tokens_per_sample(self) -> int:
        return self.sequences_per_example * self.seq_len

    def train_batches(self, accum_steps: int) -> StepBatches:
        return StepBatches(self.train, self.batch_size, accum_steps, self.seed)

    def eval_batches(self, batch_size: int) -> list[Batch]:
        if len(next(iter(self.eval.values()))) == 0:
            return []
        pad = {key: self.pad_id if tokens else 0.0 for key, tokens in self.token_arrays.items()}
        return eval_batches(self.eval, batch_size, self.max_eval_batches, pad)
