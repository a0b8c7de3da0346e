"""The xpm-train pipeline: ``experimaestro run-experiment --workdir runs yaml/full.yaml``.

pretrain -> KL stage-2 -> DPO, an evaluation of each stage's checkpoint, and a report. Each
YAML section holds one stage's own parameters; components (model, tokenizer, datasets,
optimizer, schedule, preferences) are chosen by their registered ``name``. (No
``from __future__ import annotations`` here: experimaestro 2.7.0 cannot resolve a string
annotation of ``run``'s configuration.)
"""

from typing import Any, Literal

import attrs
from experimaestro.experiments import ConfigurationBase, ExperimentHelper, configuration

from xpm_train.data.datasets import ArithmeticDataset
from xpm_train.launchers import LauncherSection, planned_launchers
from xpm_train.planning.failures import raise_on_failed_jobs
from xpm_train.planning.hook import checked_configuration, run_planning_checks
from xpm_train.planning.plan import write_plan
from xpm_train.planning.strict import ComponentSpec, component
from xpm_train.registry import build
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.dpo import DPO
from xpm_train.tasks.evaluate import Evaluate, HeldOutSplit
from xpm_train.tasks.kl_stage import KLStage
from xpm_train.tasks.pretrain import Pretrain
from xpm_train.tasks.report import Report
from xpm_train.tracking.loggers import build_logger

#: Parameters every training section passes through to its task as they are.
TRAINING_KEYS = (
    "batch_size",
    "micro_batch_size",
    "eval_interval",
    "eval_batches",
    "seed",
    "log_interval",
    "checkpoint_interval",
    "keep_checkpoints",
    "model_parallel",
    "time_limit_margin",
    "eval_fraction",
    "seq_len",
)


def _values(section: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: getattr(section, key) for key in keys if getattr(section, key) is not None}


@configuration()
class TrainingSection:
    """What every training stage's section has."""

    optimizer: ComponentSpec = component("optimizer", "adamw")
    schedule: ComponentSpec = component("schedule", "cosine")
    seq_len: int = 64
    batch_size: int = 32
    micro_batch_size: int = 32
    eval_fraction: float = 0.05
    eval_interval: int = 100
    eval_batches: int = 8
    seed: int = 0
    log_interval: int = 10
    checkpoint_interval: int = 100
    keep_checkpoints: int = 2
    model_parallel: int = 1
    time_limit_margin: float = 30.0
    """Under a time limit (SLURM), seconds kept free to stop with a checkpoint (docs/slurm.md)"""
    logger: ComponentSpec = component("logger", "none")
    """Where metrics go besides metrics.jsonl: ``{name: wandb}`` (not part of the job ids)"""

    def common(self, stage: str) -> dict[str, Any]:
        return {
            "optimizer": build("optimizer", self.optimizer, where=f"{stage}.optimizer"),
            "schedule": build("schedule", self.schedule, where=f"{stage}.schedule"),
            "logger": build_logger(self.logger, where=f"{stage}.logger"),
            **_values(self, TRAINING_KEYS),
        }


@configuration()
class PretrainSection(TrainingSection):
    model: ComponentSpec = component("model", "transformer")
    tokenizer: ComponentSpec = component("tokenizer", "bytes")
    dataset: ComponentSpec = component("dataset", "arithmetic")
    steps: int | None = None
    tokens: int | None = None

    def task(self) -> Pretrain:
        task = Pretrain.C(
            model=build("model", self.model, where="pretrain.model"),
            tokenizer=build("tokenizer", self.tokenizer, where="pretrain.tokenizer"),
            dataset=build("dataset", self.dataset, where="pretrain.dataset"),
            **self.common("pretrain"),
            **_values(self, ("steps", "tokens")),
        )
        task.check()
        return task


@configuration()
class KLSection(TrainingSection):
    dataset: ComponentSpec = component("dataset", "arithmetic")
    steps: int = 300
    beta: float = 0.1
    direction: Literal["forward", "reverse"] = "forward"

    def task(self, init: Checkpoint) -> KLStage:
        task = KLStage.C(
            init=init,
            dataset=build("dataset", self.dataset, where="kl.dataset"),
            steps=self.steps,
            beta=self.beta,
            direction=self.direction,
            **self.common("kl"),
        )
        task.check()
        return task


