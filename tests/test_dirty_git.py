"""``dirty_git`` (``yaml/base.yaml``): warn by default, ``-c dirty_git=error`` refuses a dirty repo.

A copy of ``experiments/`` and ``yaml/`` is committed to a temporary git repository; the
experiment still imports the installed ``xpm_train``. experimaestro checks the repository of
the experiment file's folder (``<repo>/experiments``; ``git status`` covers the whole work tree)
when it enters the experiment, in the ``normal`` run mode only: a dry run does not check. To
keep normal runs fast, every job of the tiny pipeline is marked done beforehand (an empty
``<task>.done`` marker in its folder, its identifier taken from a dry run), so nothing trains.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .cli import job_ids, run_cli
from .conftest import PROJECT

DIRTY = "Project repository has uncommitted changes"


def git(repo: Path, home: Path, *args: str) -> None:
    environment = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=repo, env=environment, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tiny_jobs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The ``<task>/<hash>`` of the tiny pipeline's jobs (a dry run)."""
    tmp = tmp_path_factory.mktemp("plan")
    plan = run_cli(
        PROJECT / "yaml" / "tiny.yaml", tmp / "ws", tmp / "home", "--run-mode", "dry_run"
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = job_ids(plan)
    assert len(jobs) == 7
    return jobs


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a committed copy of ``experiments/`` and ``yaml/``."""
    repo, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    for folder in ("experiments", "yaml"):
        shutil.copytree(
            PROJECT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, home, "init", "-q")
    git(repo, home, "config", "user.name", "xpm-train tests")
    git(repo, home, "config", "user.email", "tests@example.invalid")
    git(repo, home, "config", "commit.gpgsign", "false")
    git(repo, home, "add", ".")
    git(repo, home, "commit", "-q", "-m", "experiment")
    return repo


def make_dirty(repo: Path) -> None:
    """Modify a tracked file (a comment: the jobs stay the same)."""
    with (repo / "yaml" / "tiny.yaml").open("a") as file:
        file.write("# a local change\n")


def done_workdir(workdir: Path, jobs: list[str]) -> Path:
    """A workdir where every job of ``jobs`` is already done."""
    for job in jobs:
        task, _ = job.split("/")
        folder = workdir / "jobs" / job
        folder.mkdir(parents=True)
        (folder / f"{task.split('.')[-1]}.done").touch()
    return workdir


def run_tiny(repo: Path, workdir: Path, *args: str) -> tuple[int, str]:
    result = run_cli(repo / "yaml" / "tiny.yaml", workdir, repo.parent / "home", *args, cwd=repo)
    return result.returncode, result.stdout + result.stderr


def test_dirty_repo_warns_by_default(repo, tiny_jobs, tmp_path):
    make_dirty(repo)
    code, output = run_tiny(repo, done_workdir(tmp_path / "ws", tiny_jobs))
    assert code == 0, output[-3000:]
    assert f"WARN  xpm.experiment: {DIRTY}: {repo / 'experiments'}" in output
    assert "Report: " in output
    assert "running (log" not in output  # no job started


def test_dirty_repo_fails_with_dirty_git_error(repo, tiny_jobs, tmp_path):
    make_dirty(repo)
    workdir = done_workdir(tmp_path / "ws", tiny_jobs)
    code, output = run_tiny(repo, workdir, "-c", "dirty_git=error")
    assert code != 0
    assert f"{DIRTY}: {repo / 'experiments'}" in output
    assert "running (log" not in output and "Jobs:" not in output
    assert not list((workdir / "experiments").glob("*/*/environment.json"))


def test_clean_repo_runs_with_dirty_git_error(repo, tiny_jobs, tmp_path):
    code, output = run_tiny(repo, done_workdir(tmp_path / "ws", tiny_jobs), "-c", "dirty_git=error")
    assert code == 0, output[-3000:]
    assert DIRTY not in output
    assert "Report: " in output


def test_dry_run_does_not_check_the_repository(repo, tmp_path):
    make_dirty(repo)
    code, output = run_tiny(repo, tmp_path / "ws", "--run-mode", "dry_run", "-c", "dirty_git=error")
    assert code == 0, output[-3000:]
    assert DIRTY not in output
