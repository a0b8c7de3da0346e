"""Evaluation-driven checkpoints: with ``best_metric`` the loop keeps the checkpoint of the best
evaluation in a folder of its own, records it, keeps it across a resume, and a later stage
takes it as ``<stage>.best``."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from xpm_train.registry import build
from xpm_train.tasks.checkpoint import Checkpoint, load_checkpoint
from xpm_train.training.checkpoint import CheckpointStore, restore_params
from xpm_train.training.loop import RunPaths, train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.metrics import read_metrics
from xpm_train.training.result import BestRecord, TrainResult, best_record_path
from xpm_train.training.state import abstract_params, model_def

from .cli import job_ids, run_cli
from .support.tiny import tiny_settings, tiny_stage
from .test_yaml_cli import experiment_file

#: 24 steps, an evaluation every 4 (6 evaluations), a checkpoint every 8.
SETTINGS = {"eval_interval": 4, "checkpoint_interval": 8}


def paths(folder: Path) -> RunPaths:
    return RunPaths(
        folder / "checkpoints", folder / "metrics.jsonl", folder / "result.json", folder / "best"
    )


def params(folder: Path, step: int) -> dict:
    definition = model_def(tiny_stage().make_model, make_mesh())
    return restore_params(folder, step, abstract_params(definition))


def evaluations(folder: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["eval/loss"]) for r in read_metrics(folder / "metrics.jsonl", "eval")]


def differ(a: dict, b: dict) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return any(not np.array_equal(x, y) for x, y in pairs)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_best_checkpoint_is_the_one_of_the_best_logged_evaluation(tmp_path, mode):
    settings = tiny_settings(**SETTINGS, best_metric="eval/loss", best_mode=mode)
    result = train(tiny_stage(), settings, paths(tmp_path))
    logged = evaluations(tmp_path)
    assert [step for step, _ in logged] == [4, 8, 12, 16, 20, 24]
    losses = [loss for _, loss in logged]
    best = int(np.argmin(losses) if mode == "min" else np.argmax(losses))
    record = BestRecord.read(best_record_path(tmp_path / "best"))
    assert (record.step, record.value) == logged[best]
    assert (record.metric, record.mode) == ("eval/loss", mode)
    assert result.best == TrainResult.read(tmp_path / "result.json").best == vars(record)
    assert CheckpointStore(tmp_path / "best").steps() == [record.step]  # one kept
    # the best checkpoint holds the parameters of its step: the regular one of that step
    final = params(tmp_path / "checkpoints", 24)
    kept = params(tmp_path / "best", record.step)
    if record.step == 24:
        jax.tree.map(np.testing.assert_array_equal, kept, final)
    else:  # the loss falls: the max is an early evaluation
        assert mode == "max" and differ(kept, final)
    # a Checkpoint of the best reads the recorded step
    checkpoint = Checkpoint.C(
        model=build("model", {"name": "transformer", "d_model": 32, "n_layers": 1, "n_heads": 2}),
        tokenizer=build("tokenizer", {"name": "bytes"}),
        path=tmp_path / "best",
        step=24,
        which="best",
    )
    assert checkpoint.chosen_step() == record.step


class Killed(Exception):
    pass


def test_a_resumed_run_keeps_the_best_so_far(tmp_path):
    """max of a falling loss: the best is the first evaluation, long before the kill. The
    resumed run restores it from the best checkpoint (its record made stale, as by a kill
    between the save and the record), so no later or replayed evaluation replaces it."""
    settings = tiny_settings(**SETTINGS, best_metric="eval/loss", best_mode="max")
    straight = train(tiny_stage(), settings, paths(tmp_path / "straight"))

    def kill_at_step_20(fraction: float, desc: str) -> None:
        if desc.startswith("step 20/"):
            raise Killed(desc)

    folder = tmp_path / "interrupted"
    with pytest.raises(Killed):
        train(tiny_stage(), settings, paths(folder), on_progress=kill_at_step_20)
    assert CheckpointStore(folder / "checkpoints").latest_step() == 16
    record_path = best_record_path(folder / "best")
    record = BestRecord.read(record_path)
    assert record.step == straight.best["step"] < 16
    stale = {**vars(record), "step": 12, "value": 99.0}
    record_path.write_text(json.dumps(stale))

    resumed = train(tiny_stage(), settings, paths(folder))
    assert resumed.best is not None and straight.best is not None
    keys = ("metric", "mode", "step", "value")
    assert {k: resumed.best[k] for k in keys} == {k: straight.best[k] for k in keys}
    assert BestRecord.read(record_path).step == straight.best["step"]
    step = straight.best["step"]
    jax.tree.map(
        np.testing.assert_array_equal,
        params(folder / "best", step),
        params(tmp_path / "straight" / "best", step),
    )


def test_best_metric_needs_the_best_folder(tmp_path):
    settings = tiny_settings(best_metric="eval/loss")
    plain = RunPaths(tmp_path / "c", tmp_path / "m.jsonl", tmp_path / "r.json")
    with pytest.raises(ValueError, match="paths.best"):
        train(tiny_stage(), settings, plain)


BEST_STAGES = """stages:
  pretrain:
    steps: 6
    eval_interval: 2
    checkpoint_interval: 6
    log_interval: 2
    schedule: {name: cosine, lr: 1.0e-2, lr_warmup_steps: 1}
    best_metric: eval/loss
    best_mode: max
  kl: null
  dpo: {init: INIT, steps: 2, eval_interval: 2, schedule: {name: cosine, lr_warmup_steps: 1}}
