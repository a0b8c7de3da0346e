"""What the experiment prints while its jobs run, and Ctrl-C, through the real CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from .cli import job_folders, run_cli
from .conftest import PROJECT

PRETRAIN = f"""
imports: [{PROJECT}/yaml/tiny.yaml]
dirty_git: ignore
stages: {{pretrain: {{steps: STEPS, checkpoint_interval: 100}}, kl: null, dpo: null}}
"""


def test_one_line_per_job_and_a_count_of_reused_jobs(tmp_path):
    yaml = tmp_path / "pretrain.yaml"
    yaml.write_text(PRETRAIN.replace("STEPS", "40"))
    bad = run_cli(yaml, tmp_path / "ws", tmp_path / "home", "-c", "launcher.local_jobs=0")
    assert bad.returncode == 1 and "launcher.local_jobs: 0 must be >= 1" in bad.stderr
    # One local job at a time: the same jobs (identities) as without the limit, rerun below.
    first = run_cli(yaml, tmp_path / "ws", tmp_path / "home", "-c", "launcher.local_jobs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    label = f"pretrain/{folder.name[:8]}"
    assert re.search(rf"\] {label}: running \(log {folder}/pretrain.out\)", first.stdout)
    done = re.search(
        rf"\] {label}: done: 40 steps in \d+s: loss [\d.]+, eval/loss [\d.]+ ", first.stdout
    )
    assert done, first.stdout[-3000:]
    assert re.search(
        r"\] evaluate pretrain/[0-9a-f]{8}: done: pretrain data: loss [\d.]+, exact match",
        first.stdout,
    )
    assert "3 jobs: 3 run, 0 reused from earlier runs" in first.stdout
    assert "Submitting job" not in first.stderr and "ended with code" not in first.stderr
    assert "[absl]" not in (folder / "pretrain.err").read_text()  # orbax's INFO lines

    again = run_cli(yaml, tmp_path / "ws", tmp_path / "home")
    assert "3 jobs: 0 run, 3 reused from earlier runs" in again.stdout
    assert "running (log" not in again.stdout


def test_ctrl_c_stops_the_running_jobs_with_a_checkpoint(tmp_path):
    yaml = tmp_path / "pretrain.yaml"
    yaml.write_text(PRETRAIN.replace("STEPS", "5000"))
    (tmp_path / "home").mkdir()
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir"]
    driver = subprocess.Popen(
        [*command, str(tmp_path / "ws"), str(yaml)],
        env={**os.environ, "HOME": str(tmp_path / "home"), "XPM_TRAIN_CALIBRATE": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )
    deadline = time.monotonic() + 300
    while not list((tmp_path / "ws").glob("jobs/*/*/checkpoints/100")):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=180)
    assert driver.returncode == 1, stderr[-3000:]
    assert "Ctrl-C: stopping the running jobs of this experiment" in stderr
    assert "Interrupted: 1 job(s) stopped, each after writing a checkpoint" in stderr
    assert "Traceback" not in stderr
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    log = (folder / "pretrain.out").read_text()
    stopped = re.search(r"SIGTERM: stopped at step (\d+)/5000 after writing checkpoint", log)
    assert stopped, log[-2000:]
    assert (folder / "checkpoints" / stopped.group(1)).is_dir()
    assert (folder / "pretrain.failed").exists()
    for _ in range(100):  # no job process left behind (it exits once its markers are written)
        found = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True)
        if not found.stdout.strip():
            break
        time.sleep(0.1)
    assert not found.stdout.strip(), subprocess.run(
        ["ps", "-fp", found.stdout.split()[0]], capture_output=True, text=True
    ).stdout
