"""SIGKILL to a training job at chosen moments (mid-run, during a checkpoint save, right after
the final save), then reruns: every run ends with the parameters of an uninterrupted run and
nothing earlier lost (real job processes, through the real CLI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .cli import job_folders
from .conftest import PROJECT
from .test_preemption import assert_same_run, job_process

PRETRAIN_ONLY = f"""
imports: [{PROJECT}/yaml/tiny.yaml]
dirty_git: ignore
stages:
  pretrain: {{steps: 600, checkpoint_interval: 25, eval_interval: 200, log_interval: 25,
              keep_checkpoints: 3}}
  kl: null
  dpo: null
"""


def start(yaml: Path, workdir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    (workdir.parent / "home").mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(workdir.parent / "home"), "XPM_TRAIN_CALIBRATE": "0"}
    return subprocess.Popen(
        [*command, str(yaml)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )


def kill_when(run: subprocess.Popen, workdir: Path, ready: Callable[[Path], bool]) -> bool:
    """SIGKILL the pretrain job as soon as ``ready(its folder)``; False if it ended first."""
    deadline = time.monotonic() + 300
    folder, pid = None, None
    while run.poll() is None and time.monotonic() < deadline:
        if pid is None:
            folders = (
                job_folders(workdir).get("pretrain", []) if (workdir / "jobs").exists() else []
            )
            try:
                folder, pid = (folders[0], job_process(folders[0])) if folders else (None, None)
            except AssertionError:  # the job process has not started yet
                pass
            time.sleep(0.01)
        elif folder is not None and ready(folder):
            os.kill(pid, signal.SIGKILL)
            run.communicate(timeout=300)
            return True
    run.communicate(timeout=300)
    return False


def saving(folder: Path) -> bool:
    """Whether orbax is writing a checkpoint (its temporary folder exists)."""
    return any("orbax-checkpoint-tmp" in name for name in os.listdir(folder / "checkpoints"))


@pytest.mark.slow  # about a minute: four runs of a 600-step job (pytest -m slow)
def test_sigkill_at_any_moment_then_rerun_ends_like_an_uninterrupted_run(tmp_path):
    yaml = tmp_path / "pretrain.yaml"
    yaml.write_text(PRETRAIN_ONLY)
    reference = start(yaml, tmp_path / "reference")
    workdir = tmp_path / "ws"
    moments = {
        "mid-run": lambda folder: (folder / "checkpoints" / "100").is_dir(),
        "during a save": saving,
        "after the final save": lambda folder: (folder / "checkpoints" / "600").is_dir(),
    }  # fmt: skip
    killed = [
        name for name, ready in moments.items() if kill_when(start(yaml, workdir), workdir, ready)
    ]
    assert killed == list(moments), killed
    (folder,) = job_folders(workdir)["pretrain"]
    assert not (folder / "result.json").exists()  # killed after its last save, before the end
    final = start(yaml, workdir)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr[-3000:]
    assert "resuming from checkpoint" in (folder / "pretrain.out").read_text()

    assert_same_run(reference, tmp_path / "reference", folder)
