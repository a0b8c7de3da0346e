"""Metrics as JSON lines, one record per logged step or evaluation."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends records to ``path``; on resume, drops records past the restored step so the
    file reads as if the run had never been interrupted (rewritten atomically: a temporary file
    renamed over it). ``listener`` gets each record written (e.g. a wandb run)."""

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
        partial = self.path.with_name(f".{self.path.name}.partial")
        with partial.open("w") as out:
            for record in kept:
                out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path)

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


class MetricsFileError(ValueError):
    """A metrics file with a line that is not a JSON record (other than a cut last line)."""


def read_metrics(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a metrics file (optionally only those whose ``kind`` matches). A last
    line cut short (a job killed while writing it) is left out."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # cut short: the record was not complete
            raise MetricsFileError(
                f"{path}, line {number}: not a JSON record ({error.msg}); the file is damaged: "
                "delete the line, or the job folder to train again"
            ) from None
    return [r for r in records if kind is None or r.get("kind") == kind]
