"""Stage data made of tokenised preference pairs (DPO)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpm_train.data.datasets import DatasetError
from xpm_train.data.examples import ExampleData
from xpm_train.data.preferences import PreferencePair
from xpm_train.data.tokenizers import Tokenizer, encode_prompt


def encode_pairs(
    pairs: list[PreferencePair], tokenizer: Tokenizer, seq_len: int
) -> dict[str, np.ndarray]:
    """``chosen``/``rejected``: [eos] + prompt + completion + eos (see ``encode_prompt``), padded to
    ``seq_len + 1`` tokens; ``*_mask``: 1 on the target positions of the completion only
    (prompt tokens are never scored); ``weight``: 1 per real pair."""
    size = len(pairs)
    arrays = {
        "chosen": np.full((size, seq_len + 1), tokenizer.pad_id, np.int32),
        "rejected": np.full((size, seq_len + 1), tokenizer.pad_id, np.int32),
        "chosen_mask": np.zeros((size, seq_len), np.float32),
        "rejected_mask": np.zeros((size, seq_len), np.float32),
        "weight": np.ones(size, np.float32),
    }
    eos = np.array([tokenizer.eos_id], np.int32)
    for row, pair in enumerate(pairs):
        prompt = encode_prompt(tokenizer, pair.prompt)
        for side, completion in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            tokens = np.concatenate([prompt, tokenizer.encode(completion), eos])
            if len(tokens) > seq_len + 1:
                raise DatasetError(
                    f"preference pair {row} ({pair.prompt!r} -> {completion!r}) has "
                    f"{len(tokens)} tokens, more than seq_len + 1 = {seq_len + 1}; raise seq_len"
                )
            arrays[side][row, : len(tokens)] = tokens
            arrays[f"{side}_mask"][row, len(prompt) - 1 : len(tokens) - 1] = 1.0
    return arrays


class PairData(ExampleData):
    """Shuffled training pairs by step and the held-out pairs of a preference dataset."""

    what = "preference"
    token_arrays = {
        "chosen": True,
        "rejected": True,
        "chosen_mask": False,
        "rejected_mask": False,
        "weight": False,
    }
    sequences_per_example = 2

    @classmethod
    def encode(cls, examples: list[Any], tokenizer: Tokenizer, seq_len: int) -> dict[str, Any]:
        return encode_pairs(examples, tokenizer, seq_len)
