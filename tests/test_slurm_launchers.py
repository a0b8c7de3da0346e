"""The ``launcher:`` section without a cluster: kinds, merging, errors at planning time,
requirements resolved by the example ``xpm-config/launchers.py``."""

from pathlib import Path

import pytest
from experimaestro.launcherfinder.registry import LauncherRegistry
from experimaestro.launchers.direct import DirectLauncher
from experimaestro.launchers.slurm import SlurmLauncher

from xpm_train.launchers import (
    LauncherBlock,
    LauncherError,
    LauncherSection,
    SlurmSection,
    stage_launchers,
)
from xpm_train.launchers.resolve import validate_cluster, validate_installation

from .cli import run_experiment
from .conftest import PROJECT


@pytest.fixture
def config_dir():
    """Sets experimaestro's configuration folder (where launchers.py is looked for); restores
    it afterwards."""
    before = LauncherRegistry.CURRENT_CONFIG_DIR

    def use(path: Path) -> None:
        LauncherRegistry.set_config_dir(path)

    yield use
    LauncherRegistry.CURRENT_CONFIG_DIR = before


def slurm(**options) -> LauncherBlock:
    return LauncherBlock(slurm=SlurmSection(**options))


def test_stage_launchers_merge_slurm_blocks_over_the_default():
    section = LauncherSection(
        default=slurm(partition="cpu", time=10, interval=1, cpus_per_task=2),
        evaluation=slurm(partition="gpu", mem="2G"),
        report="local",
        max_retries=7,
    )
    launchers = stage_launchers(section, {"pretrain": None, "kl": None}, ask_cluster=False)
    pretrain, evaluation = launchers.launchers["pretrain"], launchers.launchers["evaluation"]
    assert isinstance(pretrain, SlurmLauncher) and pretrain.interval == 1
    assert pretrain.options.args() == [
        "--nodes=1",
        "--time=10",
        "--partition=cpu",
        "--cpus-per-task=2",
    ]
    assert isinstance(evaluation, SlurmLauncher) and evaluation.interval == 1
    assert evaluation.options.args() == [
        "--nodes=1",
        "--time=10",
        "--partition=gpu",
        "--mem=2G",
        "--cpus-per-task=2",
    ]
    assert isinstance(launchers.launchers["report"], DirectLauncher)
    assert launchers.submit_options("kl") == {
        "launcher": launchers.launchers["kl"],
        "max_retries": 7,
    }
    assert "  report: local" in launchers.summary()
    assert "evaluation: slurm (--nodes=1 --time=10 --partition=gpu" in launchers.summary()


def test_everything_local_by_default():
    launchers = stage_launchers(LauncherSection(), {"pretrain": None})
    assert launchers.all_local()
    assert launchers.submit_options("pretrain")["max_retries"] is None


def test_unsupported_slurm_values_are_all_reported():
    section = LauncherSection(default=slurm(time="abc", nodes=2), max_retries=-1)
    stages = {"pretrain": slurm(mem="12X", interval=0, cpus_per_task=0), "kl": slurm(time=True)}
    with pytest.raises(LauncherError) as error:
        stage_launchers(section, stages, ask_cluster=False)
    message = str(error.value)
    assert message.startswith("7 launcher problems:\n")
    for expected in (
        "launcher.max_retries: -1 must be >= 0",
        "launcher.default.slurm.time: 'abc' is not a SLURM time limit",
        "launcher.default.slurm.ntasks_per_node: needed with nodes: 2 (the processes of",
        "stages.pretrain.launcher.slurm.mem: '12X' is not a SLURM memory size",
        "stages.pretrain.launcher.slurm.cpus_per_task: 0 is not a valid count",
        "stages.pretrain.launcher.slurm.interval: 0 must be > 0 seconds",
        "stages.kl.launcher.slurm.time: True is not a SLURM time limit",
    ):
        assert expected in message


@pytest.mark.parametrize("time", [1, "30", "10:00", "1:30:00", "2-0", "2-12:00", "1-0:0:30"])
def test_slurm_time_formats(time):
    assert SlurmSection(time=time).validate("t") == []


