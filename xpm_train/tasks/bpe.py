"""Training a byte-level BPE tokenizer on a text dataset (the ``tokenizers`` library)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experimaestro import Meta, Param, PathGenerator, Task, field

from xpm_train.data.datasets import TextDataset
from xpm_train.data.hf_tokenizer import EOS_TOKEN, PAD_TOKEN, TrainedBPE
from xpm_train.export.tokenizer import write_hf_files
from xpm_train.registry import register
from xpm_train.tasks.versioned import Versioned
from xpm_train.training.processes import other_process
from xpm_train.validation import ConfigError, Problems, validate

SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
#: The ids every byte-level BPE holds before any merge: the 256 bytes and the special tokens.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def train_bpe(documents: list[str], vocab_size: int, min_frequency: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``documents``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


@register("stage", "bpe")
class TrainBPE(Versioned, Task):
    """Train a byte-level BPE tokenizer on a dataset's documents; its output is a
    :class:`~xpm_train.data.hf_tokenizer.TrainedBPE` that training stages take as tokenizer."""

    dataset: Param[TextDataset]
    """The text the merges are learned from"""
    vocab_size: Param[int] = field(default=1024)
    """Vocabulary size, special tokens and the 256 bytes included (the embedding size)"""
    min_frequency: Param[int] = field(default=2)
    """A pair of tokens seen fewer times is never merged"""
    tokenizer_path: Meta[Path] = field(default_factory=PathGenerator("tokenizer.json"))
    """Where the job writes tokenizer.json (its tokenizer_config.json lies beside it)"""

    def __validate__(self) -> None:
        problems = Problems()
        if self.vocab_size < MIN_VOCAB_SIZE:
            problems.add(
                "vocab_size",
                f"{self.vocab_size} is below {MIN_VOCAB_SIZE} (the 256 bytes and the special "
                f"tokens {', '.join(SPECIAL_TOKENS)})",
            )
        if self.min_frequency < 1:
            problems.add("min_frequency", f"{self.min_frequency} must be >= 1")
        problems.validate("dataset", self.dataset)
        problems.raise_any()

    def output(self, path: Path) -> TrainedBPE:
        return TrainedBPE.C(path=path, vocab_size=self.vocab_size)

    def planned_output(self) -> TrainedBPE:
        """A stand-in for the tokenizer this task will write, with no path: lets the stages
        that take it be validated before anything is submitted."""
        return self.output(Path())

    def task_outputs(self, dep: Any) -> TrainedBPE:
        return dep(self.output(self.tokenizer_path))

    def execute(self) -> None:
        """Train on the dataset; write tokenizer.json and the tokenizer_config.json beside it."""
        self.record_code()
        if other_process():  # started once per SLURM task: the work is done once
            return
        validate(self)
        path = Path(self.tokenizer_path)
        documents = self.dataset.documents()
        tokenizer = train_bpe(documents, self.vocab_size, self.min_frequency)
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        if size > self.vocab_size:
            raise ConfigError(
                [("vocab_size", f"the trained tokenizer has {size} > {self.vocab_size} ids")]
            )
        write_hf_files(tokenizer, path, {"bos": None, "eos": EOS_TOKEN, "pad": PAD_TOKEN})
        print(
            f"trained a byte-level BPE of {size} tokens (of {self.vocab_size}) on "
            f"{len(documents)} documents: {path}",
            flush=True,
        )
