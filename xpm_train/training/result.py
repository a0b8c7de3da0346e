"""The typed outcome of a training run, written as ``result.json`` in the job folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


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

    def write(self, path: Path) -> None:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> TrainResult:
        return cls(**json.loads(Path(path).read_text()))
