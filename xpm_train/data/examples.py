"""Stage data made of encoded examples (preference pairs, prompt/completion pairs): the
training examples shuffled by step and the held-out ones in fixed-size batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from xpm_train.data.loader import Batch, StepBatches, eval_batches


@dataclass
class ExampleData:
    """Arrays of encoded examples (one row each) split into training and held-out parts.

    A subclass says how a dataset is encoded (``from_dataset``), how many tokens an example
    trains on, and the value that pads each array in the last held-out batch (``pad_id``
    for token arrays, 0 for masks and weights, which then count for nothing).
    """

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

    @property
    def tokens_per_sample(self) -> int:
        return self.sequences_per_example * self.seq_len

    def train_batches(self, accum_steps: int) -> Callable[[int], Batch]:
        return StepBatches(self.train, self.batch_size, accum_steps, self.seed)

    def eval_batches(self, batch_size: int) -> list[Batch]:
        if len(next(iter(self.eval.values()))) == 0:
            return []
        pad = {key: self.pad_id if tokens else 0.0 for key, tokens in self.token_arrays.items()}
        return eval_batches(self.eval, batch_size, self.max_eval_batches, pad)
