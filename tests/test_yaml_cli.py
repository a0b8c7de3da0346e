"""The YAML front door through the real CLI: merge order, overrides, --show, the dry-run plan,
and a clear error, before anything is submitted, for each kind of bad input."""

import json
from pathlib import Path
from string import Template

import pytest
import yaml

from .cli import run_experiment
from .conftest import PROJECT

TINY = PROJECT / "yaml" / "tiny.yaml"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    home.mkdir()
    return tmp_path / "ws", home


def experiment_file(folder: Path, text: str) -> str:
    """A YAML file importing tiny.yaml (by absolute path) plus ``text``."""
    path = folder / "xp.yaml"
    path.write_text(f"imports: [{TINY}]\n{text}")
    return str(path)


def plan_of(stdout: str) -> list[dict]:
    return yaml.safe_load(stdout.split("Plan (7 jobs):\n", 1)[1].split("\nReport: ")[0])


def test_show_merges_pre_imports_main_post_and_overrides_in_order(dirs, tmp_path):
    workdir, home = dirs
    pre = tmp_path / "pre.yaml"
    pre.write_text("pretrain: {eval_fraction: 0.3, steps: 1}\nkl: {beta: 0.5}\ndpo: {steps: 1}\n")
    post = tmp_path / "post.yaml"
    post.write_text("dpo: {steps: 7, beta: 0.3}\n")
    done = run_experiment(
        workdir,
        home,
        "--show",
        "--pre-yaml",
        str(pre),
        "--post-yaml",
        str(post),
        "-c",
        "dpo.beta=0.2",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    merged = yaml.safe_load(done.stdout)
    assert merged["pretrain"]["eval_fraction"] == 0.05  # imports (base.yaml) > pre
    assert merged["pretrain"]["steps"] == 40  # main (tiny.yaml) > pre
    assert merged["kl"]["beta"] == 1.0  # main > pre
    assert merged["dpo"]["steps"] == 7  # post > main > pre
    assert merged["dpo"]["beta"] == 0.2  # -c > post
    lines = done.stdout.splitlines()
    assert "  beta: 0.2  # -c dpo.beta=0.2" in lines
    assert f"  steps: 7  # {post}" in lines
    assert f"  eval_fraction: 0.05  # {PROJECT / 'yaml' / 'base.yaml'}" in lines
    assert not (workdir / "jobs").exists()


def test_dry_run_prints_every_job_with_resolved_parameters(dirs):
    workdir, home = dirs
    done = run_experiment(
        workdir,
        home,
        "--run-mode",
        "dry_run",
        "-c",
        "dpo.beta=0.25",
        "-c",
        "pretrain.dataset.operations=[+, -]",
        "-c",
        "kl.schedule={name: cosine, lr: 0.002, lr_warmup_steps: 2}",
        "-c",
        "kl.direction=reverse",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = {job["job"].split("/")[0].split(".")[-1]: job for job in plan_of(done.stdout)}
    assert set(jobs) == {"pretrain", "klstage", "dpo", "evaluate", "report"}
    pretrain, kl, dpo = jobs["pretrain"], jobs["klstage"], jobs["dpo"]
    assert pretrain["parameters"]["dataset"]["operations"] == ["+", "-"]
    assert pretrain["parameters"]["optimizer"]["eps"] == 1e-8  # a default, not in the YAML
    assert pretrain["depends on"] == [] and pretrain["state"] == "to run"
    assert kl["parameters"]["schedule"] == {
        "type": "xpm_train.optim.schedules.cosine",
        "lr": 0.002,
        "lr_min_ratio": 0.1,
        "lr_warmup_steps": 2,
    }
    assert kl["parameters"]["direction"] == "reverse"
    assert kl["depends on"] == [pretrain["job"]]
    assert dpo["parameters"]["beta"] == 0.25 and dpo["depends on"] == [kl["job"]]
    assert len(jobs["report"]["depends on"]) == 3
    assert not (workdir / "jobs").exists()


def jsonl(path: Path, *records: object) -> str:
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records))
    return str(path)


