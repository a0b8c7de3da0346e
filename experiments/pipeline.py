"""The xpm-train experiment: ``experimaestro run-experiment --workdir runs yaml/full.yaml``.

Each YAML section describes one stage; components (model, tokenizer, dataset, optimizer,
schedule) are chosen by their registered ``name``.
"""

from typing import Any

import attrs
from experimaestro.experiments import ConfigurationBase, ExperimentHelper, configuration

from xpm_train.registry import build
from xpm_train.tasks.pretrain import Pretrain


@configuration()
class PretrainSection:
    """Parameters of the Pretrain task; components are ``{name: ..., <params>}`` mappings."""

    model: dict[str, Any] = attrs.field(factory=lambda: {"name": "transformer"})
    tokenizer: dict[str, Any] = attrs.field(factory=lambda: {"name": "bytes"})
    dataset: dict[str, Any] = attrs.field(factory=lambda: {"name": "arithmetic"})
    optimizer: dict[str, Any] = attrs.field(factory=lambda: {"name": "adamw"})
    schedule: dict[str, Any] = attrs.field(factory=lambda: {"name": "cosine"})
    seq_len: int = 64
    batch_size: int = 32
    micro_batch_size: int = 32
    steps: int | None = None
    tokens: int | None = None
    eval_fraction: float = 0.05
    eval_interval: int = 100
    eval_batches: int = 8
    seed: int = 0
    log_interval: int = 10
    checkpoint_interval: int = 100
    keep_checkpoints: int = 2
    model_parallel: int = 1

    def task(self) -> Pretrain:
        """The Pretrain task configuration, checked before anything is submitted."""
        components = {
            kind: build(kind, getattr(self, kind), where=f"pretrain.{kind}")
            for kind in ("model", "tokenizer", "dataset", "optimizer", "schedule")
        }
        scalars = {
            key: getattr(self, key)
            for key in (
                "seq_len",
                "batch_size",
                "micro_batch_size",
                "eval_fraction",
                "eval_interval",
                "eval_batches",
                "seed",
                "log_interval",
                "checkpoint_interval",
                "keep_checkpoints",
                "model_parallel",
            )
        }
        budget = {
            key: getattr(self, key) for key in ("steps", "tokens") if getattr(self, key) is not None
        }
        task = Pretrain.C(**components, **scalars, **budget)
        task.check()
        return task


@configuration()
class Configuration(ConfigurationBase):
    pretrain: PretrainSection = attrs.field(factory=PretrainSection)


def run(helper: ExperimentHelper, cfg: Configuration) -> None:
    checkpoint = cfg.pretrain.task().submit()
    helper.xp.wait()
    print(f"Pretrained model: {checkpoint.path}/{checkpoint.step}", flush=True)
