"""The wandb logger component in-process: mode, grouping, resuming the same run."""

from __future__ import annotations

import time

import pytest

from xpm_train.registry import ComponentError
from xpm_train.tracking.loggers import JobInfo, NoLogger, WandbLogger, build_logger
from xpm_train.tracking.session import training_session
from xpm_train.training.result import TrainResult

from .support.wandb_file import WandbFileError, offline_runs, read_wandb_file


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """wandb offline, its settings and caches under tmp_path."""
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_mode_comes_from_the_yaml_then_the_environment_then_offline(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert WandbLogger.C().instance().resolved_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert WandbLogger.C().instance().resolved_mode() == "online"
    assert WandbLogger.C(mode="offline").instance().resolved_mode() == "offline"
    with pytest.raises(ValueError, match="pretrain.logger: wandb logger: mode='cloud'"):
        build_logger({"name": "wandb", "mode": "cloud"}, where="pretrain.logger")
    with pytest.raises(ComponentError, match="unknown parameter"):
        build_logger({"name": "wandb", "api_key": "x"}, where="pretrain.logger")
    assert isinstance(build_logger({"name": "none"}, where="pretrain.logger"), NoLogger)


def test_the_run_is_named_by_stage_and_tags():
    logger = WandbLogger.C(tags=["sweep", "small"]).instance()
    assert logger.run_name("kl") == "kl (sweep, small)"
    assert logger.run_tags("kl") == ["kl", "sweep", "small"]
    assert WandbLogger.C(display_name="mine").instance().run_name("kl") == "mine"


def test_a_resumed_job_logs_to_the_same_run(wandb_env):
    folder = wandb_env / "jobs" / ("ab" * 32)
    folder.mkdir(parents=True)
    metrics = folder / "metrics.jsonl"
    logger = WandbLogger.C(project="tests", group="xp").instance()
    # First attempt: steps 1-2, then the job is killed.
    with pytest.raises(KeyboardInterrupt), training_session("pretrain", metrics, logger) as session:
        session.log({"kind": "train", "step": 1, "loss": 3.0})
        session.log({"kind": "train", "step": 2, "loss": 2.5, "lr": "nan"})
        raise KeyboardInterrupt
    # Second attempt (resumed from step 2), in another second: wandb names a run's folder by
    # its start time to the second (a real resumption restarts a process, seconds later).
    time.sleep(1.1)
    with training_session("pretrain", metrics, logger) as session:
        session.log({"kind": "train", "step": 3, "loss": 2.0})
        metrics.write_text('{"kind": "train", "step": 3, "loss": 2.0}\n')
        text = session.finish(TrainResult(step=3, checkpoint="c/3", metrics={"loss": 2.0}))
    first, second = (read_wandb_file(path) for path in offline_runs(folder))
    assert first.run_id == second.run_id and first.run_id.startswith("ab" * 8)
    assert [row["_step"] for row in first.history] == [1, 2]
    assert first.history[1]["lr"] != first.history[1]["lr"]  # NaN, logged as a float
    assert first.exit_code == 1
    assert [row["loss"] for row in second.history] == [2.0]
    assert second.exit_code == 0 and second.summary["checkpoint"] == "c/3"
    assert f"wandb: offline run {first.run_id}" in text
    assert (folder / "curves.png").exists()


def test_the_reader_refuses_other_files(tmp_path):
    path = tmp_path / "run-x.wandb"
    path.write_bytes(b"not a wandb file")
    with pytest.raises(WandbFileError):
        read_wandb_file(path)


def test_job_info_names_the_job_by_its_folder(tmp_path):
    assert JobInfo("dpo", tmp_path / "abc").job_id == "abc"