evaluation: {max_batches: 1, max_problems: 4}
"""


def plan(tmp_path: Path, init: str, run_mode: str = "dry_run") -> tuple[int, list[str], str]:
    xp = experiment_file(tmp_path, BEST_STAGES.replace("INIT", init))
    mode = ["--run-mode", run_mode] if run_mode else []
    done = run_cli(Path(xp), tmp_path / "ws", tmp_path / "home", *mode)
    return done.returncode, job_ids(done), done.stdout + done.stderr


def test_a_later_stage_plans_and_runs_from_the_best_checkpoint(tmp_path):
    code, final_jobs, output = plan(tmp_path, "pretrain")
    assert code == 0, output[-3000:]
    code, best_jobs, output = plan(tmp_path, "pretrain.best")
    assert code == 0, output[-3000:]
    pretrain = [job for job in best_jobs if ".pretrain." in job]
    assert pretrain == [job for job in final_jobs if ".pretrain." in job]  # the same job
    dpo = [job for job in best_jobs if ".dpo." in job]
    assert dpo and dpo[0] not in final_jobs  # another job: the init is part of its identity

    code, _, output = plan(tmp_path, "pretrain.best", run_mode="")
    assert code == 0, output[-3000:]
    folder = tmp_path / "ws" / "jobs" / pretrain[0]
    logged = evaluations(folder)
    record = BestRecord.read(folder / "best_checkpoint.json")
    assert (record.step, record.value) == max(logged, key=lambda item: item[1])
    assert record.step < 6  # the loss falls: the best of max is not the last
    loaded, final = load_checkpoint(folder, best=True), load_checkpoint(folder)
    assert (loaded.step, final.step) == (record.step, 6) and differ(loaded.params, final.params)
    init = json.loads((tmp_path / "ws" / "jobs" / dpo[0] / "params.json").read_text())
    assert "best_checkpoint" in json.dumps(init) and '"which": "best"' in json.dumps(init)
    assert TrainResult.read(tmp_path / "ws" / "jobs" / dpo[0] / "result.json").step == 2


def test_the_best_of_a_stage_without_best_metric_fails_planning(tmp_path):
    xp = experiment_file(tmp_path, BEST_STAGES.replace("INIT", "pretrain.best"))
    done = run_cli(
        Path(xp), tmp_path / "ws", tmp_path / "home", "-c", "stages.pretrain.best_metric=null"
    )
    assert done.returncode == 2, done.stderr[-3000:]
    message = " ".join(done.stderr.split())
    assert "stages.dpo.init: stage 'pretrain' keeps no best checkpoint: set " in message
    assert "pretrain.best_metric (e.g. eval/loss) to take pretrain.best" in message
    assert not (tmp_path / "ws" / "jobs").exists()
