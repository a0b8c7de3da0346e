"""Misused ``.C(...)`` calls: pyright must report exactly one error on each line whose comment
starts with ``expected:`` followed by a part of the message, and none elsewhere
(tests/test_typing.py).

Never run: every call here is wrong.
"""

from __future__ import annotations

from pathlib import Path

from experimaestro import Meta, Param, PathGenerator, Task, field

from xpm_train.data.datasets import ArithmeticDataset
from xpm_train.data.preferences import ArithmeticPreferences
from xpm_train.models.config import TransformerConfig
from xpm_train.optim.optimizers import AdamW
from xpm_train.optim.schedules import Cosine, WarmupStableDecay
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.dpo import DPO
from xpm_train.tasks.evaluate import Evaluate, HeldOutSplit
from xpm_train.tasks.pretrain import Pretrain
from xpm_train.tasks.report import Report


class Base(Task):
    size: Param[int] = field(default=1)
    output: Meta[Path] = field(default_factory=PathGenerator("output.txt"))


class Derived(Base):
    rate: Param[float]


def misuses(checkpoint: Checkpoint, facts: ArithmeticDataset) -> None:
    preferences = ArithmeticPreferences.C(facts=facts)
    DPO.C(
        init=checkpoint,
        reference=None,
        preferences=preferences,
        logger=None,
        beta="high",  # expected: "Literal['high']" cannot be assigned to parameter "beta"
    )
    DPO.C(
        init=checkpoint,
        reference=None,
        preferences=preferences,
        logger=None,
        plot_tensors=True,  # expected: No parameter named "plot_tensors"
    )
    DPO.C(
        init=checkpoint,
        reference=None,
        preferences=preferences,
        logger=None,
        batch_size=32.0,  # expected: "float" cannot be assigned to parameter "batch_size"
    )
    DPO.C(
        init=checkpoint,
        reference=None,
        preferences=facts,  # expected: cannot be assigned to parameter "preferences"
        logger=None,
    )
    Pretrain.C(
        dataset=facts,
        steps="10",  # expected: cannot be assigned to parameter "steps"
        tokens=None,
        logger=None,
    )
    Pretrain.C(
        dataset=facts,
        steps=10,
        tokens=None,
        logger=None,
        schedule=AdamW.C(),  # expected: "AdamW" cannot be assigned to parameter "schedule"
    )
    Cosine.C(learning_rate=1e-3)  # expected: No parameter named "learning_rate"
    Cosine.C(1e-3)  # expected: Expected 0 positional arguments
    WarmupStableDecay.C(decay_fraction="0.2")  # expected: parameter "decay_fraction"
    TransformerConfig.C(d_model=128.5)  # expected: parameter "d_model"
    ArithmeticDataset.C(operations="+")  # expected: parameter "operations"
    HeldOutSplit.C(seed=1)  # expected: Argument missing for parameter "dataset"
    Evaluate.C(
        checkpoint=checkpoint,
        datasets={},
        metrics_path=Path("metrics.json"),  # expected: No parameter named "metrics_path"
    )
    Report.C(evaluations={}, title=3)  # expected: "Literal[3]" cannot be assigned to parameter
    Derived.C(size=2)  # expected: Argument missing for parameter "rate"
    Derived.C(rate=0.5, size="2")  # expected: cannot be assigned to parameter "size"
    Derived.C(rate=0.5, output=Path("o"))  # expected: No parameter named "output"
