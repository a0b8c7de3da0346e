"""Prompt/completion datasets and their stage data (supervised fine-tuning, SFT).

A dataset is a deterministic list of (prompt, completion) pairs; :class:`CompletionData` turns
it into next-token-prediction batches whose mask scores the completion tokens only, so that the
model learns to answer the prompts and not to write them (TRL's completion-only loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from experimaestro import Config, Param, field

from xpm_train.data.datasets import (
    ArithmeticDataset,
    DatasetError,
    read_jsonl,
    readable_at_planning,
)
from xpm_train.data.examples import ExampleData
from xpm_train.data.files import LocalFiles
from xpm_train.data.packing import split_documents
from xpm_train.data.tokenizers import Tokenizer, encode_prompt
from xpm_train.registry import register
from xpm_train.validation import validate


@dataclass(frozen=True)
class Completion:
    prompt: str
    completion: str


class CompletionDataset(Config):
    """Base class: a deterministic list of (prompt, completion) pairs."""

    def pairs(self) -> list[Completion]:
        raise NotImplementedError

    def __validate__(self) -> None:
        """Cheap checks run at planning time."""


@register("completions", "arithmetic")
class ArithmeticCompletions(CompletionDataset):
    """Arithmetic facts as prompt ``17+25=`` and completion ``42``.

    Only the facts of the training split of ``facts`` (same ``eval_fraction`` and
    ``split_seed`` as the stage that trains on them) are used, so its held-out facts stay
    unseen; in YAML, ``facts: pretrain`` sets all three from that stage.
    """

    facts: Param[ArithmeticDataset]
    """The arithmetic facts; given a stage's name, the facts it holds out are left out"""
    eval_fraction: Param[float] = field(default=0.05)
    """The facts' stage's eval_fraction: its held-out facts are excluded"""
    split_seed: Param[int] = field(default=0)
    """The facts' stage's seed"""

    def __validate__(self) -> None:
        validate(self.facts)
        if not 0.0 <= self.eval_fraction < 1.0:
            raise DatasetError(
                f"arithmetic completions: eval_fraction={self.eval_fraction} must be in [0, 1)"
            )

    def pairs(self) -> list[Completion]:
        validate(self)
        train, _ = split_documents(self.facts.problems(), self.eval_fraction, self.split_seed)
        return [Completion(prompt, answer) for prompt, answer in train]


@register("completions", "jsonl")
class JsonlCompletions(LocalFiles, CompletionDataset):
    """A JSON-lines file of records with a prompt and its completion."""

    prompt_field: Param[str] = field(default="prompt")
    """The record's key holding the prompt (context, not scored)"""
    completion_field: Param[str] = field(default="completion")
    """The record's key holding the completion (scored)"""

    def __validate__(self) -> None:
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DatasetError(f"jsonl completions: file {self.path!r} does not exist")
        if readable_at_planning(path):
            self.pairs()

    def pairs(self) -> list[Completion]:
        fields = (self.prompt_field, self.completion_field)
        rows = read_jsonl(Path(self.path).expanduser(), fields, "completion")
        return [Completion(*row) for row in rows]


def encode_completions(
    examples: list[Completion], tokenizer: Tokenizer, seq_len: int
) -> dict[str, np.ndarray]:
    """``tokens``: [eos] + prompt + completion + eos (see ``encode_prompt``), padded to
    ``seq_len + 1``; ``mask``: 1 on the target positions of the completion and its final eos
    only (as ``encode_pairs``), so padded rows and prompt tokens are never scored."""
    tokens = np.full((len(examples), seq_len + 1), tokenizer.pad_id, np.int32)
    mask = np.zeros((len(examples), seq_len), np.float32)
    eos = np.array([tokenizer.eos_id], np.int32)
    for row, example in enumerate(examples):
        prompt = encode_prompt(tokenizer, example.prompt)
        encoded = np.concatenate([prompt, tokenizer.encode(example.completion), eos])
        if len(encoded) > seq_len + 1:
            raise DatasetError(
                f"completion example {row} (from 0: {example.prompt!r} -> {example.completion!r})"
                f" has {len(encoded)} tokens, more than seq_len + 1 = {seq_len + 1}; raise seq_len"
            )
        tokens[row, : len(encoded)] = encoded
        mask[row, len(prompt) - 1 : len(encoded) - 1] = 1.0
    return {"tokens": tokens, "mask": mask}


class CompletionData(ExampleData):
    """Shuffled training examples by step and the held-out examples of a completion dataset.

    Batches carry ``tokens`` and ``mask`` like :class:`~xpm_train.data.blocks.BlockData`'s, so
    ``NextTokenPrediction`` trains on them unchanged; its weight is the number of scored
    (completion) tokens, and a padded example scores none.
    """

    what = "completion"
    token_arrays = {"tokens": True, "mask": False}

    @classmethod
    def encode(cls, examples: list[Any], tokenizer: Tokenizer, seq_len: int) -> dict[str, Any]:
        return encode_completions(examples, tokenizer, seq_len)
