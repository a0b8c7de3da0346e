"""Stage data made of packed token blocks (pretraining, continued training)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xpm_train.data.datasets import TextDataset
from xpm_train.data.loader import Batch, StepBatches, eval_batches
from xpm_train.data.packing import PackedData, prepare_data
from xpm_train.data.tokenizers import Tokenizer


@dataclass
class BlockData:
    """Shuffled training blocks by step and the held-out blocks of one dataset."""

    packed: PackedData
    batch_size: int
    seed: int
    pad_id: int
    max_eval_batches: int

    @classmethod
    def from_dataset(
        cls,
        dataset: TextDataset,
        tokenizer: Tokenizer,
        seq_len: int,
        batch_size: int,
        eval_fraction: float,
        max_eval_batches: int,
        seed: int,
    ) -> BlockData:
        packed = prepare_data(dataset, tokenizer, seq_len, eval_fraction, seed)
        return cls(packed, batch_size, seed, tokenizer.pad_id, max_eval_batches)

    @property
    def tokens_per_sample(self) -> int:
        return self.packed.seq_len

    def train_batches(self, accum_steps: int) -> StepBatches:
        def blocks(epoch: int) -> dict[str, np.ndarray]:
            return _with_mask(self.packed.train_blocks(epoch, self.seed))

        return StepBatches(blocks, self.batch_size, accum_steps, self.seed)

    def eval_batches(self, batch_size: int) -> list[Batch]:
        pad = {"tokens": self.pad_id, "mask": 0.0}
        return eval_batches(_with_mask(self.packed.eval), batch_size, self.max_eval_batches, pad)


def _with_mask(blocks: np.ndarray) -> dict[str, np.ndarray]:
    """Blocks and their target mask (all targets of packed blocks count)."""
    return {"tokens": blocks, "mask": np.ones(blocks[:, 1:].shape, dtype=np.float32)}
