"""The typed outcome of a training run, written as ``result.json`` in the job folder, and the
record of its best evaluation (``best_checkpoint.json``, beside the best checkpoint's folder)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: The values of ``best_mode``: whether the best value of ``best_metric`` is its min or max.
BEST_MODES = ("min", "max")


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Write ``value`` to ``path`` atomically (a temporary file renamed over it)."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


@dataclass(frozen=True)
class TrainResult:
    step: int
    """Number of optimizer steps done"""
    checkpoint: str
    """Folder of the final checkpoint"""
    metrics: dict[str, float] = field(default_factory=dict)
    """Final training metrics (``loss``, ``lr``...) and held-out ones (``eval/loss``...)"""
    wall_time_s: float = 0.0
    """Wall time of the last attempt of the job (a resumed job counts from its restart)"""
    best: dict[str, Any] | None = None
    """The best evaluation (a :class:`BestRecord` as a mapping) when the stage keeps one"""

    def write(self, path: Path) -> None:
        _write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> TrainResult:
        return cls(**json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class BestRecord:
    """The evaluation where ``metric`` was best so far, and the checkpoint saved there."""

    metric: str
    mode: str
    """``min`` or ``max``"""
    step: int
    value: float
    checkpoint: str
    """Folder of the checkpoint of ``step`` (in the best checkpoint folder)"""

    def write(self, path: Path) -> None:
        _write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> BestRecord:
        return cls(**json.loads(Path(path).read_text()))


def best_record_path(folder: Path) -> Path:
    """The record of a best checkpoint folder: ``<folder>.json`` beside it."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".json")


def best_step(folder: Path) -> int:
    """The step of the best checkpoint in ``folder`` (from its record)."""
    path = best_record_path(folder)
    if not path.is_file():
        raise FileNotFoundError(
            f"no record of a best checkpoint at {path}: the job that writes it has not "
            "finished, or its stage has no best_metric"
        )
    return BestRecord.read(path).step
