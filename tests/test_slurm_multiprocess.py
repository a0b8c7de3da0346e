"""One training job of two JAX processes through the real SLURM cluster (yaml/multiprocess.yaml):
the losses of one process, resubmission after SIGTERM, two nodes of one task (the ``multi``
partition of the local cluster: this machine twice, two slurmd), and a prompt failure when a
process dies.

Skipped without a cluster, as the other SLURM tests (``tests/test_slurm.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xpm_train.launchers.slurm_jobs import sacct_jobs
from xpm_train.training.metrics import read_metrics

from .cli import job_folders
from .conftest import PROJECT
from .test_slurm import Run, same_parameters, start, without_speed
from .test_slurm import cancel_leftovers as cancel_leftovers  # fixtures
from .test_slurm import slurm_cluster as slurm_cluster

pytestmark = pytest.mark.slurm

MULTIPROCESS = PROJECT / "yaml" / "multiprocess.yaml"
#: The same experiment in one local process.
ONE_PROCESS = """
imports: [{project}/yaml/multiprocess.yaml]
dirty_git: ignore
launcher: {{default: local}}
stages: {{pretrain: {{launcher: local}}}}
"""


#: yaml/multiprocess.yaml with its pretrain job on 2 nodes x 1 task instead of 1 node x 2 tasks
#: (the default launcher's time, cpus_per_task and interval are merged under it).
TWO_NODES = """
imports: [{project}/yaml/multiprocess.yaml]
dirty_git: ignore
stages:
  pretrain:
    launcher: {{slurm: {{partition: multi, nodes: 2, ntasks_per_node: 1}}}}
"""


@pytest.fixture(scope="module")
def two_processes(slurm_cluster, tmp_path_factory) -> Iterator[Run]:
    """yaml/multiprocess.yaml as it is (1 node x 2 tasks), uninterrupted."""
    run = start(MULTIPROCESS, tmp_path_factory.mktemp("two_processes") / "ws")
    yield run
    if run.process.poll() is None:
        run.process.kill()


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Iterator[Run]:
    """The experiment in one local process, started while the first test runs its own."""
    folder = tmp_path_factory.mktemp("one_process")
    path = folder / "one.yaml"
    path.write_text(ONE_PROCESS.format(project=PROJECT))
    run = start(path, folder / "ws")
    yield run
    if run.process.poll() is None:
        run.process.kill()


def pretrain_folder(run: Run) -> Path:
    if run.returncode is None:
        assert run.wait().returncode == 0, run.output()
    workdir = Path(run.process.args[run.process.args.index("--workdir") + 1])
    (folder,) = job_folders(workdir)["pretrain"]
    return folder


def losses(folder: Path) -> list[float]:
    return [record["loss"] for record in read_metrics(folder / "metrics.jsonl", "train")]


def running_attempt(run: Run, workdir: Path, checkpoint: int) -> tuple[Path, str]:
    """The pretrain job's folder and SLURM job id, once it wrote ``checkpoint``."""
    deadline = time.monotonic() + 300
    while not list(workdir.glob(f"jobs/*/*/checkpoints/{checkpoint}")):
        assert run.process.poll() is None, run.output()
        assert time.monotonic() < deadline, f"no checkpoint {checkpoint} after 300 s"
        time.sleep(0.2)
    (folder,) = job_folders(workdir)["pretrain"]
    while not (attempts := sacct_jobs(folder, "pretrain")):  # slurmdbd may lag a few seconds
        assert time.monotonic() < deadline, "the running job is not in sacct"
        time.sleep(0.5)
    return folder, attempts[-1].job_id


