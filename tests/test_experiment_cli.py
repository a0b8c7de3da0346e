"""End to end: the real `experimaestro run-experiment` CLI on our YAML files, in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

from xpm_train.training.metrics import read_metrics

from .conftest import PROJECT


def run_experiment(
    workdir: Path, home: Path, *args: str, yaml: str = "tiny.yaml"
) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    command = [
        sys.executable,
        "-m",
        "experimaestro",
        "run-experiment",
        "--workdir",
        str(workdir),
        *args,
        str(PROJECT / "yaml" / yaml),
    ]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, cwd=PROJECT
    )


def test_tiny_experiment_trains_then_reruns_nothing(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    first = run_experiment(workdir, home)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = list((workdir / "jobs" / "xpm_train.tasks.pretrain.pretrain").iterdir())
    assert len(jobs) == 1
    job = jobs[0]
    assert (job / "pretrain.done").exists(), (job / "pretrain.err").read_text()[-3000:]
    losses = [r["loss"] for r in read_metrics(job / "metrics.jsonl", "train")]
    assert losses[-1] < 0.8 * losses[0]
    assert "pretrain done: 40 steps" in (job / "pretrain.out").read_text()
    assert (job / "checkpoints" / "40").is_dir()
    assert "ENVIRONMENTAL IMPACT TRACKING DISABLED" not in first.stderr

    stamp = (job / "pretrain.out").stat().st_mtime_ns
    second = run_experiment(workdir, home)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Process started" not in second.stderr + second.stdout
    assert (job / "pretrain.out").stat().st_mtime_ns == stamp
    assert len(list(job.parent.iterdir())) == 1


def test_full_experiment_plans_one_pretrain_job(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    plan = run_experiment(
        workdir, home, "--run-mode", "dry_run", "-c", "pretrain.steps=1200", yaml="full.yaml"
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "Simulating xpm_train.tasks.pretrain.pretrain/" in plan.stdout + plan.stderr
    assert "checkpoints/1200" in plan.stdout
    assert not (workdir / "jobs").exists()
