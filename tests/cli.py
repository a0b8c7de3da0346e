"""Running the real ``experimaestro run-experiment`` CLI in a subprocess, for the tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import PROJECT

SIMULATING = re.compile(r"Simulating (\S+/[0-9a-f]{64})")


def run_cli(
    yaml: Path,
    workdir: Path,
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    python_args: tuple[str, ...] = ("-m", "experimaestro"),
    cwd: Path = PROJECT,
) -> subprocess.CompletedProcess:
    """``experimaestro run-experiment --workdir WORKDIR ARGS YAML`` with ``HOME=home`` (an
    isolated experimaestro settings folder) and no cost calibration (a test that wants one
    sets ``XPM_TRAIN_CALIBRATE=1`` in ``env``)."""
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, *python_args, "run-experiment", "--workdir", str(workdir), *args]
    return subprocess.run(
        [*command, str(yaml)],
        env={**os.environ, "HOME": str(home), "XPM_TRAIN_CALIBRATE": "0", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def run_experiment(
    workdir: Path, home: Path, *args: str, yaml: str = "tiny.yaml"
) -> subprocess.CompletedProcess:
    """:func:`run_cli` on one of the project's YAML files (or any path)."""
    return run_cli(PROJECT / "yaml" / yaml, workdir, home, *args)


def job_folders(workdir: Path) -> dict[str, list[Path]]:
    """Job folders of ``workdir`` by short task name (``pretrain``, ``klstage``, ...)."""
    return {
        task.name.split(".")[-1]: sorted(task.iterdir()) for task in (workdir / "jobs").iterdir()
    }


def job_ids(result: subprocess.CompletedProcess) -> list[str]:
    """The ``<task>/<hash>`` of every job a dry run simulated, sorted."""
    return sorted(SIMULATING.findall(result.stdout + result.stderr))
