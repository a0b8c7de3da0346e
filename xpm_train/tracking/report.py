"""The training jobs' own curves (``curves.png`` next to their metrics) in the report."""

from __future__ import annotations

import shutil
from pathlib import Path

from xpm_train.reporting.plots import JOB_CURVES, job_curves
from xpm_train.reporting.sweeps import file_name
from xpm_train.training.metrics import read_metrics


def embed_job_curves(metrics: dict[str, Path | None], folder: Path) -> list[str]:
    """Copy each stage's ``curves.png`` (drawn from its ``metrics.jsonl`` when the job wrote
    none) into the report ``folder`` as ``curves_<stage>.png``; the Markdown lines showing
    them."""
    lines = []
    for stage, path in metrics.items():
        if path is None or not read_metrics(Path(path)):
            continue
        target = Path(folder) / f"curves_{file_name(stage)}.png"
        source = Path(path).parent / JOB_CURVES
        if source.exists():
            shutil.copyfile(source, target)
        else:
            job_curves(read_metrics(Path(path)), target, title=stage)
        lines += [f"`{stage}` training curves:", "", f"![{stage} curves]({target.name})", ""]
    return lines
