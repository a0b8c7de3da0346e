"""The pipeline on a real SLURM cluster (``scripts/slurm/start.sh``), through the real CLI.

Skipped unless a cluster answers: ``SLURM_CONF`` names its slurm.conf (``source DIR/env.sh``
after ``scripts/slurm/start.sh DIR``), or ``XPM_TRAIN_SLURM_DIR=DIR`` lets the tests start one
in DIR (and stop it afterwards if it was not running). ``.ci/run`` does the latter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pytest

from xpm_train.launchers.slurm_jobs import sacct_jobs
from xpm_train.tasks.checkpoint import load_checkpoint
from xpm_train.training.metrics import read_metrics

from .cli import job_folders
from .conftest import PROJECT

pytestmark = pytest.mark.slurm

SCRIPTS = PROJECT / "scripts" / "slurm"


def _answers(conf: str) -> bool:
    ping = subprocess.run(
        ["scontrol", "ping"], env={**os.environ, "SLURM_CONF": conf}, capture_output=True
    )
    return ping.returncode == 0 and b"is UP" in ping.stdout


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    """A SLURM cluster for the module's tests, or a skip saying how to get one."""
    folder = os.environ.get("XPM_TRAIN_SLURM_DIR")
    conf = os.environ.get("SLURM_CONF")
    with pytest.MonkeyPatch.context() as patch:
        if folder:
            conf = str(Path(folder).absolute() / "etc" / "slurm.conf")
            was_up = Path(conf).exists() and _answers(conf)
            subprocess.run([str(SCRIPTS / "start.sh"), folder], check=True, timeout=600)
            patch.setenv("SLURM_CONF", conf)
            yield
            if not was_up:
                subprocess.run([str(SCRIPTS / "stop.sh"), folder], check=False, timeout=300)
            return
        if not conf:
            pytest.skip(
                "no SLURM cluster: set XPM_TRAIN_SLURM_DIR=DIR to start one with "
                "scripts/slurm/start.sh DIR, or SLURM_CONF to use a running one (.ci/run does)"
            )
        if not _answers(conf):
            pytest.skip(f"SLURM_CONF={conf}, but `scontrol ping` gets no answer from slurmctld")
        yield


@pytest.fixture
def cancel_leftovers(tmp_path: Path) -> Iterator[None]:
    """Cancels the SLURM jobs of a failed test (those running in its folder)."""
    yield
    queue = subprocess.run(["squeue", "-h", "-o", "%A|%Z"], capture_output=True, text=True)
    ours = [
        line.split("|")[0]
        for line in queue.stdout.splitlines()
        if line.partition("|")[2].startswith(str(tmp_path))
    ]
    if ours:
        subprocess.run(["scancel", *ours], check=False)


@dataclass
class Run:
    """An ``experimaestro run-experiment`` process, its output in files."""

    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = None

    def wait(self, timeout: float = 600) -> Run:
        self.returncode = self.process.wait(timeout=timeout)
        return self

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def output(self) -> str:
        return (self.stderr + self.stdout)[-4000:]


