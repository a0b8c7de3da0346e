"""What a process of a job of several decides from SLURM's environment, without a cluster."""

import io

import pytest

from xpm_train.training import processes


@pytest.mark.parametrize(
    ("gpus", "tasks", "local", "expected"),
    [
        ("8", "8", "3", [3]),  # one process per GPU
        ("8", "1", "0", list(range(8))),  # one process per node: all of its GPUs
        ("8", "2(x2)", "1", [4, 5, 6, 7]),  # 2 nodes of 2 tasks
        ("0", "2", "1", None),  # no GPU: CPU devices
        ("", "2", "1", None),
    ],
)
def test_gpus_are_shared_by_the_tasks_of_a_node(monkeypatch, gpus, tasks, local, expected):
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", gpus)
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", tasks)
    monkeypatch.setenv("SLURM_LOCALID", local)
    assert processes.local_gpus() == expected


def test_process_counts_and_ranks(monkeypatch):
    for name in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert processes.slurm_processes() == 1 and not processes.other_process()
    assert processes.initialize() == 1  # one process: jax.distributed is not started
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "2")
    assert processes.slurm_processes() == 4 and processes.other_process()
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # this step runs one task
    assert processes.slurm_processes() == 1 and not processes.other_process()


def test_lines_carry_the_process():
    out = io.StringIO()
    stream = processes._Prefixed(out, "[process 1/2 on vm] ")
    stream.write("step 10/300\nstep ")
    stream.write("20/300\n")
    assert out.getvalue() == "[process 1/2 on vm] step 10/300\n[process 1/2 on vm] step 20/300\n"
