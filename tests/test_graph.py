"""The experiment graph in-process: upstream references, sweeps, nulls and reserved names, on
yaml/tiny.yaml merged with overrides as the CLI merges them (nothing is submitted)."""

from __future__ import annotations

import re
from typing import Any

from xpm_train.graph.dag import StageGraph, StageInstance
from xpm_train.graph.experiment import held_out_splits, validate_experiment
from xpm_train.planning.sources import Sources
from xpm_train.validation import Problems

from .cli import run_experiment
from .conftest import PROJECT

TINY = PROJECT / "yaml" / "tiny.yaml"


def values(*overrides: str) -> dict[str, Any]:
    return Sources.load(TINY, [], [], list(overrides)).values


def instances(*overrides: str) -> list[StageInstance]:
    problems = Problems()
    built = StageGraph(values(*overrides)["stages"]).instances(
        lambda task, _: task.planned_output(), problems
    )
    assert not problems.found, problems.found
    return built


def test_a_stage_that_starts_from_itself_is_a_cycle():
    assert validate_experiment(values("stages.dpo.init=dpo")) == [
        ("stages.dpo.init", "the stages form a cycle: dpo -> dpo")
    ]


def test_upstream_stages_can_be_swept():
    dpo = [i for i in instances("stages.dpo.init={sweep: [pretrain, kl]}") if i.stage == "dpo"]
    assert [i.point for i in dpo] == [{"dpo.init": "pretrain"}, {"dpo.init": "kl"}]
    assert dpo[0].task.init.model == dpo[1].task.init.model


def test_a_sweep_fans_out_downstream_and_labels_every_value_exactly():
    built = instances(
        "stages.pretrain.seed={sweep: [0, 1]}", "stages.dpo.beta={sweep: [0.1, 0.1000001]}"
    )
    assert [i.stage for i in built].count("kl") == 2
    dpo = [i.label for i in built if i.stage == "dpo"]
    assert len(set(dpo)) == 4
    assert "dpo[pretrain.seed=1, dpo.beta=0.1000001]" in dpo


def test_null_gives_a_parameter_its_default_and_removes_a_stage():
    built = instances("stages.dpo.beta=null", "stages.kl=null", "stages.dpo.init=pretrain")
    assert [i.stage for i in built] == ["pretrain", "dpo"]
    assert built[1].task.beta == 0.1


def test_a_stage_of_another_kind_does_not_inherit_the_old_parameters():
    sft = (
        "stages.kl={kind: sft, init: pretrain, seq_len: 16, "
        "completions: {name: arithmetic, facts: pretrain}}"
    )
    assert validate_experiment(values(sft)) == []
    assert "dataset" not in values(sft)["stages"]["kl"]


def test_a_swept_component_replaces_the_spec_it_is_merged_over():
    swept = (
        "stages.dpo.schedule={sweep: "
        "[{name: cosine, lr_warmup_steps: 2}, {name: wsd, lr_warmup_steps: 2}]}"
    )
    names = [i.task.schedule.registered_name for i in instances(swept) if i.stage == "dpo"]
    assert names == ["cosine", "wsd"]


def test_names_of_other_jobs_are_reserved_and_kinds_cannot_be_swept():
    problems = dict(validate_experiment(values("stages.report={kind: kl, init: pretrain}")))
    assert "is reserved" in problems["stages.report"]
    problems = dict(validate_experiment(values("stages.kl.kind={sweep: [kl, sft]}")))
    assert problems["stages.kl.kind"].startswith("a stage kind cannot be swept")


def test_held_out_splits_are_named_by_stage_and_by_job_when_a_stage_sweeps_its_data():
    assert sorted(held_out_splits(instances())) == ["kl", "pretrain"]
    swept = instances("stages.kl.dataset.n_examples={sweep: [200, 300]}")
    assert sorted(held_out_splits(swept)) == [
        "kl[kl.dataset.n_examples=200]",
        "kl[kl.dataset.n_examples=300]",
        "pretrain",
    ]


def test_jobs_are_tagged_with_their_stage_and_grid_point_and_tags_stay_their_own(tmp_path):
    """What experimaestro's TUI and ``xpm-train monitor`` show next to each job, as a dry run
    of the real CLI submits them: an upstream job's ``stage`` tag does not propagate into the
    jobs that take its checkpoint, nor every evaluation's into the report (no tag conflict)."""
    done = run_experiment(
        tmp_path / "runs",
        tmp_path / "home",
        "--run-mode",
        "dry_run",
        "-c",
        "stages.dpo.beta={sweep: [0.1, 0.5]}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    simulated = re.findall(
        r"Simulating xpm_train\.tasks\.\S+\.(\w+)/[0-9a-f]{64} ?(.*)", done.stdout + done.stderr
    )
    assert sorted(simulated) == [
        ("dpo", "(stage=dpo, dpo_beta=0.1)"),
        ("dpo", "(stage=dpo, dpo_beta=0.5)"),
        ("evaluate", "(evaluates=dpo, dpo_beta=0.1)"),
        ("evaluate", "(evaluates=dpo, dpo_beta=0.5)"),
        ("evaluate", "(evaluates=kl)"),
        ("evaluate", "(evaluates=pretrain)"),
        ("klstage", "(stage=kl)"),
        ("pretrain", "(stage=pretrain)"),
        ("report", ""),
    ]
    assert "conflicting" not in done.stdout + done.stderr


def test_the_driver_names_a_job_by_its_stage_and_grid_point():
    from xpm_train.graph.tags import job_label

    swept = {"stage": "dpo", "pretrain_schedule_lr": "0.01", "dpo_beta": "0.5"}
    assert job_label(swept, "dpo", "c50f4453" + "0" * 56) == (
        "dpo/c50f4453 (pretrain_schedule_lr=0.01, dpo_beta=0.5)"
    )
    assert job_label({"evaluates": "kl"}, "evaluation", "f4f1546a") == "evaluate kl/f4f1546a"
    assert job_label({}, "report", "f87da7d5" + "0" * 56) == "report/f87da7d5"
