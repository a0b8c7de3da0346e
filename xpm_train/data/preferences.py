"""Preference datasets: (prompt, chosen, rejected) triples for DPO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from experimaestro import Config, Param, field

from xpm_train.data.datasets import (
    ArithmeticDataset,
    DatasetError,
    read_jsonl,
    readable_at_planning,
)
from xpm_train.data.files import LocalFiles
from xpm_train.data.packing import split_documents
from xpm_train.registry import register
from xpm_train.validation import validate


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


class PreferenceDataset(Config):
    """Base class: a deterministic list of preference pairs."""

    def pairs(self) -> list[PreferencePair]:
        raise NotImplementedError

    def __validate__(self) -> None:
        """Cheap checks run at planning time."""


@register("preferences", "arithmetic")
class ArithmeticPreferences(PreferenceDataset):
    """The correct answer of an arithmetic fact preferred over a wrong one close to it.

    Only the facts of the training split of ``facts`` (same ``eval_fraction`` and
    ``split_seed`` as the pretraining task) are used, so the held-out facts stay unseen.
    """

    facts: Param[ArithmeticDataset]
    eval_fraction: Param[float] = field(default=0.05)
    """The pretraining task's eval_fraction: its held-out facts are excluded"""
    split_seed: Param[int] = field(default=0)
    """The pretraining task's seed"""
    max_offset: Param[int] = field(default=9)
    """A rejected answer is the correct one plus or minus 1..max_offset"""
    seed: Param[int] = field(default=0)

    def __validate__(self) -> None:
        validate(self.facts)
        if self.max_offset < 1:
            raise DatasetError(f"arithmetic preferences: max_offset={self.max_offset} must be >= 1")

    def pairs(self) -> list[PreferencePair]:
        validate(self)
        problems, _ = split_documents(self.facts.problems(), self.eval_fraction, self.split_seed)
        rng = np.random.default_rng(self.seed)
        offsets = rng.integers(1, self.max_offset + 1, len(problems))
        signs = rng.choice([-1, 1], len(problems))
        pairs = []
        for (prompt, answer), offset, sign in zip(problems, offsets, signs, strict=True):
            wrong = int(answer) + int(sign * offset)
            if wrong < 0 <= int(answer):
                wrong = int(answer) + int(offset)
            pairs.append(PreferencePair(prompt, answer, str(wrong)))
        return pairs


@register("preferences", "jsonl")
class JsonlPreferences(LocalFiles, PreferenceDataset):
    """A JSON-lines file of records with a prompt, a chosen and a rejected completion."""

    prompt_field: Param[str] = field(default="prompt")
    chosen_field: Param[str] = field(default="chosen")
    rejected_field: Param[str] = field(default="rejected")

    def __validate__(self) -> None:
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DatasetError(f"jsonl preferences: file {self.path!r} does not exist")
        if readable_at_planning(path):
            self.pairs()

    def pairs(self) -> list[PreferencePair]:
        fields = (self.prompt_field, self.chosen_field, self.rejected_field)
        rows = read_jsonl(Path(self.path).expanduser(), fields, "preference")
        return [PreferencePair(*row) for row in rows]
