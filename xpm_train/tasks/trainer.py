"""What every training stage shares: optimisation parameters, the loop, the checkpoint output.

A stage subclass adds its own typed parameters (data, objective settings) and says how to
build its :class:`~xpm_train.training.loop.Stage`; nothing here is ignored by any stage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from experimaestro import Meta, Param, PathGenerator, ResumableTask, field

from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.optim.optimizers import Optimizer
from xpm_train.optim.schedules import Schedule
from xpm_train.tasks.checkpoint import Checkpoint, CheckpointValues
from xpm_train.tasks.job_environment import JobEnvironment
from xpm_train.tasks.progress import report_progress
from xpm_train.tracking.loggers import MetricsLogger

if TYPE_CHECKING:
    from xpm_train.training.loop import Stage, StageData


class StageDataSource(Protocol):
    """A stage data class built from a dataset (BlockData, PairData)."""

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        tokenizer: Tokenizer,
        seq_len: int,
        batch_size: int,
        eval_fraction: float,
        max_eval_batches: int,
        seed: int,
    ) -> StageData: ...


class ConfigError(ValueError):
    """Inconsistent task parameters, found before the job is submitted."""


def check_errors(*checks: Callable[[], Any]) -> list[str]:
    """The messages of the ValueErrors raised by ``checks``."""
    errors = []
    for check in checks:
        try:
            check()
        except ValueError as error:
            errors.append(str(error))
    return errors


class TrainerTask(JobEnvironment, ResumableTask):
    """Base of the training stages. Resumable: a job killed or timed out restarts from its
    latest checkpoint and ends with the parameters of an uninterrupted run."""

    stage_name: ClassVar[str] = "trainer"

    optimizer: Param[Optimizer]
    schedule: Param[Schedule]
    batch_size: Param[int]
    """Examples per optimizer step (global batch)"""
    micro_batch_size: Param[int]
    """Examples per device in one forward/backward pass (gradients accumulate over the rest)"""
    seq_len: Param[int]
    """Tokens per training sequence (for preference pairs: prompt + completion)"""
    eval_fraction: Param[float] = field(default=0.05)
    """Fraction of the data held out for evaluation"""
    eval_interval: Param[int] = field(default=100)
    eval_batches: Param[int] = field(default=8)
    """At most this many held-out batches per evaluation"""
    seed: Param[int] = field(default=0)

    log_interval: Meta[int] = field(default=10)
    checkpoint_interval: Meta[int] = field(default=100)
    keep_checkpoints: Meta[int] = field(default=2)
    """Checkpoints kept (the latest ones; the final one is always among them)"""
    model_parallel: Meta[int] = field(default=1)
    prefetch: Meta[int] = field(default=2)
    time_limit_margin: Meta[float] = field(default=30.0)
    """Under a time limit (SLURM), stop with a checkpoint when fewer seconds than this (plus two
    steps and one checkpoint) are left; experimaestro then resubmits the job, which resumes"""
    logger: Meta[MetricsLogger | None]
    """Where metrics go besides metrics.jsonl (e.g. wandb); not part of the job's identity"""

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    metrics_path: Meta[Path] = field(default_factory=PathGenerator("metrics.jsonl"))
    result_path: Meta[Path] = field(default_factory=PathGenerator("result.json"))

    def total_steps(self) -> int:
        raise NotImplementedError

    def model_and_tokenizer(self) -> tuple[ModelConfig, Tokenizer]:
        """The configuration of the trained model and its tokenizer."""
        raise NotImplementedError

    def stage_errors(self) -> list[str]:
        """Problems with the stage's own parameters (cross-field checks)."""
        return []

    def training_data(self) -> Any:
        """The dataset Config the stage trains on."""
        raise NotImplementedError

    def data_loader(self) -> type[StageDataSource]:
        """The class turning ``training_data()`` into batches (BlockData, PairData)."""
        raise NotImplementedError

    def stage_data(self) -> StageData:
        """Training and held-out batches of ``training_data()`` (in the job process)."""
        return self.data_loader().from_dataset(
            self.training_data(),
            self.model_and_tokenizer()[1],
            self.seq_len,
            self.batch_size,
            self.eval_fraction,
            self.eval_batches,
            self.seed,
        )

    def build_stage(self) -> Stage:
        """The stage's model, objective and data (in the job process)."""
        raise NotImplementedError

    def check(self) -> None:
        """Cross-field checks that experimaestro cannot do; call before submitting."""
        errors = []
        try:
            total = self.total_steps()
        except ConfigError as error:
            raise ConfigError(f"{self.stage_name}: {error}") from None
        for key in (
            "batch_size",
            "micro_batch_size",
            "eval_interval",
            "log_interval",
            "checkpoint_interval",
        ):
            if getattr(self, key) < 1:
                errors.append(f"{key}={getattr(self, key)} must be >= 1")
        if total < 1:
            errors.append(f"the run has {total} steps; it needs at least 1")
        if self.micro_batch_size > 0 and self.batch_size % self.micro_batch_size:
            errors.append(
                f"batch_size={self.batch_size} is not divisible by "
                f"micro_batch_size={self.micro_batch_size}"
            )
        errors += check_errors(lambda: self.schedule.check(total))
        errors += self.stage_errors()
        if errors:
            raise ConfigError(f"{self.stage_name}: " + "; ".join(errors))

    def checkpoint_output(self) -> Checkpoint:
        model, tokenizer = self.model_and_tokenizer()
        return Checkpoint.C(
            model=model,
            tokenizer=tokenizer,
            path=self.checkpoints,
            step=self.total_steps(),
            metrics=self.metrics_path,
        )

    def planned_output(self) -> Checkpoint:
        """A stand-in for the checkpoint this task will write, with no paths: lets the stages
        that take it run their planning checks before anything is submitted."""
        model, tokenizer = self.model_and_tokenizer()
        return Checkpoint.C(
            model=model, tokenizer=tokenizer, path=Path(), step=self.total_steps(), metrics=None
        )

    def checkpoint_values(self) -> CheckpointValues:
        """The final checkpoint of this (finished) job, e.g. reloaded from its folder."""
        model, tokenizer = self.model_and_tokenizer()
        return CheckpointValues(
            model, tokenizer, Path(self.checkpoints), self.total_steps(), Path(self.metrics_path)
        )

    def task_outputs(self, dep: Any) -> Checkpoint:
        return dep(self.checkpoint_output())

    def execute(self) -> None:
        from xpm_train.training.runtime import configure_job

        print(configure_job(Path(self.checkpoints).parent).describe(), flush=True)
        from xpm_train.tracking.session import training_session
        from xpm_train.training.loop import LoopSettings, RunPaths, train
        from xpm_train.training.time_limit import TimeLimit

        self.check()
        settings = LoopSettings(
            total_steps=self.total_steps(),
            batch_size=self.batch_size,
            micro_batch_size=self.micro_batch_size,
            seed=self.seed,
            eval_interval=self.eval_interval,
            log_interval=self.log_interval,
            checkpoint_interval=self.checkpoint_interval,
            keep_checkpoints=self.keep_checkpoints,
            model_parallel=self.model_parallel,
            prefetch=self.prefetch,
        )
        paths = RunPaths(self.checkpoints, self.metrics_path, self.result_path)
        with training_session(self.stage_name, self.metrics_path, self.logger) as session:
            result = train(
                self.build_stage(),
                settings,
                paths,
                on_progress=report_progress,
                on_metrics=session.log,
                time_limit=TimeLimit(self.remaining_time, self.time_limit_margin),
            )
            print(session.finish(result), flush=True)
