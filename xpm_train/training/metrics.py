"""Metrics as JSON lines, one record per logged step or evaluation."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends records to ``path``; on resume, drops records past the restored step so the
    file reads as if the run had never been interrupted. ``listener`` gets each record written
    (e.g. a wandb run)."""

    def __init__(
        self,
        path: Path,
        resume_step: int = 0,
        listener: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.path = Path(path)
        self.listener = listener
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        with self.path.open("w") as out:
            for record in kept:
                out.write(json.dumps(record) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: _json_value(v) for k, v in record.items()}
        with self.path.open("a") as out:
            out.write(json.dumps(clean) + "\n")
        if self.listener is not None:
            self.listener(clean)


class NoMetricsLog:
    """What processes other than the first of a job log: nothing (process 0 writes)."""

    def write(self, record: dict[str, Any]) -> None:
        pass


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a metrics file (optionally only those whose ``kind`` matches)."""
    path = Path(path)
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if kind is None or r.get("kind") == kind]
