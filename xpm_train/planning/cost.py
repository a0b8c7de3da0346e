"""What a training job costs, shown in the plan: steps, tokens, parameters, FLOPs and an
estimated wall time (docs/plan-cost.md).

Everything here runs in the experiment driver, which never imports JAX: parameters are counted
from the model configuration, and the throughput comes from earlier jobs of the same shape in
the workdir or from a calibration measured in a subprocess (:mod:`xpm_train.planning.calibrate`).

FLOPs follow the PaLM/nanoGPT convention (causal masking not discounted), per trained token:
``6 N + 12 L d T`` for the trained model, plus ``2 N' + 4 L' d' T`` for the forward pass of a
frozen reference model (stages with a ``reference``). ``N`` counts the parameters that multiply
activations: every linear layer, the norms and the output projection (the input embedding
when it is tied), not the look-ups (position embeddings, an untied input embedding).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from xpm_train.models.config import ModelConfig, TransformerConfig
from xpm_train.models.families import DecoderConfig
from xpm_train.tasks.finetune import FinetuneTask, ReferenceTask
from xpm_train.tasks.trainer import TrainerTask
from xpm_train.training.budget import counts_examples, epoch_size

#: Earlier jobs read per task type (the most recent ones).
MAX_EARLIER_JOBS = 50


def transformer_parameters(config: TransformerConfig, vocab_size: int) -> int:
    """Parameter count of :class:`~xpm_train.models.transformer.Transformer` (its exact
    layout: pre-norm blocks, fused qkv, GELU MLP, optional biases, tied embeddings)."""
    d, hidden, bias = config.d_model, config.mlp_ratio * config.d_model, config.use_bias
    norm = d * (2 if bias and config.norm == "layernorm" else 1)

    def linear(d_in: int, d_out: int) -> int:
        return d_in * d_out + (d_out if bias else 0)

    block = 2 * norm + linear(d, 3 * d) + linear(d, d) + linear(d, hidden) + linear(hidden, d)
    total = vocab_size * d + config.n_layers * block + norm
    if config.positions == "learned":
        total += config.max_seq_len * d
    if not config.tie_embeddings:
        total += linear(d, vocab_size)
    return total


def decoder_parameters(config: DecoderConfig) -> int:
    """Parameter count of :class:`~xpm_train.models.decoder.Decoder` (llama, qwen2,
    gpt_neox: separate q/k/v of grouped-query attention, gated or plain MLP, the family's
    biases and norms)."""
    d, size, hidden = config.hidden_size, config.head_size, config.intermediate_size
    queries, keys = config.num_attention_heads * size, config.kv_heads * size
    qkv_bias, out_bias, mlp_bias = config.biases()
    attention = d * (queries + 2 * keys) + queries * d
    attention += (queries + 2 * keys if qkv_bias else 0) + (d if out_bias else 0)
    projections = 3 if config.gated_mlp else 2
    mlp = projections * d * hidden + ((projections - 1) * hidden + d if mlp_bias else 0)
    norm = d * (2 if config.layer_norm else 1)
    embeddings = config.vocab_size * d * (1 if config.tie_embeddings else 2)
    return embeddings + config.num_hidden_layers * (attention + mlp + 2 * norm) + norm


def parameters(model: ModelConfig, vocab_size: int) -> int | None:
    """Parameter count of a model configuration, None for an unknown architecture."""
    if isinstance(model, TransformerConfig):
        return transformer_parameters(model, vocab_size)
    if isinstance(model, DecoderConfig):
        return decoder_parameters(model)
    return None


def _lookups_and_attention(model: ModelConfig, vocab_size: int) -> tuple[int, int] | None:
    """The parameters only looked up (embeddings not used as the output projection), and the
    number of layers times the attention's query width."""
    if isinstance(model, TransformerConfig):
        lookups = model.max_seq_len * model.d_model if model.positions == "learned" else 0
        lookups += 0 if model.tie_embeddings else vocab_size * model.d_model
        return lookups, model.n_layers * model.d_model
    if isinstance(model, DecoderConfig):
        lookups = 0 if model.tie_embeddings else model.vocab_size * model.hidden_size
        width = model.num_attention_heads * model.head_size
        return lookups, model.num_hidden_layers * width
    return None


