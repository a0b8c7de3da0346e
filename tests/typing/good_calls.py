"""Correct ``.C(...)`` calls: pyright (with the stubs in typings/) must report nothing here.

Checked by tests/test_typing.py, which also runs :func:`build_all` to make sure that
experimaestro accepts these calls too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from experimaestro import Config, Meta, Param, PathGenerator, Task, field

from xpm_train.data.datasets import ArithmeticDataset, JsonlText
from xpm_train.data.preferences import ArithmeticPreferences
from xpm_train.data.tokenizers import ByteTokenizer
from xpm_train.models.config import TransformerConfig
from xpm_train.optim.optimizers import AdamW
from xpm_train.optim.schedules import Cosine, WarmupStableDecay, WarmupStableDecayStable
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.dpo import DPO
from xpm_train.tasks.evaluate import Evaluate, HeldOutSplit
from xpm_train.tasks.kl_stage import KLStage
from xpm_train.tasks.pretrain import Pretrain
from xpm_train.tasks.report import Report


class Base(Task):
    """A task of the experiment's own, with the experimaestro field kinds."""

    size: Param[int] = field(default=1)
    label: Param[str | None] = field(default=None)
    verbose: Meta[bool] = field(default=False)
    output: Meta[Path] = field(default_factory=PathGenerator("output.txt"))


class Derived(Base):
    """A required Param declared after inherited Params with defaults."""

    rate: Param[float]
    schedule: Param[Cosine] = field(default_factory=Cosine.C)

    def task_outputs(self, dep: Callable[[Config], Any]) -> Cosine:
        """What ``submit()`` returns (the stubs type it so)."""
        return dep(self.schedule)


def build_all() -> list[Config]:
    """One configuration object per call style; returns them (the test builds them)."""
    model = TransformerConfig.C(d_model=64, n_layers=2, n_heads=4, max_seq_len=64)
    tokenizer = ByteTokenizer.C()
    facts = ArithmeticDataset.C(n_examples=100, max_operand=9, operations=["+", "-"])
    checkpoint = Checkpoint.C(
        model=model, tokenizer=tokenizer, path=Path("checkpoints"), step=10, metrics=None
    )
    pretrain = Pretrain.C(
        model=model,
        tokenizer=tokenizer,
        dataset=facts,
        optimizer=AdamW.C(weight_decay=0.0, clip_norm=0.5),
        schedule=WarmupStableDecay.C(lr=3e-3, decay_fraction=0.1),
        batch_size=16,
        micro_batch_size=8,
        seq_len=32,
        steps=10,
        tokens=None,
        logger=None,
        log_interval=5,
    )
    kl = KLStage.C(
        init=checkpoint,
        reference=None,
        dataset=JsonlText.C(path="data.jsonl", text_field="body"),
        beta=0.5,
        steps=5,
        logger=None,
    )
    dpo = DPO.C(
        init=checkpoint,
        reference=checkpoint,
        preferences=ArithmeticPreferences.C(facts=facts, max_offset=3),
        beta=0.2,
        steps=10,
        label_smoothing=0.1,
        schedule=WarmupStableDecayStable.C(tail_fraction=0.25),
        logger=None,
    )
    evaluate = Evaluate.C(
        checkpoint=checkpoint,
        datasets={"facts": HeldOutSplit.C(dataset=facts, eval_fraction=0.1)},
        seq_len=32,
    )
    own = Derived.C(rate=0.5, size=2, verbose=True)
    return [model, pretrain, kl, dpo, evaluate, own, Cosine.C(lr=1e-3).tag("lr", 1e-3)]


def submit_all(pretrain: Pretrain, evaluate: Evaluate) -> Report:
    """Submitting (checked only: it needs an experiment): a task takes submitted tasks."""
    pretrained: Checkpoint = pretrain.submit(launcher=None)
    report = Report.C(evaluations={"pretrain": evaluate.submit()}, title=str(pretrained.path))
    report.submit(max_retries=2)
    schedule: Cosine = Derived.C(rate=0.5).submit()
    report.tag("lr", schedule.lr)
    return report


def attributes(dpo: DPO, own: Derived) -> tuple[float, int, Path, float]:
    """Parameters read back have the declared types (Param[float] is a float, ...)."""
    return dpo.beta, dpo.batch_size, own.output, own.schedule.lr
