"""Calibration of the plan's wall-time estimates: a short real run of each job shape.

The driver never imports JAX, so :func:`calibrate` saves the training tasks (one per shape) and
runs ``python -m xpm_train.planning.calibrate`` on them: in that subprocess each task builds its
real stage (data, objective, optimizer) and its real jitted step, from random parameters instead
of its upstream checkpoints, and times what its job will do: start, imports, data and state,
compilation, steps, evaluations, checkpoints, a checkpoint restore, its curves, the process end.
The records go to ``WORKDIR/.xpm-train/calibration.json``, by shape and machine.
``XPM_TRAIN_CALIBRATE=0`` turns calibration off (docs/plan-cost.md).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xpm_train.switches import is_on, switch

SWITCH = "XPM_TRAIN_CALIBRATE"
CACHE = Path(".xpm-train") / "calibration.json"
#: Seconds of steady steps timed per shape, in CHUNKS groups of MIN_STEPS to MAX_STEPS steps.
MEASURE_S, CHUNKS = 3.0, 6
MIN_STEPS, MAX_STEPS = 2, 50


class CalibrationError(RuntimeError):
    """The calibration subprocess failed; its message ends with the subprocess's error."""


#: What :func:`calibrate` returns for a shape it could not measure: ``{"error": message}``.
ERROR = "error"


def machine() -> str:
    return f"{platform.node()}/{os.cpu_count()} cpus"


def enabled(dry_run: bool) -> bool:
    """Whether this plan calibrates its missing shapes: on dry runs only (a normal run's jobs
    would compete with it for the machine), when ``XPM_TRAIN_CALIBRATE=1``, or when it is
    unset and the output is a terminal (someone is reading: tests and scripts plan fast)."""
    value = switch(SWITCH, "auto")
    if not dry_run or value is None:
        return False
    return value != "auto" or sys.stdout.isatty()


def read_cache(workdir: Path) -> dict[str, dict[str, Any]]:
    """The calibration records of this machine, by shape id."""
    try:
        records = json.loads((Path(workdir) / CACHE).read_text())
    except (OSError, ValueError):
        return {}
    return {key[len(machine()) + 1 :]: r for key, r in records.items() if key.startswith(machine())}


