"""``xpm-train results WORKDIR``: every evaluation of a workdir in one table."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

from .cli import run_cli
from .conftest import PROJECT

PRETRAIN = f"""
imports: [{PROJECT}/yaml/tiny.yaml]
dirty_git: ignore
stages: {{pretrain: {{steps: 20}}, kl: null, dpo: null}}
"""


def results(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "xpm_train.cli", "results", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_runs_of_an_experiment_compare_in_one_table(tmp_path):
    yaml = tmp_path / "pretrain.yaml"
    yaml.write_text(PRETRAIN)
    for seed in (0, 1):
        run = run_cli(
            yaml, tmp_path / "ws", tmp_path / "home", "-c", f"stages.pretrain.seed={seed}"
        )
        assert run.returncode == 0, run.stderr[-3000:]
    markdown = results(str(tmp_path / "ws"))
    assert markdown.returncode == 0, markdown.stderr
    lines = markdown.stdout.splitlines()
    assert lines[0] == "| experiment | run | stage | step | dataset | loss | exact match | seed |"
    assert len(lines) == 2 + 2  # header, rule, one row per run (one held-out dataset)
    assert all(
        line.startswith("| xpm-train-tiny | 2") and "| pretrain | 20 | pretrain |" in line
        for line in lines[2:]
    )
    table = list(csv.DictReader(io.StringIO(results(str(tmp_path / "ws"), "--csv").stdout)))
    assert [row["seed"] for row in table] == ["0", "1"]
    assert all(float(row["loss"]) > 0 for row in table)

    missing = results(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not an experimaestro workdir" in missing.stderr
