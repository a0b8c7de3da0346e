"""The one training loop every stage runs; stages differ by objective and data only."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax

from xpm_train.data.loader import Batch, Prefetcher
from xpm_train.training import processes, runtime
from xpm_train.training.best import BestCheckpoint
from xpm_train.training.checkpoint import CheckpointStore
from xpm_train.training.evaluation import mean_metrics
from xpm_train.training.mesh import (
    data_parallel_size,
    local_rows,
    make_mesh,
    place_rows,
    replicated,
)
from xpm_train.training.metrics import MetricsLog, NoMetricsLog, read_metrics
from xpm_train.training.preemption import StopRequest
from xpm_train.training.result import TrainResult
from xpm_train.training.stage import (
    LoopSettings,
    RunPaths,
    Stage,
    StageData,
    accumulation_steps,
    format_duration,
)
from xpm_train.training.state import (
    Params,
    abstract_state,
    bytes_per_device,
    create_state,
    init_params,
    model_def,
    state_shardings,
)
from xpm_train.training.step import make_eval_step, make_train_step
from xpm_train.training.time_limit import TimeLimit, TimeLimitReached

#: Re-exported: what the loop takes is declared in :mod:`xpm_train.training.stage`.
__all__ = ["LoopSettings", "NonFiniteLossError", "RunPaths", "Stage", "StageData", "train"]


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


class _Trainer:
    def __init__(
        self,
        stage: Stage,
        settings: LoopSettings,
        paths: RunPaths,
        on_progress: Callable[[float, str], None] | None,
        on_metrics: Callable[[dict[str, Any]], None] | None = None,
        time_limit: TimeLimit | None = None,
        stop_request: StopRequest | None = None,
    ):
        self.stage, self.settings, self.paths = stage, settings, paths
        self.time_limit, self.stop_request = time_limit, stop_request
        self.writer = processes.is_writer()
        self.on_progress = (on_progress if self.writer else None) or (lambda fraction, desc: None)
        self.on_metrics = on_metrics
        self.mesh = make_mesh(settings.model_parallel, fsdp=settings.fsdp)
        self.accum = accumulation_steps(settings, data_parallel_size(self.mesh))
        self.definition = model_def(stage.make_model, self.mesh)
        stage.schedule.validate_steps(settings.total_steps)
        self.learning_rate = stage.schedule.build(settings.total_steps)
        self.tx = stage.optimizer.build(self.learning_rate)
        self.shardings = state_shardings(self.definition, self.tx, self.mesh)
        self.store = CheckpointStore(paths.checkpoints, settings.keep_checkpoints)
        self.saved_step: int | None = self.store.latest_step()
        self.best = None
        if settings.best_metric is not None and paths.best is not None:
            self.best = BestCheckpoint(
                paths.best, settings.best_metric, settings.best_mode, self.writer
            )
        everywhere = replicated(self.mesh)
        self.train_step = jax.jit(
            make_train_step(self.definition, stage.objective, self.tx, self.learning_rate),
            in_shardings=(self.shardings, None, None),  # batches arrive placed
            out_shardings=(self.shardings, everywhere),
            donate_argnums=(0,),
        )
        self.eval_step = jax.jit(
            make_eval_step(self.definition, stage.objective), out_shardings=everywhere
        )
        per_device, total = bytes_per_device(
            abstract_state(self.definition, self.tx, self.shardings)
        )
        mesh = " x ".join(f"{name} {size}" for name, size in self.mesh.shape.items())
        print(
            f"mesh {mesh} over {jax.device_count()} device(s) in {jax.process_count()} "
            f"process(es); parameters + optimizer state: {per_device / 2**20:.2f} MiB per "
            f"device ({total / 2**20:.2f} MiB in all)",
            flush=True,
        )
        self.queue_ahead = runtime.queue_ahead()

    def initial_state(self) -> tuple[Any, int, dict[str, float]]:
        target = abstract_state(self.definition, self.tx, self.shardings)
        restored = self.store.restore_latest_readable(target)
        if restored is not None:
            state, meta = restored
            self.saved_step = step = int(meta["step"])
            print(f"resuming from checkpoint {self.store.directory / str(step)}", flush=True)
            return state, step, dict(meta.get("metrics", {}))
        if self.stage.initial_params is not None:
            params = self.stage.initial_params(self.definition)
        else:
            params = init_params(self.stage.make_model, self.definition)
        return create_state(params, self.tx, self.settings.seed, self.shardings), 0, {}

    def evaluate(self, params: Params, batches: list[Batch], frozen: Any) -> dict[str, float]:
        return mean_metrics(
            self.eval_step,
            params,
            batches,
            frozen,
            self.mesh,
            perplexity_of=self.stage.objective.perplexity_of,
        )

    def evaluate_and_log(
        self, state: Any, batches: list[Batch], frozen: Any, log: MetricsLog, step: int
    ) -> dict[str, float]:
        metrics = self.evaluate(state.params, batches, frozen)
        log.write({"kind": "eval", "step": step, **metrics})
        if self.best is not None:
            self.best.consider(state, step, metrics)
        return metrics

    def check_finite(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        bad = {
            k: v for k, v in values.items() if k in ("loss", "grad_norm") and not math.isfinite(v)
        }
        if bad:
            latest = self.store.latest_step()
            kept = (
                f"the last good checkpoint is step {latest} in {self.store.directory}"
                if latest is not None
                else "no checkpoint was written yet"
            )
            raise NonFiniteLossError(
                f"training diverged at step {step}: "
                + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f"; {kept}. Lower the learning rate or raise the warmup, then rerun."
            )
        return values

    def save(self, state: Any, step: int, last: dict[str, float]) -> None:
        began = time.perf_counter()
        meta = {"step": step, "samples": step * self.settings.batch_size, "metrics": last}
        self.store.save(state, meta)
        self.saved_step = step
        if self.time_limit is not None:
            self.time_limit.saved(time.perf_counter() - began)

    def stop_early(self, state: Any, metrics: Any, step: int, last: dict[str, float]) -> None:
        """Near the job's time limit, or after SIGTERM (in any process): write a checkpoint
        of ``step`` (if not just written) and raise, for the job to resume from it."""
        limit = self.time_limit.must_stop() if self.time_limit is not None else None
        signalled = self.stop_request is not None and self.stop_request.received is not None
        reason = processes.any_process(2 if signalled else 1 if limit is not None else 0)
        if not reason:
            return
        if self.saved_step != step:
            self.check_finite(step, metrics)
            self.save(state, step, last)
        self.store.close()
        total, checkpoint = self.settings.total_steps, str(self.store.directory / str(step))
        if reason == 2 and self.stop_request is not None:
            stop: BaseException = self.stop_request.stop(step, total, checkpoint)
        else:
            stop = TimeLimitReached(step, total, limit or 0.0, checkpoint)
        print(stop, flush=True)
        raise stop

    def run(self) -> TrainResult:
        began = time.perf_counter()
        settings, stage = self.settings, self.stage
        total = settings.total_steps
        with jax.set_mesh(self.mesh):
            state, start, last = self.initial_state()
            frozen = stage.frozen(self.definition) if stage.frozen is not None else None
            eval_steps = [r["step"] for r in read_metrics(self.paths.metrics, "eval")]
            last_eval = processes.from_first(max(eval_steps, default=-1))
            log: MetricsLog | NoMetricsLog = NoMetricsLog()
            if self.writer:
                log = MetricsLog(self.paths.metrics, resume_step=start, listener=self.on_metrics)
            eval_batch_size = settings.micro_batch_size * data_parallel_size(self.mesh)
            eval_data = stage.data.eval_batches(eval_batch_size)
            if self.best is not None and not eval_data:
                raise ValueError("best_metric needs held-out data: this stage has none")
            tokens_per_step = settings.batch_size * stage.data.tokens_per_sample
            batches, micro = stage.data.train_batches(self.accum), settings.batch_size // self.accum
            rows = local_rows(self.mesh, micro)  # this process's part of each micro-batch
            prefetcher = Prefetcher(
                lambda step: batches(step, rows),
                start,
                total,
                place=lambda batch: place_rows(batch, rows, self.mesh, 1, micro),
                depth=settings.prefetch,
            )
            pending: tuple[int, Any] | None = None
            queue = self.queue_ahead
            window_start, window_steps, paused = time.perf_counter(), 0, 0.0
            try:
                for step in range(start, total):
                    state, metrics = self.train_step(state, next(prefetcher), frozen)
                    if step == start:  # compilation: not part of the throughput
                        jax.block_until_ready(metrics)
                        compile_s = time.perf_counter() - window_start
                        print(f"first step (compilation) took {compile_s:.1f}s", flush=True)
                        window_start, window_steps = time.perf_counter(), -1
                    elif queue is None:  # the first timed step decides (runtime.queue_ahead)
                        jax.block_until_ready(metrics)
                        seconds = time.perf_counter() - window_start
                        queue = seconds < runtime.WAIT_FROM_SECONDS
                        mode = "queueing the next step" if queue else "one step at a time"
                        print(f"a step takes {seconds:.2f}s: {mode}", flush=True)
                    if pending is not None:
                        self.check_finite(*pending)
                    done, window_steps = step + 1, window_steps + 1
                    pending, values = (done, metrics), None
                    if not queue:
                        pending, values = None, self.check_finite(done, metrics)
                    if done % settings.log_interval == 0 or done == total:
                        last = values or self.check_finite(done, metrics)
                        elapsed = time.perf_counter() - window_start - paused
                        last["tokens_per_s"] = tokens_per_step * window_steps / max(elapsed, 1e-9)
                        eta = (total - done) * elapsed / max(window_steps, 1)
                        log.write({"kind": "train", "step": done, **last})
                        desc = f"step {done}/{total} loss {last['loss']:.4f}"
                        print(
                            f"{desc} lr {last['lr']:.2e} grad_norm {last['grad_norm']:.3f} "
                            f"tok/s {last['tokens_per_s']:.0f} eta {format_duration(eta)}",
                            flush=True,
                        )
                        speed = f"tok/s {last['tokens_per_s']:.0f} eta {format_duration(eta)}"
                        self.on_progress(done / total, f"{desc} {speed}")
                        window_start, window_steps, paused = time.perf_counter(), 0, 0.0
                    if eval_data and (done % settings.eval_interval == 0 or done == total):
                        pause = time.perf_counter()
                        last.update(self.evaluate_and_log(state, eval_data, frozen, log, done))
                        last_eval = done
                        paused += time.perf_counter() - pause
                    if done % settings.checkpoint_interval == 0 or done == total:
                        pause = time.perf_counter()
                        self.check_finite(done, metrics)
                        self.save(state, done, last)
                        paused += time.perf_counter() - pause
                    if done < total:
                        self.stop_early(state, metrics, done, last)
            finally:
                prefetcher.close()
            if eval_data and last_eval != total:
                last.update(self.evaluate_and_log(state, eval_data, frozen, log, total))
        self.store.close()
        if self.best is not None:
            self.best.close()
            print(self.best.describe(), flush=True)
        self.on_progress(1.0, f"done: {total} steps")
        result = TrainResult(
            step=total,
            checkpoint=str(self.store.directory / str(total)),
            metrics=last,
            wall_time_s=time.perf_counter() - began,
            best=self.best.summary() if self.best is not None else None,
        )
        if self.writer:
            result.write(self.paths.result)
        return result


def train(
    stage: Stage,
    settings: LoopSettings,
    paths: RunPaths,
    on_progress: Callable[[float, str], None] | None = None,
    on_metrics: Callable[[dict[str, Any]], None] | None = None,
    time_limit: TimeLimit | None = None,
    stop_request: StopRequest | None = None,
) -> TrainResult:
    """Train ``stage`` for ``settings.total_steps``, resuming from the latest checkpoint in
    ``paths.checkpoints`` if there is one. ``on_metrics`` gets each record written to
    ``paths.metrics`` (a logger such as wandb). With a ``time_limit``, the training stops
    with a checkpoint before the job's time is up (:class:`TimeLimitReached`). With
    ``settings.best_metric``, the checkpoint of the best evaluation is kept in ``paths.best``
    (:mod:`xpm_train.training.best`). With a ``stop_request``, SIGTERM stops it with a
    checkpoint (:mod:`xpm_train.training.preemption`). In a job of several processes
    (:mod:`xpm_train.training.processes`) every process runs this; process 0 writes the files."""
    if settings.best_metric is not None and paths.best is None:
        raise ValueError("best_metric is set but paths.best (its folder) is not")
    trainer = _Trainer(stage, settings, paths, on_progress, on_metrics, time_limit, stop_request)
    return trainer.run()