def write_cache(workdir: Path, records: dict[str, dict[str, Any]]) -> None:
    path = Path(workdir) / CACHE
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError):
        existing = {}
    existing.update({f"{machine()}/{key}": record for key, record in records.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(existing, indent=1, sort_keys=True) + "\n")
    partial.replace(path)


def calibrate(workdir: Path, tasks: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Measure each shape (id -> one of its tasks) in one subprocess, cache and return the
    records (``{"error": ...}`` for a shape that failed, not cached). The process start and
    end are timed from here."""
    from experimaestro import save

    with tempfile.TemporaryDirectory(prefix="xpm-train-calibration-") as tmp:
        for key, task in tasks.items():
            (Path(tmp) / key).mkdir()
            save(task, Path(tmp) / key)
        output = Path(tmp) / "calibration.json"
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["XPM_TRAIN_JAX_CACHE"] = "0"  # a fresh job compiles: so does the calibration
        command = [sys.executable, "-m", "xpm_train.planning.calibrate", tmp, str(output)]
        launched = time.time()
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise CalibrationError(f"the calibration took more than {timeout:.0f}s") from error
        ended = time.time()
        if done.returncode or not output.exists():
            tail = (done.stderr or done.stdout).strip()[-1500:]
            status = done.returncode
            raise CalibrationError(f"the calibration failed (exit status {status}): {tail}")
        measured = json.loads(output.read_text())
    startup = measured["ready"] - launched - measured["kernel_build_s"]
    records = {}
    for key, record in measured["shapes"].items():
        if ERROR not in record:
            record["startup_s"] = startup
            record["finish_s"] = record.pop("curves_s") + ended - measured["finished"]
            record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        records[key] = record
    write_cache(workdir, {k: r for k, r in records.items() if ERROR not in r})
    return records


# The subprocess: everything below imports JAX.


def _time_steps(
    trainer: Any, state: Any, batches: Any, frozen: Any, steps: int, queue: bool, chunks: int = 1
) -> tuple[Any, float, dict[str, float]]:
    """Steps as the loop runs them (queued one ahead, or one at a time), in ``chunks`` timed
    groups: the state, the median over the groups of the seconds per step (a burst of
    another process's work slows the groups it overlaps only) and the last step's metrics."""
    import jax

    times, metrics = [], None
    for _ in range(chunks):
        began, pending = time.perf_counter(), None
        for _ in range(steps):
            state, metrics = trainer.train_step(state, next(batches), frozen)
            if pending is not None:
                jax.device_get(pending)
            pending = metrics if queue else jax.device_get(metrics) and None
        jax.device_get(metrics)
        times.append((time.perf_counter() - began) / steps)
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    return state, statistics.median(times), values


def _busy_cpu_s() -> tuple[float, float]:
    """CPU seconds used so far by the whole machine and by this process (Linux)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:
        return math.nan, 0.0
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return busy, time.process_time()


def _timed(function: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    value = function()
    return value, time.perf_counter() - began


def _curves_s(folder: Path, total: int, log_interval: int, train: dict, evaluated: dict) -> float:
    """Seconds to draw the job's curves (as many records as the job will have)."""
    from xpm_train.reporting.plots import job_curves

    steps = range(log_interval, total + 1, log_interval)
    records = [{"kind": "train", "step": s, "tokens_per_s": 1.0, **train} for s in steps]
    records += [{"kind": "eval", "step": total, **evaluated}] if evaluated else []
    return _timed(lambda: job_curves(records, folder / "curves.png", title="calibration"))[1]


def _measure(task: Any, folder: Path) -> dict[str, Any]:
    """Time what the job of ``task`` does, with the loop's own pieces."""
    import jax

    from xpm_train.data.loader import Prefetcher
    from xpm_train.tasks.checkpoint import CheckpointValues, model_factory, restore_checkpoint
    from xpm_train.tasks.finetune import ReferenceTask
    from xpm_train.training import runtime
    from xpm_train.training.loop import RunPaths, _Trainer
    from xpm_train.training.mesh import data_parallel_size, shard_batch
    from xpm_train.training.state import create_state, init_params, model_def

    began = time.perf_counter()
    stage = task.build_stage()
    settings = task.loop_settings()
    paths = RunPaths(folder / "checkpoints", folder / "metrics.jsonl", folder / "result.json")
    trainer = _Trainer(stage, settings, paths, None)
    with jax.set_mesh(trainer.mesh):
        eval_data = stage.data.eval_batches(
            settings.micro_batch_size * data_parallel_size(trainer.mesh)
        )
        setup_s = time.perf_counter() - began
        # No upstream checkpoint exists yet: random parameters (and reference), timed apart.
        params, init_s = _timed(lambda: init_params(stage.make_model, trainer.definition))
        state, state_s = _timed(
            lambda: create_state(params, trainer.tx, settings.seed, trainer.shardings)
        )
        frozen = None
        if isinstance(task, ReferenceTask):
            make_reference = model_factory(task.reference_checkpoint())
            frozen = init_params(make_reference, model_def(make_reference, trainer.mesh))
        elif stage.frozen is not None:
            frozen = stage.frozen(trainer.definition)
        batches = Prefetcher(
            stage.data.train_batches(trainer.accum),
            0,
            4 + CHUNKS * MAX_STEPS,
            place=lambda batch: shard_batch(batch, trainer.mesh, batch_axis=1),
            depth=settings.prefetch,
        )
        try:
            (state, _, _), compile_s = _timed(
                lambda: _time_steps(trainer, state, batches, frozen, 1, False)
            )
            state, probe_s, _ = _time_steps(trainer, state, batches, frozen, 3, False)
            queue = runtime.queue_ahead()
            queue = probe_s < runtime.WAIT_FROM_SECONDS if queue is None else queue
            steps = min(MAX_STEPS, max(MIN_STEPS, math.ceil(MEASURE_S / probe_s / CHUNKS)))
            (busy, mine), began = _busy_cpu_s(), time.perf_counter()
            state, step_s, train = _time_steps(
                trainer, state, batches, frozen, steps, queue, CHUNKS
            )
            (busy_end, mine_end), wall = _busy_cpu_s(), time.perf_counter() - began
            others = (busy_end - busy - (mine_end - mine)) / (wall * (os.cpu_count() or 1))
        finally:
            batches.close()
        evals = [_timed(lambda: trainer.evaluate(state.params, eval_data, frozen)) for _ in "12"]
        saves = [_timed(lambda s=s: trainer.save(state, s, {})) for s in (1, 2)]
        trainer.store.close()
        model, tokenizer = task.model_and_tokenizer()
        checkpoint = CheckpointValues(model, tokenizer, paths.checkpoints, 2)
        _, restore_s = _timed(lambda: restore_checkpoint(checkpoint, trainer.mesh))
    curves_s = _curves_s(folder, settings.total_steps, settings.log_interval, train, evals[0][0])
    return {
        "tokens_per_s": settings.batch_size * stage.data.tokens_per_sample / step_s,
        "step_s": step_s,
        "timed_steps": steps * CHUNKS,
        "batch_size": settings.batch_size,
        "queue_ahead": queue,
        "others_cpu_share": max(0.0, others) if others == others else None,
        "setup_s": setup_s,
        "init_s": init_s,
        "state_s": state_s,
        "compile_s": compile_s,
        "eval_first_s": evals[0][1],
        "eval_s": evals[1][1],
        "eval_batches": len(eval_data),
        "checkpoint_first_s": saves[0][1],
        "checkpoint_s": saves[1][1],
        "restore_s": restore_s,
        "curves_s": curves_s,
    }


def _build_kernel() -> float:
    """Build the attention kernel if it is missing (a job finds it built, so its seconds are
    not part of a job's start); without starting JAX's backend (see :func:`main`)."""
    from xpm_train.models import fast_ops, native

    if not is_on(fast_ops.ENV_VAR) or not is_on(native.ENV_VAR) or native.library_path().exists():
        return 0.0
    try:
        return _timed(native.build)[1]
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return 0.0


def main(folder: Path, output: Path) -> None:
    """Measure every task saved under ``folder`` (one sub-folder per shape id)."""
    from experimaestro import load

    from xpm_train.training import runtime

    folders = sorted(path for path in folder.iterdir() if path.is_dir())
    tasks = {path.name: load(path, as_instance=True) for path in folders}
    kernel_build_s = _build_kernel()
    # First, as in a job: its malloc settings hold only for the threads JAX starts afterwards.
    runtime.configure(None)
    import orbax.checkpoint  # noqa: F401  (what a job imports before its first step)

    import xpm_train.training.loop  # noqa: F401
    from xpm_train.reporting.plots import pyplot

    pyplot()
    ready = time.time()
    shapes = {}
    for key, task in tasks.items():
        with tempfile.TemporaryDirectory(prefix="xpm-train-calibration-") as tmp:
            try:
                shapes[key] = _measure(task, Path(tmp))
            except Exception as error:  # the other shapes are still worth measuring
                shapes[key] = {ERROR: f"{type(error).__name__}: {error}"[:500]}
    measured = {"ready": ready, "kernel_build_s": kernel_build_s, "shapes": shapes}
    output.write_text(json.dumps({**measured, "finished": time.time()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
