"""The checkpoint of a run's best evaluation, kept in a folder of its own.

With ``best_metric`` set, every evaluation whose value of that metric improves on the best so
far (strictly: the first of equal values stays) saves the training state into the best
checkpoint folder (one orbax checkpoint, the previous best removed), its ``meta`` holding the
metric's value; then ``<folder>.json`` (a :class:`~xpm_train.training.result.BestRecord`) is
rewritten atomically. The orbax checkpoint is the source of truth: a resumed run restores the
best so far from it (its step and value) and rewrites the record, so a kill between the save
and the record loses nothing. Evaluations a resumed run replays (steps up to the best one)
were already compared in the earlier attempt and are not compared again.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xpm_train.training.checkpoint import CheckpointStore
from xpm_train.training.result import BEST_MODES, BestRecord, best_record_path


class BestCheckpoint:
    """Saves the state of the evaluations where ``metric`` improves, under ``directory``
    (every process of a job takes part in the save; only a ``writer`` writes the record)."""

    def __init__(self, directory: Path, metric: str, mode: str, writer: bool = True) -> None:
        if mode not in BEST_MODES:
            raise ValueError(f"best_mode={mode!r} is not one of {', '.join(BEST_MODES)}")
        self.metric, self.mode, self.writer = metric, mode, writer
        self.store = CheckpointStore(directory, keep=1)
        self.record_path = best_record_path(self.store.directory)
        self.record: BestRecord | None = None
        latest = self.store.latest_step()
        if latest is not None:
            meta = self.store.read_meta(latest)
            self.record = self._record(latest, float(meta["value"]))
            if writer:
                self.record.write(self.record_path)

    def _record(self, step: int, value: float) -> BestRecord:
        folder = str(self.store.directory / str(step))
        return BestRecord(self.metric, self.mode, step, value, folder)

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.record is None:
            return True
        best = self.record.value
        return value < best if self.mode == "min" else value > best

    def consider(self, state: Any, step: int, metrics: dict[str, float]) -> bool:
        """Save ``state`` as the best if the evaluation ``metrics`` of ``step`` improve on the
        best so far; whether it did."""
        if self.metric not in metrics:
            raise ValueError(
                f"best_metric {self.metric!r} is not a held-out metric of this stage; they "
                f"are: {', '.join(sorted(metrics))}"
            )
        value = float(metrics[self.metric])
        if self.record is not None and step <= self.record.step:
            return False  # replayed after a resume: compared in the earlier attempt
        if not self.improves(value):
            return False
        meta = {"step": step, "metric": self.metric, "mode": self.mode, "value": value}
        self.store.save(state, meta)
        self.record = self._record(step, value)
        if self.writer:
            self.record.write(self.record_path)
        return True

    def summary(self) -> dict[str, Any] | None:
        """The best record as a mapping (for ``result.json``), None before any evaluation."""
        return None if self.record is None else asdict(self.record)

    def describe(self) -> str:
        """One line on the best evaluation, for the job's log."""
        if self.record is None:
            return f"best {self.metric}: no evaluation yet"
        record = self.record
        return f"best {self.metric} {record.value:.4f} at step {record.step}: {record.checkpoint}"

    def close(self) -> None:
        self.store.close()