def job_steps(job_id: str, fields: str) -> list[str]:
    """sacct's lines (``|``-separated ``fields``) of a SLURM job and its steps."""
    command = ["sacct", "-n", "-P", "-j", job_id, f"--format={fields}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


def test_two_processes_match_one_and_resume_after_sigterm(
    slurm_cluster, cancel_leftovers, one_process, two_processes, tmp_path
):
    # Uninterrupted: one SLURM job, one srun step of 2 tasks, the losses of one process.
    two = pretrain_folder(two_processes)
    (attempt,) = sacct_jobs(two, "pretrain")
    steps = job_steps(attempt.job_id, "JobID,NTasks,State")
    assert f"{attempt.job_id}.0|2|COMPLETED" in steps, steps
    log = (two / "pretrain.out").read_text()
    assert "[process 1/2 on " in log and "jax.distributed: process 1 of 2" in log
    assert "mesh data 1 x fsdp 2 x model 1 over 2 device(s) in 2 process(es)" in log
    one = pretrain_folder(one_process)
    assert one.name == two.name  # the same job: where it runs is not part of its identity
    # The same batches: equal losses while training is smooth (80 steps, within 1e-7 here);
    # later, float32 sums taken in another order (two devices) drift apart at the loss drop.
    assert losses(two)[:8] == pytest.approx(losses(one)[:8], rel=1e-5)
    assert losses(two)[-1] == pytest.approx(losses(one)[-1], rel=2e-2)

    # SIGTERM mid-run (as before a preemption): a checkpoint, a resubmitted job that resumes
    # and ends with the parameters and metrics of the uninterrupted run.
    signalled = start(MULTIPROCESS, tmp_path / "signalled")
    folder, job_id = running_attempt(signalled, tmp_path / "signalled", 50)
    subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
    assert signalled.wait().returncode == 0, signalled.output()
    attempts = sacct_jobs(folder, "pretrain")
    assert [a.state for a in attempts] == ["FAILED", "COMPLETED"], attempts
    (earlier,) = set(folder.glob("pretrain.*.out")) - {folder / "pretrain.out"}
    assert "SIGTERM: stopped at step " in earlier.read_text()
    assert "resuming from checkpoint " in (folder / "pretrain.out").read_text()
    same_parameters(folder, two)
    assert without_speed(read_metrics(folder / "metrics.jsonl")) == without_speed(
        read_metrics(two / "metrics.jsonl")
    )


@pytest.fixture(scope="module")
def multi_partition(slurm_cluster) -> None:
    """The cluster's `multi` partition, or a skip if it has none of two nodes or more."""
    nodes = subprocess.run(
        ["sinfo", "-h", "-p", "multi", "-o", "%D"], capture_output=True, text=True
    ).stdout.split()
    if sum(int(count) for count in nodes if count.isdigit()) < 2:
        pytest.skip(
            "the SLURM cluster has no `multi` partition of 2 nodes: run scripts/slurm/start.sh "
            "DIR again (an older one started only 1 node; SECOND_NODE= starts no second one)"
        )


@pytest.mark.slow  # a third SLURM pipeline, about a minute (pytest -m slow, with a cluster)
def test_two_nodes_of_one_task_match_one_node_of_two_tasks(
    slurm_cluster, multi_partition, cancel_leftovers, two_processes, tmp_path
):
    path = tmp_path / "two-nodes.yaml"
    path.write_text(TWO_NODES.format(project=PROJECT))
    two_nodes = start(path, tmp_path / "two-nodes")
    assert two_nodes.wait().returncode == 0, two_nodes.output()
    assert "  pretrain: slurm (--nodes=2 --time=20 --partition=multi " in two_nodes.stdout

    folder = pretrain_folder(two_nodes)
    (attempt,) = sacct_jobs(folder, "pretrain")
    assert attempt.state == "COMPLETED" and attempt.partition == "multi", attempt
    steps = job_steps(attempt.job_id, "JobID,NTasks,NNodes,State")
    assert f"{attempt.job_id}.0|2|2|COMPLETED" in steps, steps
    log = (folder / "pretrain.out").read_text()
    assert "[process 0/2 on " in log and "[process 1/2 on " in log, log[-2000:]
    assert "mesh data 1 x fsdp 2 x model 1 over 2 device(s) in 2 process(es)" in log

    reference = pretrain_folder(two_processes)
    assert reference.name == folder.name  # where a job runs is not part of its identity
    # The same mesh and batches on the same devices: the same losses.
    assert losses(folder)[:8] == pytest.approx(losses(reference)[:8], rel=1e-5)


@pytest.mark.slow  # about 30 s (pytest -m slow, with a cluster)
def test_a_process_that_dies_fails_the_job_at_once(slurm_cluster, cancel_leftovers, tmp_path):
    run = start(MULTIPROCESS, tmp_path / "ws")
    folder, job_id = running_attempt(run, tmp_path / "ws", 50)
    killed = False
    for pid in subprocess.run(
        ["pgrep", "-f", "pretrain.py"], capture_output=True, text=True
    ).stdout.split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if b"SLURM_PROCID=1" in environ and f"SLURM_JOB_ID={job_id}".encode() in environ:
            os.kill(int(pid), signal.SIGKILL)
            killed = True
    assert killed, "process 1 of the job was not found"
    began = time.monotonic()
    assert run.wait(timeout=120).returncode == 1, run.output()
    assert time.monotonic() - began < 60  # not after a heartbeat timeout or the time limit
    assert "first process to fail: task 1 on node " in run.stderr, run.output()
    assert f"  log:    {folder / 'pretrain.err'}" in run.stderr
