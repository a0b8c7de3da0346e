"""A failed job makes ``experimaestro run-experiment`` exit non-zero, naming it, with its log.

The real CLI runs in a subprocess on a tiny experiment written into the test's folder: a task
that raises ``RuntimeError("boom")`` (or not, with ``-c fail=false``) and a task depending on
it; its ``run`` calls :func:`xpm_train.planning.failures.raise_on_failed_jobs`.
"""

from pathlib import Path

import pytest

from .cli import job_folders, run_experiment

TASKS = """
from experimaestro import Param, Task


class Boom(Task):
    fail: Param[bool] = True

    def execute(self):
        print("boom starts")
        if self.fail:
            raise RuntimeError("boom")


class After(Task):
    upstream: Param[Boom]

    def execute(self):
        print("after runs")
"""

EXPERIMENT = """
from experimaestro.experiments import ConfigurationBase, ExperimentHelper, configuration

from failing_tasks import After, Boom
from xpm_train.planning.failures import raise_on_failed_jobs


@configuration()
class Configuration(ConfigurationBase):
    fail: bool = True


def run(helper: ExperimentHelper, cfg: Configuration) -> None:
    boom = Boom.C(fail=cfg.fail)
    boom.submit()
    After.C(upstream=boom).submit()
    helper.xp.wait()
    raise_on_failed_jobs(helper.xp)
    print("experiment finished", flush=True)
"""

YAML = """
id: failing-xp
file: failing_experiment
dirty_git: ignore
"""


@pytest.fixture
def failing_xp(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(workdir, home, yaml) of the tiny experiment; the tasks' module is found by the jobs
    through the experiment file's folder, which experimaestro puts on their python path."""
    source = tmp_path / "xp"
    source.mkdir()
    (source / "failing_tasks.py").write_text(TASKS)
    (source / "failing_experiment.py").write_text(EXPERIMENT)
    (source / "failing.yaml").write_text(YAML)
    home = tmp_path / "home"
    # No CodeCarbon: without this, experimaestro pauses 3 s at every start.
    settings = home / ".config" / "experimaestro" / "settings.yaml"
    settings.parent.mkdir(parents=True)
    settings.write_text("carbon:\n  warn_if_unavailable: false\n")
    return tmp_path / "ws", home, source / "failing.yaml"


def test_failed_job_makes_the_experiment_fail_with_its_log(failing_xp):
    workdir, home, yaml = failing_xp
    # An absolute path: run_experiment's ``PROJECT / "yaml" / yaml`` is then that path.
    result = run_experiment(workdir, home, yaml=str(yaml))
    output = result.stderr + result.stdout
    assert result.returncode == 1, output[-3000:]
    assert "experiment finished" not in result.stdout
    jobs = job_folders(workdir)
    boom, after = jobs["boom"][0], jobs["after"][0]
    message = result.stderr[result.stderr.index("Experiment failing-xp:") :]
    assert message.startswith("Experiment failing-xp: 1 job failed, 1 job not run")
    assert f"Job failing_tasks.boom/{boom.name[:8]} failed: error (failed, exit code 1)" in message
    assert f"folder: {boom}" in message
    assert f"log:    {boom / 'boom.err'}" in message
    assert '    raise RuntimeError("boom")\n    RuntimeError: boom\n' in message
    assert "Releasing lock" not in message  # experimaestro's bookkeeping after the traceback
    assert (
        f"Job failing_tasks.after/{after.name[:8]} not run: dependency failed "
        f"(failing_tasks.boom/{boom.name[:8]})"
    ) in message


def test_nothing_failed_exits_0(failing_xp):
    workdir, home, yaml = failing_xp
    result = run_experiment(workdir, home, "-c", "fail=false", yaml=str(yaml))
    assert result.returncode == 0, (result.stderr + result.stdout)[-3000:]
    assert "experiment finished" in result.stdout
    assert "Experiment failing-xp:" not in result.stderr


def test_dry_run_of_a_failed_experiment_exits_0(failing_xp):
    workdir, home, yaml = failing_xp
    assert run_experiment(workdir, home, yaml=str(yaml)).returncode == 1
    plan = run_experiment(workdir, home, "--run-mode", "dry_run", yaml=str(yaml))
    assert plan.returncode == 0, (plan.stderr + plan.stdout)[-3000:]
    assert "[failed] Simulating failing_tasks.boom/" in plan.stdout + plan.stderr
    assert "experiment finished" in plan.stdout


def test_pipeline_job_failure_exits_1_and_skips_the_report(tmp_path):
    """The real pipeline, its pretraining job crashing at start (an XLA flag that does not
    exist, given to the jobs only): every later job is reported as not run."""
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    result = run_experiment(workdir, home, "--env", "XLA_FLAGS", "--xla_no_such_flag=1")
    assert result.returncode == 1, (result.stderr + result.stdout)[-3000:]
    assert "Report:" not in result.stdout
    pretrain = job_folders(workdir)["pretrain"][0]
    message = result.stderr[result.stderr.index("Experiment xpm-train-tiny:") :]
    assert message.startswith("Experiment xpm-train-tiny: 1 job failed, 6 jobs not run")
    assert (
        f"Job xpm_train.tasks.pretrain.pretrain/{pretrain.name[:8]} failed: error "
        "(no pretrain.failed marker: the process crashed or was killed)"
    ) in message
    assert f"log:    {pretrain / 'pretrain.err'}" in message
    assert "Unknown flag in XLA_FLAGS: --xla_no_such_flag=1" in message
    assert message.count("not run: dependency failed") == 6