def start(yaml: Path, workdir: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """Starts ``experimaestro run-experiment --workdir WORKDIR ARGS YAML`` with an isolated
    HOME, its output going to files next to WORKDIR."""
    home = workdir.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    out, err = workdir.with_suffix(".out"), workdir.with_suffix(".err")
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    process = subprocess.Popen(
        [*command, *args, str(yaml)],
        env={**os.environ, "HOME": str(home), **(env or {})},
        stdout=out.open("w"),
        stderr=err.open("w"),
        cwd=PROJECT,
    )
    return Run(process, out, err)


def without_speed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def same_parameters(folder: Path, reference: Path) -> None:
    expected = load_checkpoint(reference).params
    jax.tree.map(np.testing.assert_array_equal, expected, load_checkpoint(folder).params)


TINY_ON_SLURM = """
id: tiny-on-slurm
imports: [{project}/yaml/tiny.yaml]
dirty_git: ignore
launcher:
  default: {{slurm: {{partition: cpu, time: 10, interval: 1}}}}
  evaluation: {{slurm: {{partition: gpu}}}}
  report: "duration=10m & cpu(cores=1)"
"""


def tiny_on_slurm(folder: Path) -> Path:
    path = folder / "tiny-on-slurm.yaml"
    path.write_text(TINY_ON_SLURM.format(project=PROJECT))
    return path


def test_tiny_pipeline_runs_entirely_on_slurm(slurm_cluster, cancel_leftovers, tmp_path):
    local = start(PROJECT / "yaml" / "tiny.yaml", tmp_path / "local")
    slurm = start(
        tiny_on_slurm(tmp_path),
        tmp_path / "slurm",
        "--xpm-config-dir",
        str(PROJECT / "xpm-config"),
        env={"XPM_TRAIN_SLURM_INTERVAL": "1"},
    )
    assert slurm.wait().returncode == 0, slurm.output()
    assert local.wait().returncode == 0, local.output()
    assert "  evaluation: slurm (--nodes=1 --time=10 --partition=gpu; sacct every 1s)" in (
        slurm.stdout
    )
    assert "  report: slurm (--nodes=1 --time=0:10:0 --partition=cpu --cpus-per-task=1;" in (
        slurm.stdout
    )
    assert "Report: " in slurm.stdout

    jobs, reference = job_folders(tmp_path / "slurm"), job_folders(tmp_path / "local")
    assert {task: [f.name for f in folders] for task, folders in jobs.items()} == {
        task: [f.name for f in folders] for task, folders in reference.items()
    }
    assert sum(len(folders) for folders in jobs.values()) == 7
    for task, folders in jobs.items():
        for folder in folders:
            assert (folder / f"{task}.done").exists()
            (attempt,) = sacct_jobs(folder, task)  # one SLURM job per experimaestro job
            assert attempt.state == "COMPLETED" and attempt.job_id.isdigit()
            assert attempt.partition == ("gpu" if task == "evaluate" else "cpu")
    for task in ("pretrain", "klstage", "dpo"):
        (folder,), (local_folder,) = jobs[task], reference[task]
        assert without_speed(read_metrics(folder / "metrics.jsonl")) == without_speed(
            read_metrics(local_folder / "metrics.jsonl")
        )
    for folder, local_folder in zip(jobs["evaluate"], reference["evaluate"], strict=True):
        evaluation = json.loads((folder / "metrics.json").read_text())
        local_evaluation = json.loads((local_folder / "metrics.json").read_text())
        assert evaluation["datasets"] == local_evaluation["datasets"]
        assert evaluation["step"] == local_evaluation["step"]


PRETRAIN_ONLY = """
from typing import Any

import attrs
from experimaestro.experiments import ConfigurationBase, ExperimentHelper, configuration

from xpm_train.graph.dag import StageGraph
from xpm_train.graph.experiment import stage_launcher
from xpm_train.launchers import LauncherSection, planned_launchers
from xpm_train.planning.failures import raise_on_failed_jobs
from xpm_train.planning.hook import checked_configuration
from xpm_train.validation import Problems


@configuration()
class Configuration(ConfigurationBase):
    stages: dict[str, Any] = attrs.field(factory=dict)
    launcher: LauncherSection = attrs.field(factory=LauncherSection)


def run(helper: ExperimentHelper, cfg: Configuration) -> None:
    \"\"\"The stages only: no evaluation, no report.\"\"\"
    cfg = checked_configuration(cfg)
    graph = StageGraph(cfg.stages)
    own = {name: stage_launcher(graph.launcher(name)) for name in graph.sections}
    launchers = planned_launchers(cfg.launcher, own, helper.xp.run_mode)
    problems = Problems()
    graph.instances(lambda task, name: task.submit(**launchers.submit_options(name)), problems)
    assert not problems.found, problems.found
    helper.xp.wait()
    raise_on_failed_jobs(helper.xp)
"""

#: A tiny model trained for about 30 s on 2 cores (more than one 1-minute SLURM job can do
#: before it stops, 30 s before its limit).
PRETRAIN_YAML = """
id: pretrain-only
file: pretrain_only
pre_experiment: {project}/yaml/pre_experiment.py
dirty_git: ignore
stages:
  pretrain:
    kind: pretrain
    model: {{name: transformer, d_model: 32, n_layers: 1, n_heads: 2, max_seq_len: 32}}
    dataset: {{name: arithmetic, n_examples: 400, max_operand: 20}}
    schedule: {{name: cosine, lr: 1.0e-2, lr_min_ratio: 0.1, lr_warmup_steps: 5}}
    seq_len: 32
    batch_size: 8
    micro_batch_size: 4
    steps: 24000
    eval_interval: 6000
    checkpoint_interval: 4000
    log_interval: 2000
launcher:
  default: {{slurm: {{partition: cpu, time: 10, interval: 1}}}}
  max_retries: 6
"""


@pytest.fixture(scope="module")
def pretrain_yaml(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pretrain_only")
    (folder / "pretrain_only.py").write_text(PRETRAIN_ONLY)
    path = folder / "pretrain.yaml"
    path.write_text(PRETRAIN_YAML.format(project=PROJECT))
    return path


@pytest.fixture(scope="module")
def uninterrupted(pretrain_yaml, tmp_path_factory) -> Iterator[Run]:
    """The same pretraining job run locally, in one go: started once, while the first test
    that needs it runs its own experiment."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "ws"
    run = start(pretrain_yaml, workdir, "-c", "launcher.default=local")
    yield run
    if run.process.poll() is None:
        run.process.kill()


def reference_folder(run: Run) -> Path:
    if run.returncode is None:
        assert run.wait().returncode == 0, run.output()
    workdir = Path(run.process.args[run.process.args.index("--workdir") + 1])
    (folder,) = job_folders(workdir)["pretrain"]
    return folder


def test_time_limit_stops_requeues_and_resumes_to_the_same_parameters(
    slurm_cluster, cancel_leftovers, pretrain_yaml, uninterrupted, tmp_path
):
    run = start(pretrain_yaml, tmp_path / "ws", "-c", "launcher.default.slurm.time=1").wait()
    assert run.returncode == 0, run.output()
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    attempts = sacct_jobs(folder, "pretrain")
    assert len(attempts) >= 2, attempts
    # Every attempt but the last stopped itself before SLURM's limit (exit code 1), the last
    # one finished; SLURM never had to kill one (TIMEOUT).
    assert [a.state for a in attempts] == ["FAILED"] * (len(attempts) - 1) + ["COMPLETED"]
    assert "timed out - restarting" in run.stderr
    earlier = sorted(set(folder.glob("pretrain.*.out")) - {folder / "pretrain.out"})
    assert len(earlier) == len(attempts) - 1
    assert all("time limit: stopped at step " in log.read_text() for log in earlier)
    assert "resuming from checkpoint " in (folder / "pretrain.out").read_text()
    assert "pretrain done: 24000 steps" in (folder / "pretrain.out").read_text()

    reference = reference_folder(uninterrupted)
    assert folder.name == reference.name
    same_parameters(folder, reference)
    assert without_speed(read_metrics(folder / "metrics.jsonl")) == without_speed(
        read_metrics(reference / "metrics.jsonl")
    )


def test_cancelled_job_resumes_from_its_checkpoint_when_run_again(
    slurm_cluster, cancel_leftovers, pretrain_yaml, uninterrupted, tmp_path
):
    run = start(pretrain_yaml, tmp_path / "ws")
    deadline = time.monotonic() + 300
    while not list((tmp_path / "ws").glob("jobs/*/*/checkpoints/4000")):
        assert run.process.poll() is None, run.output()
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.2)
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    while not (attempts := sacct_jobs(folder, "pretrain")):  # slurmdbd may lag a few seconds
        assert time.monotonic() < deadline, "the running job is not in sacct"
        time.sleep(0.5)
    (running,) = attempts
    subprocess.run(["scancel", running.job_id], check=True)
    assert run.wait().returncode == 1, run.output()
    assert f"  slurm:  SLURM job {running.job_id} (partition cpu): CANCELLED" in run.stderr
    assert f"  log:    {folder / 'pretrain.err'}" in run.stderr

    again = start(pretrain_yaml, tmp_path / "ws").wait()
    assert again.returncode == 0, again.output()
    log = (folder / "pretrain.out").read_text()
    assert f"resuming from checkpoint {folder / 'checkpoints'}/" in log
    assert [a.state.split()[0] for a in sacct_jobs(folder, "pretrain")] == [
        "CANCELLED",
        "COMPLETED",
    ]
    same_parameters(folder, reference_folder(uninterrupted))


def test_failed_job_names_its_slurm_job_and_nothing_after_it_is_submitted(
    slurm_cluster, cancel_leftovers, tmp_path
):
    run = start(
        tiny_on_slurm(tmp_path),
        tmp_path / "ws",
        "--xpm-config-dir",
        str(PROJECT / "xpm-config"),
        "--env",
        "XLA_FLAGS",
        "--xla_no_such_flag=1",
    ).wait()
    assert run.returncode == 1, run.output()
    jobs = job_folders(tmp_path / "ws")
    (pretrain,) = jobs["pretrain"]
    (attempt,) = sacct_jobs(pretrain, "pretrain")
    assert attempt.state == "FAILED"
    message = run.stderr[run.stderr.index("Experiment tiny-on-slurm:") :]
    assert message.startswith("Experiment tiny-on-slurm: 1 job failed, 6 jobs not run")
    assert (
        f"failed: error (no pretrain.failed marker: the process crashed or was killed)\n"
        f"  slurm:  SLURM job {attempt.job_id} (partition cpu): FAILED, exit code 1:0\n"
        f"  folder: {pretrain}\n"
        f"  log:    {pretrain / 'pretrain.err'}\n"
    ) in message
    assert "Unknown flag in XLA_FLAGS: --xla_no_such_flag=1" in message
    assert message.count("not run: dependency failed") == 6
    for task, folders in jobs.items():
        for folder in folders:
            if task != "pretrain":
                assert sacct_jobs(folder, task) == []  # never submitted to SLURM


def test_options_the_cluster_refuses_stop_the_experiment_before_anything_runs(
    slurm_cluster, tmp_path
):
    run = start(
        tiny_on_slurm(tmp_path),
        tmp_path / "ws",
        "--xpm-config-dir",
        str(PROJECT / "xpm-config"),
        "-c",
        "launcher.evaluation.slurm.gpus_per_node=1",
        "-c",
        "stages.kl.launcher={slurm: {partition: nope}}",
    ).wait()
    assert run.returncode == 1, run.output()
    assert "Experiment failed: 2 launcher problems:\n" in run.stderr
    assert (
        "  - stages.kl.launcher: SLURM refuses --nodes=1 --time=10 --partition=nope: "
        "sbatch: error: invalid partition specified: nope"
    ) in run.stderr
    assert (
        "  - launcher.evaluation: SLURM refuses --nodes=1 --time=10 --partition=gpu "
        "--gpus-per-node=1: sbatch: error: Invalid generic resource (gres) specification"
    ) in run.stderr
    assert not (tmp_path / "ws" / "jobs").exists()