def test_requirement_without_launchers_py_is_an_error(tmp_path, config_dir):
    config_dir(tmp_path)  # no launchers.py: experimaestro would run the job locally
    stages = {"pretrain": "duration=2h & cuda(mem=40GiB)"}
    with pytest.raises(LauncherError, match="silently run the job on this machine") as error:
        stage_launchers(LauncherSection(), stages, ask_cluster=False)
    assert f"{tmp_path}/launchers.py does not exist" in str(error.value)
    assert str(error.value).startswith("stages.pretrain.launcher: 'duration=2h & cuda(mem=40GiB)'")


def test_example_launchers_py_maps_requirements_to_partitions(config_dir, monkeypatch):
    monkeypatch.setenv("XPM_TRAIN_SLURM_INTERVAL", "2")
    config_dir(PROJECT / "xpm-config")
    section = LauncherSection(default="duration=10m & cpu(cores=1)")
    stages = {"pretrain": "duration=2h & cuda(mem=40GiB) * 2", "kl": None}
    launchers = stage_launchers(section, stages, ask_cluster=False).launchers
    cpu, gpu = launchers["kl"], launchers["pretrain"]
    assert isinstance(cpu, SlurmLauncher) and cpu.interval == 2
    assert cpu.options.args() == [
        "--nodes=1",
        "--time=0:10:0",
        "--partition=cpu",
        "--cpus-per-task=1",
    ]
    assert isinstance(gpu, SlurmLauncher)
    assert gpu.options.args() == [
        "--nodes=1",
        "--time=2:0:0",
        "--partition=gpu",
        "--gpus-per-node=2",
    ]

    for spec, message in (
        ("cpu(cores=100000)", "no launcher of .*launchers.py matches 'cpu\\(cores=100000\\)'"),
        ("lcoal", "'lcoal' is neither 'local' nor a valid requirement"),
    ):
        with pytest.raises(LauncherError, match=message):
            stage_launchers(LauncherSection(), {"dpo": spec}, ask_cluster=False)


def test_missing_slurm_programs_are_reported(tmp_path):
    launcher = SlurmLauncher(binpath=tmp_path)
    (errors,) = validate_cluster(launcher, "launcher.default")
    assert errors.startswith(f"launcher.default: SLURM programs not found in {tmp_path}: sbatch")


def test_jobs_import_the_installed_xpm_train():
    assert validate_installation() == []


