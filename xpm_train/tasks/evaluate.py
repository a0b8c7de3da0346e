"""Evaluation of any stage's checkpoint on held-out data."""

from __future__ import annotations

import json
from pathlib import Path

from experimaestro import Config, Meta, Param, PathGenerator, Task, field

from xpm_train.data.datasets import TextDataset
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.job_environment import JobEnvironment
from xpm_train.tasks.progress import report_progress
from xpm_train.tasks.versioned import Versioned
from xpm_train.training.processes import other_process
from xpm_train.validation import Problems


class HeldOutSplit(Config):
    """The held-out part of a dataset, as a training task with these parameters split it."""

    dataset: Param[TextDataset]
    eval_fraction: Param[float] = field(default=0.05)
    seed: Param[int] = field(default=0)


class Evaluate(Versioned, JobEnvironment, Task):
    """Held-out loss and perplexity of a checkpoint on each dataset, and, for datasets of
    (prompt, answer) problems such as ``arithmetic``, the exact-match accuracy of greedy
    generation on held-out problems (``accuracy``) and on training ones (``train_accuracy``).

    Writes ``metrics.json``.
    """

    checkpoint: Param[Checkpoint]
    datasets: Param[dict[str, HeldOutSplit]]
    seq_len: Param[int] = field(default=64)
    """Tokens per held-out sequence"""
    batch_size: Param[int] = field(default=32)
    max_batches: Param[int] = field(default=16)
    max_problems: Param[int] = field(default=500)
    """At most this many problems for each exact-match accuracy"""

    metrics_path: Meta[Path] = field(default_factory=PathGenerator("metrics.json"))

    def __validate__(self) -> None:
        problems = Problems()
        max_len = self.checkpoint.model.max_seq_len
        if not 1 <= self.seq_len <= max_len:
            problems.add(
                "seq_len", f"{self.seq_len} must be in [1, the model's max_seq_len={max_len}]"
            )
        if not self.datasets:
            problems.add("datasets", "empty: give at least one dataset to evaluate on")
        for name, split in self.datasets.items():
            problems.validate(f"datasets.{name}", split.dataset)
        problems.raise_any()

    def execute(self) -> None:
        self.record_code()
        if other_process():  # started once per SLURM task: the work is done once
            return
        from xpm_train.training.runtime import configure_job

        print(configure_job(Path(self.metrics_path).parent).describe(), flush=True)
        import jax

        from xpm_train.data.blocks import BlockData
        from xpm_train.data.packing import split_documents
        from xpm_train.inference.generate import exact_match
        from xpm_train.objectives.language_model import NextTokenPrediction
        from xpm_train.tasks.checkpoint import restore_checkpoint
        from xpm_train.training.evaluation import mean_metrics
        from xpm_train.training.mesh import make_mesh
        from xpm_train.training.step import make_eval_step

        mesh = make_mesh()
        tokenizer = self.checkpoint.tokenizer
        with jax.set_mesh(mesh):
            definition, params = restore_checkpoint(self.checkpoint, mesh)
            model = definition.merge(params)
            eval_step = jax.jit(make_eval_step(definition, NextTokenPrediction()))
            results = {}
            count = len(self.datasets)
            for index, (name, split) in enumerate(self.datasets.items()):
                report_progress(index / count, f"{name}: held-out loss ({index + 1}/{count})")
                dataset = split.dataset
                data = BlockData.from_dataset(
                    dataset,
                    tokenizer,
                    self.seq_len,
                    self.batch_size,
                    split.eval_fraction,
                    self.max_batches,
                    split.seed,
                )
                batches = data.eval_batches(self.batch_size)
                metrics = mean_metrics(eval_step, params, batches, None, mesh, prefix="")
                if hasattr(dataset, "problems"):
                    report_progress(
                        (index + 0.5) / count, f"{name}: exact-match accuracy ({index + 1}/{count})"
                    )
                    train, held_out = split_documents(
                        dataset.problems(), split.eval_fraction, split.seed
                    )
                    limit = self.max_problems
                    metrics["accuracy"] = exact_match(model, tokenizer, held_out[:limit])
                    metrics["train_accuracy"] = exact_match(model, tokenizer, train[:limit])
                results[name] = metrics
        record = {
            "checkpoint": str(self.checkpoint.path),
            "step": self.checkpoint.step,
            "datasets": results,
        }
        self.metrics_path.write_text(json.dumps(record, indent=2) + "\n")
        report_progress(1.0, f"done: {count} datasets")
        summary = "; ".join(
            f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            for name, metrics in results.items()
        )
        print(f"evaluation of {self.checkpoint.path} step {self.checkpoint.step}: {summary}")
