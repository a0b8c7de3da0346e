"""Planning with jax, flax, optax, orbax and wandb mocked (``yaml/pre_experiment.py``).

Through the real ``experimaestro run-experiment`` CLI in a subprocess: the mocks change no job
identifier, and the driver never imports the real libraries.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .cli import job_ids, run_cli
from .conftest import PROJECT

#: Top-level names of the libraries that only job processes need (``jaxlib`` comes with jax).
HEAVY = ("jax", "jaxlib", "flax", "optax", "orbax", "wandb")

#: Runs the CLI as ``python -m experimaestro`` does, then prints, at exit, the heavy modules
#: the driver imported for real (mocked modules are experimaestro ``FakeModule`` instances).
PROBE = f"""
import atexit, json, runpy, sys
from experimaestro.experiments.mockmodule import FakeModule

def _report():
    modules = list(sys.modules.items())
    heavy = [name for name, module in modules if name.split(".")[0] in {HEAVY!r}]
    real = sorted(name for name in heavy if not isinstance(sys.modules[name], FakeModule))
    print("PROBE " + json.dumps({{"real": real, "mocked": len(heavy) - len(real)}}), flush=True)

atexit.register(_report)
runpy.run_module("experimaestro", run_name="__main__", alter_sys=True)
"""


def probe_result(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    assert len(lines) == 1, result.stdout[-2000:]
    return json.loads(lines[0].removeprefix("PROBE "))


def dry_run(tmp_path: Path, name: str, mocks: bool) -> subprocess.CompletedProcess:
    result = run_cli(
        PROJECT / "yaml" / "full.yaml",
        tmp_path / name / "ws",
        tmp_path / name / "home",
        "--run-mode",
        "dry_run",
        env={"XPM_TRAIN_NO_MOCKS": "0" if mocks else "1"},
        python_args=("-c", PROBE),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_mocks_change_no_job_identifier_and_keep_jax_out_of_the_driver(tmp_path):
    mocked = dry_run(tmp_path, "mocked", mocks=True)
    real = dry_run(tmp_path, "real", mocks=False)

    ids = job_ids(mocked)
    tasks = sorted({job.split("/")[0].split(".")[-1] for job in ids})
    assert tasks == ["dpo", "evaluate", "klstage", "pretrain", "report"]
    assert len(ids) == 7
    assert ids == job_ids(real)

    probed = probe_result(mocked)
    assert probed["real"] == []
    assert probe_result(real)["mocked"] == 0
    assert not (tmp_path / "mocked" / "ws" / "jobs").exists()


def test_show_works_with_mocks(tmp_path):
    result = run_cli(
        PROJECT / "yaml" / "full.yaml",
        tmp_path / "ws",
        tmp_path / "home",
        "--show",
        python_args=("-c", PROBE),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "xpm-train-full" in result.stdout
    assert probe_result(result)["real"] == []