def test_launcher_keys_and_types_are_checked_before_anything_runs(tmp_path):
    result = run_experiment(
        tmp_path / "ws",
        tmp_path / "home",
        "-c",
        "stages.pretrain.launcher.slurm.partiton=gpu",
        "-c",
        "launcher.report=3",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "launcher.report: expected str or a mapping or null, got 3" in result.stderr
    result = run_experiment(
        tmp_path / "ws", tmp_path / "home", "-c", "stages.pretrain.launcher.slurm.partiton=gpu"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "stages.pretrain.launcher.slurm.partiton: unknown key (from -c stages.pretrain.launcher."
        "slurm.partiton=gpu); did you mean 'stages.pretrain.launcher.slurm.partition'?"
    ) in result.stderr
    assert not (tmp_path / "ws" / "jobs").exists()


def test_requirement_without_launchers_py_stops_the_experiment(tmp_path):
    result = run_experiment(
        tmp_path / "ws", tmp_path / "home", "-c", "launcher.evaluation=duration=1h & cpu(cores=1)"
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Experiment failed: launcher.evaluation: 'duration=1h & cpu(cores=1)' is a " in (
        result.stderr
    )
    assert "Nothing was submitted." in result.stderr
    assert not (tmp_path / "ws" / "jobs").exists()


def test_dry_run_of_the_slurm_experiment_needs_no_cluster(tmp_path):
    result = run_experiment(
        tmp_path / "ws",
        tmp_path / "home",
        "--run-mode",
        "dry_run",
        "-c",
        "stages.pretrain.launcher=duration=2h & cuda(mem=40GiB)",
        "--xpm-config-dir",
        str(PROJECT / "xpm-config"),
        yaml="slurm.yaml",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "Launchers:\n  pretrain: slurm (--nodes=1 --time=2:0:0 --partition=gpu --gpus-per-node=1;"
    ) in result.stdout
    assert "  kl: slurm (--nodes=1 --time=1:00:00 --partition=cpu --cpus-per-task=2;" in (
        result.stdout
    )
    assert "  report: slurm (--nodes=1 --time=5 --partition=cpu --cpus-per-task=1;" in (
        result.stdout
    )
    assert "reused from earlier runs" not in result.stdout  # a dry run runs nothing


def test_process_counts_are_checked():
    section = LauncherSection(default=slurm(ntasks_per_node=3, gpus_per_node=4))
    with pytest.raises(LauncherError) as error:
        stage_launchers(section, {"pretrain": slurm(nodes=0)}, ask_cluster=False)
    assert "stages.pretrain.launcher.slurm.nodes: 0 is not a valid count" in str(error.value)
    assert "launcher.default.slurm.ntasks_per_node: 3 processes cannot share the 4 GPUs" in (
        str(error.value)
    )
    assert SlurmSection(nodes=2, ntasks_per_node=4).devices() == 8
    assert SlurmSection(nodes=2, ntasks_per_node=1, gpus_per_node=4).devices() == 8


def test_slurm_jobs_get_the_resubmitting_launcher(tmp_path):
    """Preempted or failed-node jobs read as timed out (resubmitted); srun ends every process
    of a job when one fails."""
    from experimaestro.launchers.slurm.base import SlurmJobState
    from experimaestro.scheduler.jobs import JobFailureStatus

    from xpm_train.launchers.slurm_resume import ResubmittingSlurmProcess

    launcher = stage_launchers(LauncherSection(default=slurm()), {"pretrain": None}, False)
    chosen = launcher.launchers["pretrain"]
    assert type(chosen).__name__ == "ResubmittingSlurmLauncher"
    assert type(chosen.config(partition="gpu")) is type(chosen)
    process = ResubmittingSlurmProcess(chosen, "42")
    for state, resubmitted in [
        ("PREEMPTED", True),
        ("NODE_FAIL", True),
        ("TIMEOUT", True),
        ("CANCELLED+", False),
        ("FAILED", False),
    ]:
        process._last_state = SlurmJobState(state, "", "")
        job_state = process.get_job_state(1)
        assert job_state.is_error()
        assert (job_state.failure_reason == JobFailureStatus.TIMEOUT) is resubmitted, state


def test_mesh_and_batch_are_checked_against_the_launchers_processes(tmp_path):
    """yaml/multiprocess.yaml gives its pretrain job 2 processes (one CPU device each)."""
    common = ("--run-mode", "dry_run")
    result = run_experiment(
        tmp_path / "ws",
        tmp_path / "home",
        *common,
        "-c",
        "stages.pretrain.model_parallel=3",
        yaml="multiprocess.yaml",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "stages.pretrain.model_parallel: model_parallel=3 does not divide the 2 device(s)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "ws" / "jobs").exists()
    result = run_experiment(
        tmp_path / "ws",
        tmp_path / "home",
        *common,
        "-c",
        "stages.pretrain.batch_size=6",
        yaml="multiprocess.yaml",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "stages.pretrain.batch_size: 6 is not divisible by micro_batch_size=2 x 2 data-parallel "
        "device(s) of the 2 the job gets"
    ) in result.stderr


def test_the_job_script_runs_every_process_and_ends_them_together(tmp_path):
    result = run_experiment(
        tmp_path / "ws",
        tmp_path / "home",
        "--run-mode",
        "generate_only",
        yaml="multiprocess.yaml",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (script,) = (tmp_path / "ws" / "jobs").glob("*pretrain*/*/pretrain.sh")
    text = script.read_text()
    assert "#SBATCH --ntasks-per-node=2\n" in text
    assert "\nsrun --kill-on-bad-exit=1 ./pretrain.py\n" in text