def matmul_parameters(model: ModelConfig, vocab_size: int) -> int | None:
    """``N`` of the FLOPs formula: the parameters without the embedding look-ups."""
    total, shape = parameters(model, vocab_size), _lookups_and_attention(model, vocab_size)
    return None if total is None or shape is None else total - shape[0]


def flops_per_token(model: ModelConfig, vocab_size: int, seq_len: int, train: bool) -> int | None:
    """FLOPs per token of a forward and backward pass (``train``) or of a forward pass."""
    n, shape = matmul_parameters(model, vocab_size), _lookups_and_attention(model, vocab_size)
    if n is None or shape is None:
        return None
    attention = 4 * shape[1] * seq_len
    return 3 * (2 * n + attention) if train else 2 * n + attention


def sequences_per_example(task: TrainerTask) -> int:
    """Sequences of ``seq_len`` tokens in one example of the batch (2 for preference pairs):
    the loader's ``sequences_per_example`` (:class:`~xpm_train.data.examples.ExampleData`),
    else 1 (packed blocks)."""
    return int(getattr(task.data_loader(), "sequences_per_example", 1))


def tokens_per_step(task: TrainerTask) -> int:
    return task.batch_size * sequences_per_example(task) * task.seq_len


def shape_of(task: TrainerTask) -> dict[str, Any]:
    """What a job's speed depends on: the stage, the model, the micro-batch of sequences."""
    model, tokenizer = task.model_and_tokenizer()
    shape = {
        "stage": str(task.__xpm__.xpmtype.identifier),
        "model": model.__xpm__.identifier.all.hex(),
        "vocab_size": tokenizer.vocab_size,
        "seq_len": task.seq_len,
        "micro_batch_size": task.micro_batch_size,
        "model_parallel": task.model_parallel,
    }
    if task.fsdp != 1:
        shape["fsdp"] = task.fsdp
    return shape


