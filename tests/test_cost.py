"""The cost of training jobs in the plan: parameters counted without JAX (checked against the
real model), tokens and FLOPs, the wall time from earlier jobs, from a calibration, and the
plan's ``cost:`` mappings and totals through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from xpm_train.graph.experiment import plan_experiment
from xpm_train.models import native
from xpm_train.models.config import TransformerConfig
from xpm_train.planning import calibrate
from xpm_train.planning.cost import (
    calibrated_wall,
    earlier_jobs,
    matmul_parameters,
    parameters,
    shape_id,
    shape_of,
    transformer_parameters,
    work,
)
from xpm_train.tasks.dpo import DPO
from xpm_train.tasks.kl_stage import KLStage
from xpm_train.tasks.pretrain import Pretrain

from .cli import job_folders, run_cli, run_experiment
from .conftest import PROJECT

SHAPES = [
    {},
    {"tie_embeddings": False},
    {"positions": "learned", "use_bias": True},
    {"norm": "rmsnorm", "use_bias": True, "tie_embeddings": False, "mlp_ratio": 2},
    {"n_layers": 3, "d_model": 48, "n_heads": 3, "positions": "learned"},
]


@pytest.mark.parametrize("fields", SHAPES)
def test_parameter_count_is_the_real_models(fields):
    import jax
    from flax import nnx

    values = {"d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 24, **fields}
    config = TransformerConfig.C(**values)
    model = config.create(vocab_size=37, seed=0)
    real = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert transformer_parameters(config, 37) == real
    lookups = (0 if config.tie_embeddings else 37) + (24 if config.positions == "learned" else 0)
    assert matmul_parameters(config, 37) == real - lookups * config.d_model


DECODERS = {
    "llama-gqa": ("llama", {"num_key_value_heads": 2}),
    "llama-biases-tied": (
        "llama",
        {"attention_bias": True, "mlp_bias": True, "tie_embeddings": True},
    ),
    "qwen2": ("qwen2", {"num_key_value_heads": 1, "head_dim": 8}),
    "gpt_neox": ("gpt_neox", {"rotary_pct": 0.5}),
}


@pytest.mark.parametrize("variant", sorted(DECODERS))
def test_parameter_count_of_the_hugging_face_families(variant):
    import jax
    from flax import nnx

    from xpm_train.registry import registered

    family, fields = DECODERS[variant]
    values = {
        "vocab_size": 41,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 48,
        **fields,
    }
    tie = values.get("tie_embeddings", False)
    config = registered("model")[family].C(**values)
    model = config.create(vocab_size=37, seed=0)
    real = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert parameters(config, 37) == real
    assert matmul_parameters(config, 37) == real - (0 if tie else 41 * 32)


def tiny_tasks() -> dict[str, Any]:
    """The training tasks of yaml/tiny.yaml, built (not submitted)."""
    values = yaml.safe_load((PROJECT / "yaml" / "tiny.yaml").read_text())
    planned, problems = plan_experiment(
        values["stages"], values["evaluation"], "t", lambda task, _: task.planned_output()
    )
    assert not problems and planned is not None
    return {instance.stage: instance.task for instance in planned.instances}


def test_tokens_and_flops_of_pretrain_kl_and_dpo():
    tasks = tiny_tasks()
    pretrain, kl, dpo = tasks["pretrain"], tasks["kl"], tasks["dpo"]
    assert isinstance(pretrain, Pretrain) and isinstance(kl, KLStage) and isinstance(dpo, DPO)
    model, vocab = pretrain.model, pretrain.tokenizer.vocab_size
    n = matmul_parameters(model, vocab)
    assert isinstance(model, TransformerConfig) and n is not None
    layers, width = model.n_layers, model.d_model
    # tied embeddings: every parameter multiplies activations (the embedding is the output layer)
    assert n == transformer_parameters(model, vocab)

    cost = work(pretrain)
    assert cost["steps"] == 40 and cost["tokens"] == 40 * 8 * 32
    assert cost["parameters"] == n
    assert cost["flops"] == cost["tokens"] * (6 * n + 12 * layers * width * 32)

    cost = work(kl)  # + the frozen reference's forward pass
    assert cost["tokens"] == 10 * 8 * 32
    per_token = 6 * n + 12 * layers * width * 32 + 2 * n + 4 * layers * width * 32
    assert cost["flops"] == cost["tokens"] * per_token

    cost = work(dpo)  # pairs: two sequences of seq_len per example
    assert cost["tokens"] == 10 * 8 * 2 * 16
    per_token = 6 * n + 12 * layers * width * 16 + 2 * n + 4 * layers * width * 16
    assert cost["flops"] == cost["tokens"] * per_token


def test_calibrated_wall_adds_one_off_costs_steps_evaluations_and_checkpoints():
    kl = tiny_tasks()["kl"]  # 10 steps of 8 x 32 tokens, evaluations and checkpoints every 5
    record = {
        "tokens_per_s": 256.0,  # one second a step
        "startup_s": 3.0,
        "setup_s": 2.0,
        "compile_s": 4.0,
        "finish_s": 1.0,
        "init_s": 0.7,  # random initialisation: a pretraining job's, not kl's
        "state_s": 0.4,
        "restore_s": 0.5,
        "eval_batches": 4,
        "eval_first_s": 1.5,
        "eval_s": 0.5,
        "checkpoint_first_s": 0.3,
        "checkpoint_s": 0.2,
    }
    # eval_batches=8 in tiny.yaml: capped at the 4 batches there are
    expected = 3 + 2 + 4 + 1 + 0.4 + 2 * 0.5 + 9 * 1.0 + (1.0 + 2 * 0.5) + (0.1 + 2 * 0.2)
    assert calibrated_wall(kl, record) == pytest.approx(expected)


def fake_finished_job(folder: Path, steps: int, tokens_per_s: float, wall_s: float) -> None:
    """What a finished training job leaves in its folder (read by the plan)."""
    records = [{"kind": "train", "step": s, "tokens_per_s": tokens_per_s} for s in (10, 20)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = {"step": steps, "checkpoint": "", "metrics": {}, "wall_time_s": wall_s - 5}
    (folder / "result.json").write_text(json.dumps(result))
    (folder / ".experimaestro").mkdir(exist_ok=True)
    status = {"started_time": "2026-01-01T10:00:00", "ended_time": "2026-01-01T10:00:00"}
    status["ended_time"] = f"2026-01-01T10:{int(wall_s) // 60:02d}:{int(wall_s) % 60:02d}"
    (folder / ".experimaestro" / "status.json").write_text(json.dumps(status))
    (folder / f"{folder.parent.name.split('.')[-1]}.done").touch()


def plan_of(stdout: str) -> list[dict]:
    """The jobs of the plan a dry run printed."""
    return yaml.safe_load(stdout.split("Plan (", 1)[1].split("\n", 1)[1].split("\nJobs:")[0])


def test_earlier_jobs_of_the_same_shape_give_the_wall_time(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    done = run_experiment(workdir, home, "--run-mode", "generate_only")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = job_folders(workdir)["pretrain"][0]
    # 40 steps of 256 tokens at 1024 tokens/s: 10 s of steps in a 25 s job
    fake_finished_job(folder, 40, 1024.0, 25.0)

    found = earlier_jobs([folder.parent])
    assert list(found) == [shape_id(shape_of(tiny_tasks()["pretrain"]))]
    assert found[next(iter(found))][0].one_off_s == pytest.approx(15.0)

    # 80 steps: same shape, another job; the rest of the graph is new and not calibrated
    env = {"XPM_TRAIN_CALIBRATE": "0"}
    done = run_cli(
        PROJECT / "yaml" / "tiny.yaml", workdir, home, "--run-mode", "dry_run",
        "-c", "stages.pretrain.steps=80", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Calibrating" not in done.stdout
    costs: dict[str, Any] = {
        job["job"].split("/")[0].split(".")[-1]: job.get("cost") for job in plan_of(done.stdout)
    }
    assert costs["pretrain"]["source"] == "from 1 earlier job"
    assert costs["pretrain"]["estimated wall_s"] == pytest.approx(15.0 + 20.0, abs=0.1)
    assert costs["pretrain"]["tokens"] == 80 * 256
    assert costs["klstage"]["source"] == "unknown (XPM_TRAIN_CALIBRATE=0)"
    assert "estimated wall" not in costs["klstage"] and costs["evaluate"] is None
    totals = done.stdout.split("Jobs:")[1].splitlines()[1]
    assert totals.startswith("Training: 3 job(s) to run: 25.6k tokens, ")
    assert "estimated wall 35s for 1 of the 3 jobs" in totals
    assert "wall times: 1 from earlier jobs, 2 unknown" in totals


def test_a_dry_run_calibrates_missing_shapes_once(tmp_path):
    path = tmp_path / "two.yaml"
    tiny = yaml.safe_load((PROJECT / "yaml" / "tiny.yaml").read_text())
    stages = {name: tiny["stages"][name] for name in ("pretrain", "dpo")}
    stages["dpo"]["init"] = "pretrain"
    values = {"id": "cost-test", "imports": [str(PROJECT / "yaml" / "base.yaml")]}
    path.write_text(yaml.safe_dump({**values, "stages": stages, "evaluation": tiny["evaluation"]}))
    workdir, home = tmp_path / "ws", tmp_path / "home"
    # the attention kernel this machine already built (the test's HOME is a fresh one)
    env = {"XPM_TRAIN_CALIBRATE": "1", "XPM_TRAIN_KERNEL_CACHE": str(native.cache_dir())}
    done = run_cli(path, workdir, home, "--run-mode", "dry_run", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Calibrating 2 job shape(s)" in done.stdout
    costs = [job["cost"] for job in plan_of(done.stdout) if "cost" in job]
    assert all(cost["source"].startswith("calibrated") for cost in costs)
    assert all(0 < cost["estimated wall_s"] < 600 for cost in costs)
    records = calibrate.read_cache(workdir)
    assert len(records) == 2
    for record in records.values():
        assert record["tokens_per_s"] > 0 and record["compile_s"] > 0 and record["startup_s"] > 0

    again = run_cli(path, workdir, home, "--run-mode", "dry_run", env=env)
    assert again.returncode == 0 and "Calibrating" not in again.stdout
    assert [job["cost"] for job in plan_of(again.stdout) if "cost" in job] == costs


def test_calibration_runs_on_dry_runs_when_asked_or_at_a_terminal(monkeypatch):
    monkeypatch.delenv(calibrate.SWITCH, raising=False)
    assert not calibrate.enabled(dry_run=True)  # pytest's output is not a terminal
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert calibrate.enabled(dry_run=True) and not calibrate.enabled(dry_run=False)
    monkeypatch.setenv(calibrate.SWITCH, "0")
    assert not calibrate.enabled(dry_run=True)
    monkeypatch.setenv(calibrate.SWITCH, "1")
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert calibrate.enabled(dry_run=True) and not calibrate.enabled(dry_run=False)
