"""What the experiment prints while its jobs run, instead of experimaestro's log lines.

One line per running job at most every :data:`EVERY_S` seconds (its stage, step, loss,
tokens/s and time left, from the progress experimaestro receives from the job), one line when
a job ends (its key metrics and its log), and a last line counting the jobs run and reused.
experimaestro's own INFO lines ("Submitting job", "ended with code 0") are hidden; its
warnings and errors are not.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from experimaestro.scheduler.base import Listener
from experimaestro.scheduler.experiment import FailedExperiment
from experimaestro.scheduler.interfaces import JobState

#: Seconds between two progress lines of the same job.
EVERY_S = 15.0
#: experimaestro's loggers whose INFO lines the console replaces.
QUIETED = ("xpm.scheduler", "xpm.slurm", "xpm", "xpm.experiment")
#: Metrics shown when a training job ends (those it has).
TRAINING_METRICS = ("loss", "eval/loss", "eval/exact_match", "eval/reward_accuracy")


def quiet_experimaestro() -> None:
    """Hide experimaestro's INFO lines in this process (its warnings and errors stay)."""
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)


def ended_summary(folder: Path) -> str:
    """The key figures a finished job left in its folder (``result.json`` of a training job,
    ``metrics.json`` of an evaluation), or an empty string."""
    result, metrics = folder / "result.json", folder / "metrics.json"
    try:
        if result.is_file():
            values = json.loads(result.read_text())
            final = values.get("metrics", {})
            shown = [f"{key} {final[key]:.4g}" for key in TRAINING_METRICS if key in final]
            seconds = values.get("wall_time_s")
            took = f" in {seconds:.0f}s" if isinstance(seconds, (int, float)) else ""
            return f"{values.get('step')} steps{took}" + (f": {', '.join(shown)}" if shown else "")
        if metrics.is_file():
            datasets = json.loads(metrics.read_text()).get("datasets", {})
            parts = []
            for dataset, figures in datasets.items():
                accuracy = figures.get("accuracy")
                extra = f", exact match {accuracy:.3f}" if accuracy is not None else ""
                parts.append(f"{dataset} data: loss {figures['loss']:.4g}{extra}")
            return "; ".join(parts)
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    return ""