@configuration()
class DPOSection(TrainingSection):
    preferences: ComponentSpec = component("preferences", "arithmetic")
    steps: int = 200
    beta: float = 0.1
    label_smoothing: float = 0.0
    rpo_alpha: float = 0.0
    reference: Literal["init", "pretrain"] = "init"
    """The frozen reference: ``init`` (the KL-stage checkpoint DPO starts from) or
    ``pretrain`` (the pretrained checkpoint)"""

    def task(self, init: Checkpoint, pretrain: Pretrain, pretrained: Checkpoint) -> DPO:
        references = {"init": None, "pretrain": pretrained}
        spec = dict(self.preferences)
        if spec.get("name") == "arithmetic":
            # By default, the pretraining facts (its training split only).
            facts = spec.pop("facts", None)
            if facts is None and not isinstance(pretrain.dataset, ArithmeticDataset):
                raise ValueError(
                    "dpo.preferences: 'arithmetic' preferences are made from the pretraining "
                    "facts, but pretrain.dataset is not an arithmetic dataset; give "
                    "dpo.preferences.facts (an arithmetic dataset) or preferences from a file: "
                    "{name: jsonl, path: ...}"
                )
            spec["facts"] = (
                build("dataset", facts, where="dpo.preferences.facts")
                if facts
                else pretrain.dataset
            )
            spec.setdefault("eval_fraction", pretrain.eval_fraction)
            spec.setdefault("split_seed", pretrain.seed)
        task = DPO.C(
            init=init,
            reference=references[self.reference],
            preferences=build("preferences", spec, where="dpo.preferences"),
            steps=self.steps,
            beta=self.beta,
            label_smoothing=self.label_smoothing,
            rpo_alpha=self.rpo_alpha,
            **self.common("dpo"),
        )
        task.check()
        return task


@configuration()
class EvaluationSection:
    seq_len: int = 64
    batch_size: int = 32
    max_batches: int = 16
    max_problems: int = 500

    def task(self, checkpoint: Checkpoint, datasets: dict[str, HeldOutSplit]) -> Evaluate:
        task = Evaluate.C(
            checkpoint=checkpoint,
            datasets=datasets,
            **_values(self, ("seq_len", "batch_size", "max_batches", "max_problems")),
        )
        task.check()
        return task


@configuration()
class Configuration(ConfigurationBase):
    pretrain: PretrainSection = attrs.field(factory=PretrainSection)
    kl: KLSection = attrs.field(factory=KLSection)
    dpo: DPOSection = attrs.field(factory=DPOSection)
    evaluation: EvaluationSection = attrs.field(factory=EvaluationSection)
    launcher: LauncherSection = attrs.field(factory=LauncherSection)
    """Where each stage's jobs run: local, SLURM, or a requirement (docs/slurm.md)"""


def held_out_splits(pretrain: Pretrain, kl: KLStage) -> dict[str, HeldOutSplit]:
    """The held-out documents of each stage's training data, to evaluate every checkpoint on."""
    return {
        "stage1_data": HeldOutSplit.C(
            dataset=pretrain.dataset, eval_fraction=pretrain.eval_fraction, seed=pretrain.seed
        ),
        "stage2_data": HeldOutSplit.C(
            dataset=kl.dataset, eval_fraction=kl.eval_fraction, seed=kl.seed
        ),
    }


def check_plan(cfg: Configuration) -> None:
    """Build and check every task before anything is submitted, upstream checkpoints stood in
    for by :meth:`~xpm_train.tasks.trainer.TrainerTask.planned_output`."""
    pretrain = cfg.pretrain.task()
    pretrained = pretrain.planned_output()
    kl = cfg.kl.task(pretrained)
    kl_trained = kl.planned_output()
    dpo_trained = cfg.dpo.task(kl_trained, pretrain, pretrained).planned_output()
    for checkpoint in (pretrained, kl_trained, dpo_trained):
        cfg.evaluation.task(checkpoint, held_out_splits(pretrain, kl))


def run(helper: ExperimentHelper, cfg: Configuration) -> None:
    cfg = checked_configuration(cfg)
    run_planning_checks(lambda: check_plan(cfg))
    launchers = planned_launchers(cfg.launcher, helper.xp.run_mode)
    pretrain = cfg.pretrain.task()
    pretrained = pretrain.submit(**launchers.submit_options("pretrain"))
    kl = cfg.kl.task(pretrained)
    kl_trained = kl.submit(**launchers.submit_options("kl"))
    dpo = cfg.dpo.task(kl_trained, pretrain, pretrained)
    outputs = {
        "pretrain": pretrained,
        "kl": kl_trained,
        "dpo": dpo.submit(**launchers.submit_options("dpo")),
    }
    held_out = held_out_splits(pretrain, kl)
    evaluations = {
        stage: cfg.evaluation.task(checkpoint, held_out) for stage, checkpoint in outputs.items()
    }
    metrics = {
        stage: evaluation.submit(**launchers.submit_options("evaluation"))
        for stage, evaluation in evaluations.items()
    }
    report = Report.C(evaluations=metrics, title=cfg.title or cfg.id)
    report.submit(**launchers.submit_options("report"))
    write_plan(helper.xp, [pretrain, kl, dpo, *evaluations.values(), report])
    helper.xp.wait()
    raise_on_failed_jobs(helper.xp)
    print(f"Report: {report.report_path}", flush=True)
