"""Damaged files a resumed run meets: a corrupt or partial latest checkpoint, a metrics file cut
short; and loading a model from a running job's folder, which must change nothing there."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from xpm_train.training.checkpoint import CheckpointStore, UnreadableCheckpoints, restore_params
from xpm_train.training.loop import train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.metrics import MetricsFileError, read_metrics
from xpm_train.training.state import abstract_params, model_def

from .support.tiny import run_paths, tiny_settings, tiny_stage

SETTINGS = {"total_steps": 12, "checkpoint_interval": 4, "keep_checkpoints": 5}


def _params(folder: Path) -> dict:
    """The final parameters of the run in ``folder``, read as ``load_checkpoint`` reads them."""
    definition = model_def(tiny_stage().make_model, make_mesh())
    return restore_params(folder / "checkpoints", None, abstract_params(definition))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(tiny_stage(), tiny_settings(**SETTINGS), run_paths(folder))
    return folder


def interrupted_after_step_8(uninterrupted: Path, folder: Path) -> Path:
    """The folder of a run killed after writing its step-8 checkpoint."""
    shutil.copytree(uninterrupted, folder)
    shutil.rmtree(folder / "checkpoints" / "12")
    (folder / "result.json").unlink()
    return folder


def zero_files(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0" * path.stat().st_size)


@pytest.mark.parametrize("damage", ["zeroed", "missing metadata"])
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(
    uninterrupted, tmp_path, capfd, damage
):
    folder = interrupted_after_step_8(uninterrupted, tmp_path / "run")
    latest = folder / "checkpoints" / "8"
    if damage == "zeroed":
        zero_files(latest)
    else:
        shutil.rmtree(latest / "meta")
        (latest / "state" / "_METADATA").unlink()
    train(tiny_stage(), tiny_settings(**SETTINGS), run_paths(folder))
    err = capfd.readouterr().err
    assert f"warning: checkpoint {latest} cannot be read, resuming from " in err
    assert f"{folder / 'checkpoints' / '4'} instead" in err
    assert (folder / "checkpoints" / "unreadable-8").is_dir()  # kept, out of orbax's way
    jax.tree.map(np.testing.assert_array_equal, _params(uninterrupted), _params(folder))
    expected = read_metrics(uninterrupted / "metrics.jsonl")
    drop_speed = lambda records: [{**r, "tokens_per_s": 0} for r in records]  # noqa: E731
    assert drop_speed(read_metrics(folder / "metrics.jsonl")) == drop_speed(expected)


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(uninterrupted, tmp_path):
    folder = interrupted_after_step_8(uninterrupted, tmp_path / "run")
    for step in (4, 8):
        zero_files(folder / "checkpoints" / str(step))
    with pytest.raises(UnreadableCheckpoints, match="no checkpoint in .* can be read"):
        train(tiny_stage(), tiny_settings(**SETTINGS), run_paths(folder))


def test_metrics_cut_short_are_read_and_rewritten_whole(uninterrupted, tmp_path):
    folder = interrupted_after_step_8(uninterrupted, tmp_path / "run")
    metrics = folder / "metrics.jsonl"
    text = metrics.read_text()
    metrics.write_text(text + '{"kind": "train", "step": 9, "lo')
    assert read_metrics(metrics) == read_metrics(uninterrupted / "metrics.jsonl")
    train(tiny_stage(), tiny_settings(**SETTINGS), run_paths(folder))
    lines = metrics.read_text().splitlines()
    assert len(lines) == len((uninterrupted / "metrics.jsonl").read_text().splitlines())
    assert not list(folder.glob(".metrics.jsonl.partial"))

    metrics.write_text('{"step": 1}\n{"ste\n{"step": 2}\n')
    with pytest.raises(MetricsFileError, match=r"metrics.jsonl, line 2: not a JSON record"):
        read_metrics(metrics)


def test_loading_a_model_leaves_a_running_jobs_folder_alone(uninterrupted, tmp_path):
    folder = tmp_path / "running"
    shutil.copytree(uninterrupted, folder)
    in_progress = folder / "checkpoints" / "16.orbax-checkpoint-tmp-1764100000000000"
    in_progress.mkdir()
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    _params(folder)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
    # A store opened for writing cleans unfinished saves up: what loading must not do.
    CheckpointStore(folder / "checkpoints").close()
    for _ in range(100):  # orbax may clean up from a background thread
        if not in_progress.exists():
            break
        time.sleep(0.05)
    assert not in_progress.exists()
