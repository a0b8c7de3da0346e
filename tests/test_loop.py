import math

import jax
import numpy as np
import pytest

from xpm_train.training import runtime
from xpm_train.training.checkpoint import CheckpointStore, restore_params
from xpm_train.training.loop import NonFiniteLossError, train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.metrics import read_metrics
from xpm_train.training.result import TrainResult
from xpm_train.training.state import abstract_params, model_def

from .support.tiny import run_paths, tiny_settings, tiny_stage


def _final_params(folder, stage, step):
    definition = model_def(stage.make_model, make_mesh())
    return restore_params(folder / "checkpoints", step, abstract_params(definition))


def test_training_lowers_loss_and_writes_metrics_checkpoints_result(tmp_path):
    stage = tiny_stage()
    result = train(stage, tiny_settings(), run_paths(tmp_path))
    train_records = read_metrics(tmp_path / "metrics.jsonl", "train")
    assert [r["step"] for r in train_records] == [4, 8, 12, 16, 20, 24]
    assert train_records[-1]["loss"] < train_records[0]["loss"]
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(train_records[0])
    evals = read_metrics(tmp_path / "metrics.jsonl", "eval")
    assert [r["step"] for r in evals] == [8, 16, 24]
    assert math.isclose(evals[-1]["eval/perplexity"], math.exp(evals[-1]["eval/loss"]))
    assert CheckpointStore(tmp_path / "checkpoints").steps() == [16, 24]
    assert TrainResult.read(tmp_path / "result.json") == result
    assert result.step == 24 and result.checkpoint.endswith("checkpoints/24")


class Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    stage = tiny_stage()
    train(stage, tiny_settings(), run_paths(tmp_path / "straight"))

    def kill_at_step_20(fraction: float, desc: str) -> None:
        if desc.startswith("step 20/"):
            raise Killed(desc)

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Killed):
        train(tiny_stage(), tiny_settings(), run_paths(interrupted), on_progress=kill_at_step_20)
    assert CheckpointStore(interrupted / "checkpoints").latest_step() == 16
    train(tiny_stage(), tiny_settings(), run_paths(interrupted))

    expected = _final_params(tmp_path / "straight", stage, 24)
    resumed = _final_params(interrupted, stage, 24)
    jax.tree.map(np.testing.assert_array_equal, expected, resumed)
    straight = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    again = read_metrics(interrupted / "metrics.jsonl")
    drop = ("tokens_per_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in again] == [
        {k: v for k, v in r.items() if k not in drop} for r in straight
    ]


def test_queueing_the_next_step_gives_the_same_run(tmp_path, monkeypatch, capsys):
    records = {}
    for queue in ("0", "1", "auto"):
        if queue == "auto":
            monkeypatch.delenv(runtime.QUEUE_AHEAD_VAR)
            monkeypatch.setattr(runtime, "WAIT_FROM_SECONDS", 0.0)  # any step is long
        else:
            monkeypatch.setenv(runtime.QUEUE_AHEAD_VAR, queue)
        capsys.readouterr()
        train(tiny_stage(), tiny_settings(), run_paths(tmp_path / queue))
        decided = "s: one step at a time" in capsys.readouterr().out
        assert decided == (queue == "auto")
        records[queue] = [
            {k: v for k, v in r.items() if k != "tokens_per_s"}
            for r in read_metrics(tmp_path / queue / "metrics.jsonl")
        ]
    assert records["0"] == records["1"] == records["auto"]


@pytest.mark.parametrize("queue", ["0", "1", None])
def test_nan_loss_fails_naming_the_step_and_keeps_checkpoints(tmp_path, monkeypatch, queue):
    if queue is None:
        monkeypatch.delenv(runtime.QUEUE_AHEAD_VAR, raising=False)
    else:
        monkeypatch.setenv(runtime.QUEUE_AHEAD_VAR, queue)
    stage = tiny_stage()
    make_batches = stage.data.train_batches

    class PoisonedData:
        tokens_per_sample = stage.data.tokens_per_sample
        eval_batches = stage.data.eval_batches

        def train_batches(self, accum_steps):
            batches = make_batches(accum_steps)

            def poisoned(step, rows=None):
                batch = batches(step, rows)
                if step >= 12:
                    batch["mask"] = batch["mask"] * np.nan
                return batch

            return poisoned

    stage.data = PoisonedData()
    expected = r"diverged at step 13: .*loss=nan; the last good checkpoint is step 12"
    with pytest.raises(NonFiniteLossError, match=expected):
        train(stage, tiny_settings(checkpoint_interval=4), run_paths(tmp_path))
    assert CheckpointStore(tmp_path / "checkpoints").steps() == [8, 12]
    params = _final_params(tmp_path, stage, 12)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))