BAD_INPUTS = {
    "unknown key (-c)": (
        ["-c", "dpo.bta=0.5"],
        "dpo.bta: unknown key (from -c dpo.bta=0.5); did you mean 'dpo.beta'?",
    ),
    "unknown key (YAML)": (
        "pretrian: {steps: 3}\n",
        "pretrian: unknown key (from $xp); did you mean 'pretrain'?",
    ),
    "wrong type": (["-c", "dpo.beta=abc"], "dpo.beta: expected float, got 'abc'"),
    "not an allowed value": (
        ["-c", "dpo.reference=ref"],
        "dpo.reference: expected one of 'init', 'pretrain', got 'ref'",
    ),
    "unknown component": (
        ["-c", "pretrain.model.name=gpt"],
        "pretrain.model.name: unknown model 'gpt'; available: transformer",
    ),
    "unknown component parameter": (
        ["-c", "pretrain.schedule.warmup=3"],
        "pretrain.schedule.warmup: unknown parameter of schedule 'cosine'",
    ),
    "batch not divisible": (
        ["-c", "pretrain.batch_size=10"],
        "batch_size=10 is not divisible by micro_batch_size=4",
    ),
    "sequence longer than the model": (
        ["-c", "kl.seq_len=64"],
        "kl: seq_len=64 must be in [1, the model's max_seq_len=32]",
    ),
    "warmup longer than training": (
        ["-c", "dpo.schedule.lr_warmup_steps=50"],
        "lr_warmup_steps=50 is longer than the training (10 steps)",
    ),
    "missing dataset file": (
        "kl: {dataset: {name: jsonl, path: /no/such/file.jsonl}}\n",
        "jsonl dataset: file '/no/such/file.jsonl' does not exist",
    ),
    "empty dataset": (
        "kl: {dataset: {name: jsonl, path: $empty}}\n",
        "jsonl dataset: $empty holds no record",
    ),
    "malformed JSONL line": (
        "kl: {dataset: {name: jsonl, path: $malformed}}\n",
        "$malformed:2: malformed JSON line",
    ),
    "preference without chosen": (
        "dpo: {preferences: {name: jsonl, path: $no_chosen}}\n",
        "$no_chosen:1: record has no string field 'chosen'",
    ),
    "arithmetic preferences without arithmetic facts": (
        "pretrain: {dataset: {name: jsonl, path: $text}}\n",
        "'arithmetic' preferences are made from the pretraining facts, but pretrain.dataset is "
        "not an arithmetic dataset",
    ),
    "bad override syntax": (["-c", "dpo.beta"], "-c 'dpo.beta': an override is written"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_before_anything_is_submitted(case, dirs, tmp_path):
    workdir, home = dirs
    names = {
        "empty": jsonl(tmp_path / "empty.jsonl"),
        "malformed": jsonl(tmp_path / "bad.jsonl", {"text": "1+1=2"}, "{oops\n"),
        "text": jsonl(tmp_path / "text.jsonl", *[{"text": f"{i}+{i}={2 * i}"} for i in range(30)]),
        "no_chosen": jsonl(tmp_path / "p.jsonl", {"prompt": "1+1=", "rejected": "3"}),
    }
    given, expected = BAD_INPUTS[case]
    if isinstance(given, str):
        names["xp"] = experiment_file(tmp_path, Template(given).substitute(names))
        done = run_experiment(workdir, home, yaml=names["xp"])
    else:
        done = run_experiment(workdir, home, *given)
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert Template(expected).substitute(names) in message, done.stderr[-3000:]
    assert not (workdir / "jobs").exists()


def test_a_dataset_shorter_than_one_block_fails_its_job_and_the_command(dirs, tmp_path):
    workdir, home = dirs
    short = jsonl(tmp_path / "short.jsonl", {"text": "1+1=2"}, {"text": "2+2=4"})
    xp = experiment_file(
        tmp_path,
        f"pretrain: {{dataset: {{name: jsonl, path: {short}}}}}\n"
        "dpo: {preferences: {name: arithmetic, facts: {name: arithmetic, n_examples: 50}}}\n",
    )
    done = run_experiment(workdir, home, yaml=xp)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "its training split is shorter than one block of seq_len + 1 = 33 tokens" in message
    assert "pretrain.err" in message and "Report:" not in done.stdout
