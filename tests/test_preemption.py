"""SIGTERM to a local training job: a checkpoint, a clear failure, and a rerun that resumes to
the parameters of an uninterrupted run (real job processes through the real CLI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from xpm_train.tasks.checkpoint import load_checkpoint
from xpm_train.training.metrics import read_metrics

from .cli import job_folders
from .conftest import PROJECT

PRETRAIN_ONLY = """
imports: [{project}/yaml/tiny.yaml]
dirty_git: ignore
stages:
  pretrain: {{steps: 600, checkpoint_interval: 200, eval_interval: 300, log_interval: 100}}
  kl: null
  dpo: null
"""


def start(yaml: Path, workdir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    return subprocess.Popen(
        [*command, str(yaml)],
        env={**os.environ, "HOME": str(home), "XPM_TRAIN_CALIBRATE": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )


def assert_same_run(reference: subprocess.Popen, workdir: Path, folder: Path) -> None:
    """The pretrain job of the ``reference`` run (in ``workdir``) and the one in ``folder``
    end with the same parameters and the same training losses."""
    _, stderr = reference.communicate(timeout=300)
    assert reference.returncode == 0, stderr[-3000:]
    (expected,) = job_folders(workdir)["pretrain"]
    jax.tree.map(
        np.testing.assert_array_equal,
        load_checkpoint(expected).params,
        load_checkpoint(folder).params,
    )
    losses = [
        [r["loss"] for r in read_metrics(f / "metrics.jsonl", "train")] for f in (expected, folder)
    ]
    assert losses[0] == losses[1]


def job_process(folder: Path) -> int:
    """The pid of the job process running in ``folder``."""
    found = subprocess.run(["pgrep", "-f", "pretrain.py"], capture_output=True, text=True)
    for pid in found.stdout.split():
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == folder.resolve():
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no job process runs in {folder}")


def test_sigterm_writes_a_checkpoint_and_a_rerun_resumes(tmp_path):
    yaml = tmp_path / "pretrain.yaml"
    yaml.write_text(PRETRAIN_ONLY.format(project=PROJECT))
    reference = start(yaml, tmp_path / "reference")
    signalled = start(yaml, tmp_path / "ws")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "ws").glob("jobs/*/*/checkpoints/200")):
        assert signalled.poll() is None, signalled.communicate()
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.1)
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    os.kill(job_process(folder), signal.SIGTERM)
    _, stderr = signalled.communicate(timeout=300)
    assert signalled.returncode == 1, stderr[-3000:]
    log = (folder / "pretrain.out").read_text()
    assert "received signal 15: stopping after this step with a checkpoint" in log
    stopped = next(line for line in log.splitlines() if line.startswith("SIGTERM: stopped at"))
    step = int(stopped.split("step ")[1].split("/")[0])
    assert 200 <= step < 600 and (folder / "checkpoints" / str(step)).is_dir()
    assert "running the experiment again resumes from it" in stderr
    assert "Traceback" not in stderr

    again = start(yaml, tmp_path / "ws")
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-3000:]
    assert f"resuming from checkpoint {folder / 'checkpoints' / str(step)}" in (
        (folder / "pretrain.out").read_text()
    )
    assert_same_run(reference, tmp_path / "reference", folder)
