"""``xpm-train stages`` and ``xpm-train configure`` through the real command: the listing comes
from the registry, and the printed sections validate as they are (a dry run plans their jobs,
with the job ids of the defaults)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xpm_train.cli import main
from xpm_train.graph.dag import StageGraph
from xpm_train.graph.sections import stage_kinds
from xpm_train.registry import registered, registered_kinds
from xpm_train.tasks.trainer import TrainerTask
from xpm_train.validation import Problems

from .cli import job_ids, run_cli
from .conftest import PROJECT

BASE = PROJECT / "yaml" / "base.yaml"


def xpm_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xpm_train.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT,
    )


def stages_body(done: subprocess.CompletedProcess) -> str:
    """The output of ``configure`` without its ``stages:`` line (to join several)."""
    assert done.returncode == 0, done.stderr
    head, body = done.stdout.split("\n", 1)
    assert head == "stages:"
    return body


def experiment(folder: Path, name: str, stages: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"id: configure-test\nimports: [{BASE}]\nstages:\n{stages}")
    return path


def plan(path: Path, tmp_path: Path) -> list[str]:
    done = run_cli(path, tmp_path / f"ws-{path.stem}", tmp_path / "home", "--run-mode", "dry_run")
    assert done.returncode == 0, done.stderr[-3000:]
    return job_ids(done)


def test_stages_lists_the_registered_stage_kinds_and_components():
    done = xpm_train("stages")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for kind, cls in stage_kinds().items():
        line = next(line for line in lines if line.startswith(f"  {kind} "))
        assert (cls.__doc__ or kind).split()[0] in line
    assert "upstream: none (a first stage); key metrics: none besides the loss" in done.stdout
    assert "upstream: init (required), reference (optional); key metrics: ce, kl" in done.stdout
    assert "key metrics: rewards/accuracies, rewards/margins" in done.stdout
    components = done.stdout.split("\nComponents", 1)[1]
    for kind in registered_kinds():
        if kind != "stage":
            assert f"\n  {kind}:\n" in components
            for name in registered(kind):
                assert f"\n    {name} " in components


def identities(stages: str) -> dict[str, bytes]:
    """The identity of each stage's job (built in this process, nothing submitted)."""
    problems = Problems()
    graph = StageGraph(yaml.safe_load(f"stages:\n{stages}")["stages"])
    instances = graph.instances(lambda task, _: task.planned_output(), problems)
    assert not problems.found, problems.found
    return {i.stage: i.task.__xpm__.identifier.all for i in instances}


def test_configured_sections_validate_and_plan_the_default_jobs(tmp_path):
    """The three sections printed one by one (and every other stage kind at once), pasted into
    a file that imports base.yaml, plan their jobs; pretrain, kl and dpo are the jobs of the
    minimal sections (so the printed values are the defaults)."""
    configured = xpm_train("configure", "pretrain")
    body = stages_body(configured)
    body += stages_body(xpm_train("configure", "kl", "--name", "kl"))
    body += stages_body(xpm_train("configure", "dpo", "--name", "dpo"))
    # every other stage kind validates as printed, but those that read a folder of the user's
    needs_a_folder = {"hf"}
    others = sorted(set(stage_kinds()) - {"pretrain", "kl", "dpo"} - needs_a_folder)
    if others:  # e.g. sft
        body += stages_body(xpm_train("configure", *others))
    hf = xpm_train("configure", "hf").stdout
    assert "    path: null  # str, required: set it: The folder: config.json" in hf
    assert "    kind: pretrain  # Train a language model" in configured.stdout
    assert "    log_interval: 10  # int: Steps between two logged lines" in configured.stdout
    assert "    optimizer:  # optimizer (adamw, muon)\n      name: adamw" in configured.stdout
    assert "      weight_decay: 0.1  # float\n" in configured.stdout
    assert "    init: pretrain  # stage name, required (the upstream stage)" in body
    sections = yaml.safe_load("stages:\n" + body)["stages"]
    assert sorted(sections) == sorted(set(stage_kinds()) - needs_a_folder)
    assert sections["dpo"]["preferences"]["facts"]["name"] == "arithmetic"
    jobs = plan(experiment(tmp_path, "configured", body), tmp_path)
    tasks = [job.split("/")[0].split(".")[-1] for job in jobs]
    assert {"pretrain", "klstage", "dpo", "report"} <= set(tasks)
    models = [kind for kind in sections if issubclass(stage_kinds()[kind], TrainerTask)]
    # a job per stage, an evaluation per training stage, a report
    assert len(tasks) == len(sections) + len(models) + 1
    minimal = (
        "  pretrain: {kind: pretrain, dataset: {name: arithmetic}, steps: 1000}\n"
        "  kl: {kind: kl, init: pretrain, dataset: {name: arithmetic}}\n"
        "  dpo: {kind: dpo, init: pretrain, preferences: "
        "{name: arithmetic, facts: {name: arithmetic}}}\n"
    )
    printed = identities(body)
    assert {k: printed[k] for k in ("pretrain", "kl", "dpo")} == identities(minimal)


def test_a_component_kind_prints_one_spec(capsys):
    assert main(["configure", "schedule", "--name", "wsd"]) == 0
    spec = yaml.safe_load(capsys.readouterr().out)["schedule"]
    assert spec == {
        "name": "wsd",
        "lr": 0.001,
        "lr_min_ratio": 0.0,
        "lr_warmup_steps": 100,
        "decay_fraction": 0.2,
    }


def test_an_unknown_kind_exits_2_with_one_line_listing_the_kinds():
    done = xpm_train("configure", "nosuch")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"xpm-train configure: unknown kind 'nosuch'; the stage kinds are: "
        f"{', '.join(sorted(stage_kinds()))} (component kinds: "
        f"{', '.join(k for k in registered_kinds() if k != 'stage')})"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedule", "--name", "nosuch"], "unknown schedule 'nosuch'; available: cosine"),
        (["pretrain", "kl", "--name", "x"], "--name goes with a single kind"),
    ],
)
def test_bad_configure_arguments_exit_2_with_one_line(args, message, capsys):
    assert main(["configure", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and message in err