def shape_id(shape: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def work(task: TrainerTask) -> dict[str, Any]:
    """Steps, trained tokens, parameters and FLOPs of a training job (see the module)."""
    model, tokenizer = task.model_and_tokenizer()
    steps = task.total_steps()
    tokens = steps * tokens_per_step(task)
    per_token = flops_per_token(model, tokenizer.vocab_size, task.seq_len, train=True)
    if per_token is not None and isinstance(task, ReferenceTask):
        reference = task.reference_checkpoint()
        vocab = reference.tokenizer.vocab_size
        forward = flops_per_token(reference.model, vocab, task.seq_len, train=False)
        per_token = None if forward is None else per_token + forward
    # an epoch budget: the epochs, and the examples (packed blocks for text) of one epoch
    epochs = {} if task.epochs is None else {"epochs": task.epochs, "per epoch": epoch(task)}
    return {
        **epochs,
        "steps": steps,
        "tokens": tokens,
        "parameters": parameters(model, tokenizer.vocab_size),
        "flops": None if per_token is None else tokens * per_token,
    }


def epoch(task: TrainerTask) -> str:
    """What one epoch of the task holds, e.g. ``380 blocks`` or ``342 examples``."""
    unit = "examples" if counts_examples(task) else "blocks"
    return f"{epoch_size(task)} {unit}"


def occurrences(total: int, interval: int) -> int:
    """How many times the loop does something every ``interval`` steps and at the end."""
    return total // interval + (1 if total % interval else 0)


def calibrated_wall(task: TrainerTask, record: dict[str, Any]) -> float:
    """Wall time of a whole job from a calibration record: one-off costs (process start,
    imports, data, restored checkpoints, compilation, the end) plus its steps, evaluations
    and checkpoints."""
    steps = task.total_steps()
    step_s = tokens_per_step(task) / record["tokens_per_s"]
    initial = record["restore_s"] if isinstance(task, FinetuneTask) else record["init_s"]
    wall = record["startup_s"] + record["setup_s"] + record["compile_s"] + record["finish_s"]
    wall += initial + record["state_s"] + int(isinstance(task, ReferenceTask)) * record["restore_s"]
    wall += (steps - 1) * step_s
    if record["eval_batches"]:
        batches = min(task.eval_batches, record["eval_batches"]) / record["eval_batches"]
        wall += record["eval_first_s"] - record["eval_s"]
        wall += occurrences(steps, task.eval_interval) * record["eval_s"] * batches
    wall += record["checkpoint_first_s"] - record["checkpoint_s"]
    wall += occurrences(steps, task.checkpoint_interval) * record["checkpoint_s"]
    return wall


@dataclass
class EarlierJob:
    """A finished job of the workdir: its measured throughput and wall time."""

    tokens_per_s: float
    steps: int
    tokens_per_step: int
    wall_s: float | None
    """From experimaestro's status (process start to end); None if not recorded"""

    @property
    def one_off_s(self) -> float | None:
        if self.wall_s is None:
            return None
        return self.wall_s - self.steps * self.tokens_per_step / self.tokens_per_s


def job_wall(folder: Path) -> float | None:
    """Process start to end of a finished job, from experimaestro's ``status.json``."""
    path = folder / ".experimaestro" / "status.json"
    try:
        status = json.loads(path.read_text())
        if status.get("retry_count"):  # resumed: the times cover the last attempt only
            return None
        began, ended = status["started_time"], status["ended_time"]
        return (datetime.fromisoformat(ended) - datetime.fromisoformat(began)).total_seconds()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_earlier_job(folder: Path) -> tuple[str, EarlierJob] | None:
    """The shape id and measurements of a finished training job folder (None if unusable)."""
    from experimaestro import from_task_dir

    from xpm_train.training.metrics import read_metrics

    try:
        result = json.loads((folder / "result.json").read_text())
        speeds = [r["tokens_per_s"] for r in read_metrics(folder / "metrics.jsonl", "train")]
        speeds = [float(s) for s in speeds if isinstance(s, (int, float)) and s > 0]
        if not speeds:
            return None
        task = from_task_dir(folder)
        if not isinstance(task, TrainerTask):
            return None
        job = EarlierJob(
            statistics.median(speeds), int(result["step"]), tokens_per_step(task), job_wall(folder)
        )
        return shape_id(shape_of(task)), job
    except Exception:  # another version's job, a partial folder: not a measurement
        return None


def earlier_jobs(folders: list[Path]) -> dict[str, list[EarlierJob]]:
    """Finished jobs under the task-type folders ``folders`` (``WORKDIR/jobs/<task id>``),
    by shape id."""
    found: dict[str, list[EarlierJob]] = {}
    for type_folder in dict.fromkeys(folders):
        results = sorted(
            type_folder.glob("*/result.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for result in results[:MAX_EARLIER_JOBS]:
            read = read_earlier_job(result.parent)
            if read is not None:
                found.setdefault(read[0], []).append(read[1])
    return found


@dataclass
class Estimate:
    """A job's estimated wall time, the throughput it assumes, and where both come from."""

    wall_s: float | None
    tokens_per_s: float | None
    source: str


def estimate(
    task: TrainerTask,
    jobs: list[EarlierJob] | None,
    record: dict[str, Any] | None,
    unknown: str,
    busy: float = 0.2,
) -> Estimate:
    """From earlier jobs of the same shape (their median tokens/s for the steps and their
    median one-off time, wall time minus steps, for the rest), else from a calibration
    ``record`` (flagged when other processes used more than ``busy`` of the CPUs meanwhile),
    else unknown (``unknown`` says why)."""
    if jobs:
        tokens_per_s = statistics.median(job.tokens_per_s for job in jobs)
        steps_s = task.total_steps() * tokens_per_step(task) / tokens_per_s
        one_off = [job.one_off_s for job in jobs if job.one_off_s is not None]
        source = f"from {len(jobs)} earlier job{'s' if len(jobs) > 1 else ''}"
        if one_off:
            return Estimate(steps_s + max(0.0, statistics.median(one_off)), tokens_per_s, source)
        if record is not None:  # the first step is in the calibration's compile time
            later_steps = (task.total_steps() - 1) * tokens_per_step(task)
            one_off_s = calibrated_wall(task, record) - later_steps / record["tokens_per_s"]
            wall = later_steps / tokens_per_s + one_off_s
            return Estimate(wall, tokens_per_s, f"{source} (one-off calibrated)")
        return Estimate(steps_s, tokens_per_s, f"{source} (steps only: no job wall time)")
    if record is not None:
        source, others = "calibrated", record.get("others_cpu_share") or 0.0
        if others > busy:
            source += f" (on a busy machine: other processes used {others:.0%} of the CPUs)"
        return Estimate(calibrated_wall(task, record), record["tokens_per_s"], source)
    return Estimate(None, None, f"unknown ({unknown})")