class ConsoleListener(Listener):
    """Prints the lines of the module docstring for the jobs named in ``labels`` (job
    identifier -> what the line calls it, e.g. ``pretrain`` or ``evaluate kl``)."""

    def __init__(self, labels: dict[str, str], every: float = EVERY_S):
        self.labels, self.every = labels, every
        self.last_line: dict[str, float] = {}
        self.last_desc: dict[str, str] = {}
        self.ended: set[str] = set()
        self.stopped: dict[str, int] = {}
        self.ran: set[str] = set()

    def print(self, label: str, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {label}: {text}", file=sys.stdout, flush=True)

    def on_job_state_changed(self, job: Any) -> None:
        key = str(job.identifier)
        label = self.labels.get(key)
        if label is None or key in self.ended:
            return
        state = job.state
        if state == JobState.DONE:
            if key in self.ran:  # else: done before this experiment (reused)
                self.ended.add(key)
                summary = ended_summary(Path(job.path))
                self.print(label, f"done{': ' + summary if summary else ''} (log {job.stdout})")
        elif state.is_error() and getattr(state.failure_reason, "name", "") == "TIMEOUT":
            attempt = getattr(job, "retry_count", 0)
            if self.stopped.get(key) == attempt:
                return  # the same attempt, notified again
            self.stopped[key] = attempt
            self.print(
                label,
                f"stopped with a checkpoint (time limit or preemption, attempt {attempt}): "
                "resubmitted unless its retries are spent, it resumes from that checkpoint",
            )
            self.last_line.pop(key, None)  # the next attempt prints its own lines
        elif state.is_error():
            self.ended.add(key)
            if getattr(state.failure_reason, "name", "") == "DEPENDENCY":
                self.ran.discard(key)
                self.print(label, "not run: a job it needs failed")
            else:
                self.ran.add(key)
                self.print(label, f"failed (log {job.stderr})")
        else:  # waiting, scheduled or running: this experiment runs it
            self.ran.add(key)
            if state == JobState.RUNNING:
                self.progress(key, label, job)

    def progress(self, key: str, label: str, job: Any) -> None:
        levels = getattr(job, "progress", None) or []
        desc = levels[-1].desc if levels and levels[-1].desc else ""
        now = time.monotonic()
        if key not in self.last_line:
            self.last_line[key] = now
            self.print(label, f"running (log {job.stdout})")
            return
        if desc and desc != self.last_desc.get(key) and now - self.last_line[key] >= self.every:
            self.last_line[key], self.last_desc[key] = now, desc
            fraction = levels[-1].progress
            self.print(label, f"{desc} ({100 * fraction:.0f}%)")

    def summary(self, total: int) -> str:
        """``7 jobs: 2 run, 5 reused``."""
        return (
            f"{total} jobs: {len(self.ran)} run, {total - len(self.ran)} reused from earlier runs"
        )


#: How long Ctrl-C waits for the stopped jobs to write their checkpoint and end.
STOP_WAIT_S = 120.0


class Interrupted(FailedExperiment):
    """Ctrl-C stopped the experiment (experimaestro prints the message and exits with 1)."""


class _SecondCtrlC:
    """Told by experimaestro's SIGINT handler (which calls ``stop()`` on what it holds) that
    Ctrl-C was pressed again."""

    def __init__(self) -> None:
        self.pressed = threading.Event()

    def stop(self) -> None:
        self.pressed.set()


def stop_running_jobs(jobs: list[Any], wait_s: float = STOP_WAIT_S) -> tuple[list[Any], bool]:
    """Stop the running ``jobs`` as a preemption would: SIGTERM to a local job's process,
    ``scancel`` for a SLURM job (SIGTERM to its processes); each writes a checkpoint at the
    end of its step and ends. Waits up to ``wait_s`` seconds for them, or until Ctrl-C is
    pressed again; returns those stopped and whether the wait was cut short."""
    from experimaestro.scheduler.signal_handler import SIGNAL_HANDLER

    running = [job for job in jobs if job.state == JobState.RUNNING]
    for job in running:
        spec = job.process_state_dict() or {}
        if spec.get("type") == "local":
            try:
                os.kill(int(spec["pid"]), signal.SIGTERM)
            except (OSError, ValueError, KeyError):
                pass
        elif spec.get("type") == "slurm":
            binpath = dict(spec.get("options", ())).get("binpath", "/usr/bin")
            subprocess.run([f"{binpath}/scancel", str(spec["pid"])], check=False)
    again = _SecondCtrlC()
    SIGNAL_HANDLER.add(again)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + wait_s
        for job in running:
            markers = [Path(job.path) / f"{job.name}.{end}" for end in ("done", "failed")]
            while not any(marker.exists() for marker in markers):
                if again.pressed.is_set() or time.monotonic() > deadline:
                    return running, True
                time.sleep(0.2)
    finally:
        SIGNAL_HANDLER.remove(again)  # type: ignore[arg-type]
    return running, False


def interrupted(jobs: list[Any]) -> Interrupted:
    """Ctrl-C: stop the running jobs of this experiment, each with a checkpoint, and say so."""
    print(
        "Ctrl-C: stopping the running jobs of this experiment; each writes a checkpoint at "
        "the end of its step (Ctrl-C again to leave them running)",
        file=sys.stderr,
        flush=True,
    )
    stopped, cut_short = stop_running_jobs(jobs)
    for job in stopped:
        print(f"  {job.relpath}: log {job.stdout}", file=sys.stderr, flush=True)
    if cut_short:
        return Interrupted(
            f"Interrupted: {len(stopped)} job(s) were told to stop and may still be writing "
            "their checkpoint; run the experiment again to resume them"
        )
    return Interrupted(
        f"Interrupted: {len(stopped)} job(s) stopped, each after writing a checkpoint; run "
        "the experiment again to resume them"
        if stopped
        else "Interrupted: no job was running"
    )
