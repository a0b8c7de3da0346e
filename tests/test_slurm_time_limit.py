"""Stopping before a time limit, without a cluster: the loop writes a checkpoint, raises an
experimaestro ``GracefulTimeout``, and the resumed run ends with the parameters of an
uninterrupted one."""

import jax
import numpy as np
import pytest
from experimaestro import GracefulTimeout

from xpm_train.training.checkpoint import CheckpointStore, restore_params
from xpm_train.training.loop import train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.metrics import read_metrics
from xpm_train.training.state import abstract_params, model_def
from xpm_train.training.time_limit import TimeLimit, TimeLimitReached

from .support.tiny import run_paths, tiny_settings, tiny_stage


def _final_params(folder, stage, step):
    definition = model_def(stage.make_model, make_mesh())
    return restore_params(folder / "checkpoints", step, abstract_params(definition))


class Countdown:
    """Seconds left to a job: plenty for ``steps`` calls (one per training step), then 5."""

    def __init__(self, steps: int):
        self.calls, self.steps = 0, steps

    def __call__(self) -> float:
        self.calls += 1
        return 1000.0 if self.calls <= self.steps else 5.0


def test_time_limit_stops_with_a_checkpoint_and_the_resumed_run_matches(tmp_path):
    stage = tiny_stage()
    train(stage, tiny_settings(), run_paths(tmp_path / "straight"))

    limited = tmp_path / "limited"
    with pytest.raises(TimeLimitReached) as stopped:
        train(
            tiny_stage(), tiny_settings(), run_paths(limited), time_limit=TimeLimit(Countdown(12))
        )
    assert isinstance(stopped.value, GracefulTimeout)  # experimaestro resubmits the job
    assert stopped.value.step == 13
    assert stopped.value.message.startswith("time limit: stopped at step 13/24 with 5s left")
    assert CheckpointStore(limited / "checkpoints").steps() == [8, 13]
    assert not (limited / "result.json").exists()

    # The resubmitted job: resumes from step 13, and its own limit is far away.
    result = train(
        tiny_stage(), tiny_settings(), run_paths(limited), time_limit=TimeLimit(Countdown(100))
    )
    assert result.step == 24
    expected = _final_params(tmp_path / "straight", stage, 24)
    resumed = _final_params(limited, stage, 24)
    jax.tree.map(np.testing.assert_array_equal, expected, resumed)
    drop = ("tokens_per_s",)
    assert [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_metrics(limited / "metrics.jsonl")
    ] == [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_metrics(tmp_path / "straight" / "metrics.jsonl")
    ]


def test_stopping_on_a_checkpoint_step_writes_it_once(tmp_path):
    with pytest.raises(TimeLimitReached) as stopped:
        train(
            tiny_stage(), tiny_settings(), run_paths(tmp_path), time_limit=TimeLimit(Countdown(15))
        )
    assert stopped.value.step == 16
    assert CheckpointStore(tmp_path / "checkpoints").steps() == [8, 16]


def test_no_limit_never_stops_and_is_asked_once():
    calls = []
    limit = TimeLimit(lambda: calls.append(1))  # None: no limit
    assert all(limit.must_stop() is None for _ in range(3))
    assert len(calls) == 1  # under SLURM, each call could run squeue


def test_the_margin_covers_two_steps_and_a_checkpoint(monkeypatch):
    clock = iter([0.0, 2.0, 4.0, 6.0])
    monkeypatch.setattr("xpm_train.training.time_limit.time.perf_counter", lambda: next(clock))
    limit = TimeLimit(lambda: 40.0, margin_s=30.0)
    assert limit.must_stop() is None  # no step measured yet: 40 > 30
    assert limit.must_stop() is None  # steps of 2 s: 40 > 30 + 2 x 2
    limit.saved(7.0)
    assert limit.must_stop() == 40.0  # 40 < 30 + 2 x 2 + 7
