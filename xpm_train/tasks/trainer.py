"""What every training stage shares: optimisation parameters, the loop, the checkpoint output.

A stage is one module of this package: a subclass registered with
``@register("stage", "<kind>")`` that adds its own typed parameters (data, objective settings),
its key metrics, and how to build its :class:`~xpm_train.training.loop.Stage`. The YAML
``stages:`` section, the plan, the report and the monitor read everything else from the class
(docs/adding-a-stage.md). Nothing declared here is ignored by any stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from experimaestro import Meta, Param, PathGenerator, ResumableTask, field

from xpm_train.data.tokenizers import Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.optim.optimizers import AdamW, Optimizer
from xpm_train.optim.schedules import Cosine, Schedule
from xpm_train.tasks.checkpoint import Checkpoint, CheckpointValues
from xpm_train.tasks.job_environment import JobEnvironment
from xpm_train.tasks.progress import report_progress
from xpm_train.tasks.versioned import Versioned
from xpm_train.tracking.loggers import MetricsLogger
from xpm_train.training.budget import epoch_steps
from xpm_train.training.preemption import Preempted, StoppedBySignal
from xpm_train.training.result import BEST_MODES
from xpm_train.training.time_limit import DEFAULT_MARGIN_S, TimeLimitReached
from xpm_train.validation import ConfigError, Problems

if TYPE_CHECKING:
    from xpm_train.training.stage import LoopSettings, Stage, StageData


class StageDataSource(Protocol):
    """A stage data class built from a dataset (BlockData, PairData, CompletionData)."""

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


#: The loop settings that are not a task parameter of the same name.
_COMPUTED_SETTINGS = ("total_steps",)
#: How a training job stops before its end, with a checkpoint to resume from.
EARLY_STOPS = (TimeLimitReached, Preempted, StoppedBySignal)


class TrainerTask(Versioned, JobEnvironment, ResumableTask):
    """Base of the training stages. Resumable: a job killed or timed out restarts from its
    latest checkpoint and ends with the parameters of an uninterrupted run."""

    #: Metrics of this stage shown next to the loss (report, plots, monitor, job summary).
    key_metrics: ClassVar[tuple[str, ...]] = ()
    #: Every metric of the stage's objective, logged held-out as ``eval/<name>`` (with the
    #: key metrics): what ``best_metric`` may name.
    held_out_metrics: ClassVar[tuple[str, ...]] = ("loss", "perplexity")

    optimizer: Param[Optimizer] = field(default=AdamW.C())
    schedule: Param[Schedule] = field(default=Cosine.C())
    batch_size: Param[int] = field(default=32)
    """Examples per optimizer step (global batch)"""
    micro_batch_size: Param[int] = field(default=32)
    """Examples per device in one forward/backward pass (gradients accumulate over the rest)"""
    seq_len: Param[int] = field(default=64)
    """Tokens per training sequence (for pairs: prompt + completion)"""
    eval_fraction: Param[float] = field(default=0.05)
    """Fraction of the data held out for evaluation"""
    eval_interval: Param[int] = field(default=100)
    """Steps between two held-out evaluations"""
    eval_batches: Param[int] = field(default=8)
    """At most this many held-out batches per evaluation"""
    seed: Param[int] = field(default=0)
    """Seed of the initialisation, the data order and the held-out split"""
    epochs: Param[float | None] = field(default=None)
    """Passes over the training split, instead of steps: steps = ceil(epochs * training
    examples (packed blocks for text) / batch_size), counted at planning"""
    best_metric: Param[str | None] = field(default=None)
    """Keep the checkpoint of the evaluation where this held-out metric is best (e.g.
    eval/loss); a later stage takes it as `<stage>.best`"""
    best_mode: Param[str] = field(default="min", ignore_default=True)
    """Whether the best value of best_metric is its min or its max"""

    log_interval: Meta[int] = field(default=10)
    """Steps between two logged lines and metrics records"""
    checkpoint_interval: Meta[int] = field(default=100)
    """Steps between two checkpoints"""
    keep_checkpoints: Meta[int] = field(default=2)
    """Checkpoints kept (the latest ones; the final one is always among them)"""
    model_parallel: Meta[int] = field(default=1)
    """Devices per model replica (the mesh's model axis)"""
    fsdp: Meta[int] = field(default=1)
    """Devices over which parameters and optimizer state are split (the mesh's fsdp axis; -1:
    every device model_parallel leaves); the data axis is what is left (docs/scaling.md)"""
    prefetch: Meta[int] = field(default=2)
    """Batches prepared ahead of the device by a background thread"""
    time_limit_margin: Meta[float] = field(default=DEFAULT_MARGIN_S)
    """Under a time limit (SLURM), stop with a checkpoint when fewer seconds than this (plus two
    steps and one checkpoint) are left; experimaestro then resubmits the job, which resumes"""
    logger: Meta[MetricsLogger | None] = field(default=None)
    """Where metrics go besides metrics.jsonl (e.g. wandb); not part of the job's identity"""

    checkpoints: Meta[Path] = field(default_factory=PathGenerator("checkpoints"))
    metrics_path: Meta[Path] = field(default_factory=PathGenerator("metrics.jsonl"))
    result_path: Meta[Path] = field(default_factory=PathGenerator("result.json"))
    best_checkpoint: Meta[Path] = field(default_factory=PathGenerator("best_checkpoint"))
    """The best checkpoint folder (with best_metric); best_checkpoint.json records its step"""

    @property
    def stage_name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__.lower())

    def total_steps(self) -> int:
        raise NotImplementedError

    def epoch_steps(self) -> int:
        """The steps of ``epochs`` passes over the training split (see ``training/budget.py``)."""
        return epoch_steps(self)

    def model_and_tokenizer(self) -> tuple[ModelConfig, Tokenizer]:
        """The configuration of the trained model and its tokenizer."""
        raise NotImplementedError

    def training_data(self) -> Any:
        """The dataset Config the stage trains on."""
        raise NotImplementedError

    def data_loader(self) -> type[StageDataSource]:
        """The class turning ``training_data()`` into batches (BlockData, PairData, ...)."""
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

    def validate_stage(self, problems: Problems) -> None:
        """The stage's own checks (a subclass adds its problems, key by key)."""

    def __validate__(self) -> None:
        """Every problem of the parameters, each under its parameter's name."""
        problems = Problems()
        total = 0
        try:
            total = self.total_steps()
        except ConfigError as error:
            problems.found += error.problems
        for key in (
            "batch_size",
            "micro_batch_size",
            "seq_len",
            "eval_interval",
            "log_interval",
            "checkpoint_interval",
        ):
            if getattr(self, key) < 1:
                problems.add(key, f"{getattr(self, key)} must be >= 1")
        if total < 1 and not problems.found:
            problems.add("steps", f"the run has {total} steps; it needs at least 1")
        if self.micro_batch_size > 0 and self.batch_size % self.micro_batch_size:
            problems.add(
                "batch_size",
                f"{self.batch_size} is not divisible by micro_batch_size={self.micro_batch_size}",
            )
        if self.seed < 0:
            problems.add("seed", f"{self.seed} must be >= 0")
        if self.keep_checkpoints < 1:
            problems.add("keep_checkpoints", f"{self.keep_checkpoints} must be >= 1")
        if self.model_parallel < 1:
            problems.add("model_parallel", f"{self.model_parallel} must be >= 1")
        if self.fsdp < 1 and self.fsdp != -1:
            problems.add("fsdp", f"{self.fsdp} must be >= 1, or -1 (every device left)")
        if not 0.0 <= self.eval_fraction < 1.0:
            problems.add("eval_fraction", f"{self.eval_fraction} must be in [0, 1)")
        model, tokenizer = self.model_and_tokenizer()
        problems.call("model.vocab_size", lambda: model.validate_vocabulary(tokenizer.vocab_size))
        max_len = model.max_seq_len
        if self.seq_len > max_len:
            problems.add("seq_len", f"{self.seq_len} exceeds the model's max_seq_len={max_len}")
        problems.validate("schedule", self.schedule)
        if total >= 1:
            problems.call("schedule", lambda: self.schedule.validate_steps(total))
        problems.call("optimizer", lambda: self.optimizer.validate_model(model, tokenizer))
        if self.logger is not None:
            problems.validate("logger", self.logger)
        self.validate_best(problems)
        self.validate_stage(problems)
        problems.raise_any()

    def validate_best(self, problems: Problems) -> None:
        """``best_metric`` names a held-out metric of the stage, and there is held-out data."""
        if self.best_mode not in BEST_MODES:
            problems.add("best_mode", f"{self.best_mode!r} is not one of {', '.join(BEST_MODES)}")
        if self.best_metric is None:
            return
        names = dict.fromkeys((*self.held_out_metrics, *self.key_metrics))
        known = [f"eval/{name}" for name in names]
        if self.best_metric not in known:
            problems.add(
                "best_metric",
                f"{self.best_metric!r} is not a held-out metric of stage kind "
                f"{self.stage_name!r}; its held-out metrics are: {', '.join(known)}",
            )
        if self.eval_fraction == 0:
            problems.add("best_metric", "needs held-out data, and eval_fraction is 0")

    def loop_settings(self) -> LoopSettings:
        """The loop's settings: the task's parameters of the same names."""
        from xpm_train.training.stage import LoopSettings

        names = [f.name for f in dataclasses.fields(LoopSettings)]
        values = {name: getattr(self, name) for name in names if name not in _COMPUTED_SETTINGS}
        return LoopSettings(total_steps=self.total_steps(), **values)

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
        that take it be validated before anything is submitted."""
        model, tokenizer = self.model_and_tokenizer()
        return Checkpoint.C(
            model=model, tokenizer=tokenizer, path=Path(), step=self.total_steps(), metrics=None
        )

    def best_output(self, final: Checkpoint, name: str = "") -> Checkpoint:
        """The checkpoint of the best evaluation, given this task's final checkpoint
        ``final`` (its output once submitted, marked as such; else the planned stand-in);
        ``name``: the stage's name, for the error when it keeps no best checkpoint."""
        if self.best_metric is None:
            name = name or self.stage_name
            raise ConfigError(
                f"stage {name!r} keeps no best checkpoint: set {name}.best_metric (e.g. "
                f"eval/loss) to take {name}.best, or take {name} (its final checkpoint)"
            )
        submitted = final.__xpm__.task is not None
        best = Checkpoint.C(
            model=final.model,
            tokenizer=final.tokenizer,
            path=self.best_checkpoint if submitted else Path(),
            step=final.step,
            metrics=final.metrics,
            which="best",
        )
        if submitted:
            self.__xpm__.mark_output(best)
        return best

    def checkpoint_values(self) -> CheckpointValues:
        """The final checkpoint of this (finished) job, e.g. reloaded from its folder."""
        model, tokenizer = self.model_and_tokenizer()
        return CheckpointValues(
            model, tokenizer, Path(self.checkpoints), self.total_steps(), Path(self.metrics_path)
        )

    def task_outputs(self, dep: Any) -> Checkpoint:
        return dep(self.checkpoint_output())

    def execute(self) -> None:
        self.record_code()
        from xpm_train.training import processes

        processes.initialize()  # before any other JAX call: a job may span several processes
        from xpm_train.training.preemption import StopRequest

        stop_request = StopRequest().install()
        from xpm_train.training.runtime import configure_job

        print(configure_job(Path(self.checkpoints).parent).describe(), flush=True)
        from xpm_train.tracking.session import training_session
        from xpm_train.training.loop import RunPaths, train
        from xpm_train.training.time_limit import TimeLimit
        from xpm_train.validation import validate

        validate(self)
        best = Path(self.best_checkpoint) if self.best_metric is not None else None
        paths = RunPaths(self.checkpoints, self.metrics_path, self.result_path, best)
        writer = processes.is_writer()
        logger = self.logger if writer else None
        with training_session(self.stage_name, self.metrics_path, logger) as session:
            try:
                result = train(
                    self.build_stage(),
                    self.loop_settings(),
                    paths,
                    on_progress=report_progress,
                    on_metrics=session.log,
                    time_limit=TimeLimit(self.remaining_time, self.time_limit_margin),
                    stop_request=stop_request,
                )
            except EARLY_STOPS:
                if writer:
                    raise  # experimaestro records why the job stopped (and resubmits it)
                return  # the other processes end cleanly, not as a failure of the job
            if writer:
                print(session.finish(result), flush=True)
        stop_request.uninstall()
