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
    return yaml.safe_load(stdout.split("Plan (7 jobs):\n", 1)[1].split("\nJobs: ")[0])


def test_show_merges_pre_imports_main_post_and_overrides_in_order(dirs, tmp_path):
    workdir, home = dirs
    pre = tmp_path / "pre.yaml"
    pre.write_text(
        "stages: {pretrain: {eval_fraction: 0.3, steps: 1}, kl: {beta: 0.5}, dpo: {steps: 1}}\n"
        "evaluation: {seq_len: 16}\n"
    )
    post = tmp_path / "post.yaml"
    post.write_text("stages: {dpo: {steps: 7, beta: 0.3}}\n")
    done = run_experiment(
        workdir,
        home,
        "--show",
        "--pre-yaml",
        str(pre),
        "--post-yaml",
        str(post),
        "-c",
        "stages.dpo.beta=0.2",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    merged = yaml.safe_load(done.stdout)
    stages = merged["stages"]
    assert merged["evaluation"]["batch_size"] == 16  # main (tiny.yaml) > imports (base.yaml)
    assert merged["evaluation"]["seq_len"] == 32  # main > imports > pre
    assert stages["pretrain"]["eval_fraction"] == 0.3  # only pre sets it
    assert stages["pretrain"]["steps"] == 40  # main (tiny.yaml) > pre
    assert stages["kl"]["beta"] == 1.0  # main > pre
    assert stages["dpo"]["steps"] == 7  # post > main > pre
    assert stages["dpo"]["beta"] == 0.2  # -c > post
    lines = done.stdout.splitlines()
    assert "    beta: 0.2  # -c stages.dpo.beta=0.2" in lines
    assert f"    steps: 7  # {post}" in lines
    assert f"  seq_len: 32  # {TINY}" in lines
    assert not (workdir / "jobs").exists()


def test_dry_run_prints_every_job_with_resolved_parameters(dirs):
    workdir, home = dirs
    done = run_experiment(
        workdir,
        home,
        "--run-mode",
        "dry_run",
        "-c",
        "stages.dpo.beta=0.25",
        "-c",
        "stages.pretrain.dataset.operations=[+, -]",
        "-c",
        "stages.kl.schedule={name: cosine, lr: 0.002, lr_warmup_steps: 2}",
        "-c",
        "stages.kl.direction=reverse",
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
        ["-c", "stages.dpo.bta=0.5"],
        "stages.dpo.bta: unknown parameter (did you mean 'beta'?) of stage kind 'dpo'",
    ),
    "unknown key (YAML)": (
        "stagse: {pretrain: {steps: 3}}\n",
        "stagse: unknown key (from $xp); did you mean 'stages'?",
    ),
    "wrong type": (["-c", "stages.dpo.beta=abc"], "stages.dpo.beta: 'abc' is not a valid float"),
    "unknown upstream stage": (
        ["-c", "stages.dpo.reference=ref"],
        "stages.dpo.reference: unknown stage 'ref'; the stages are: dpo, kl, pretrain "
        "(from -c stages.dpo.reference=ref)",
    ),
    "a cycle": (
        "stages: {pretrain: {kind: kl, init: dpo, dataset: {name: arithmetic}}}\n",
        "the stages form a cycle: pretrain -> dpo -> pretrain",
    ),
    "unknown stage kind": (
        ["-c", "stages.extra={kind: orpo, init: dpo}"],
        "stages.extra.kind: unknown stage kind 'orpo'; the stage kinds are: "
        "bpe, dpo, export, hf, kl, pretrain, sft",
    ),
    "a reference given to a kind that takes none": (
        ["-c", "stages.pretrain.reference=kl"],
        "stages.pretrain.reference: unknown parameter of stage kind 'pretrain'",
    ),
    "DPO without preferences": (
        ["-c", "stages.dpo.preferences=null"],
        "stages.dpo.preferences: is required and cannot be null",
    ),
    "unknown component": (
        ["-c", "stages.pretrain.model.name=gpt"],
        "stages.pretrain.model.name: unknown model 'gpt'; "
        "available: gpt_neox, llama, qwen2, transformer",
    ),
    "unknown component parameter": (
        ["-c", "stages.pretrain.schedule.warmup=3"],
        "stages.pretrain.schedule.warmup: unknown parameter of schedule 'cosine'",
    ),
    "batch not divisible": (
        ["-c", "stages.pretrain.batch_size=10"],
        "stages.pretrain.batch_size: 10 is not divisible by micro_batch_size=4",
    ),
    "sequence longer than the model": (
        ["-c", "stages.kl.seq_len=64"],
        "stages.kl.seq_len: 64 exceeds the model's max_seq_len=32 (from -c stages.kl.seq_len=64)",
    ),
    "warmup longer than training": (
        ["-c", "stages.dpo.schedule.lr_warmup_steps=50"],
        "lr_warmup_steps=50 is longer than the training (10 steps)",
    ),
    "missing dataset file": (
        "stages: {kl: {dataset: {name: jsonl, path: /no/such/file.jsonl}}}\n",
        "stages.kl.dataset: jsonl dataset: file '/no/such/file.jsonl' does not exist (from $xp)",
    ),
    "empty dataset": (
        "stages: {kl: {dataset: {name: jsonl, path: $empty}}}\n",
        "jsonl dataset: $empty holds no record",
    ),
    "malformed JSONL line": (
        "stages: {kl: {dataset: {name: jsonl, path: $malformed}}}\n",
        "$malformed:2: malformed JSON line",
    ),
    "preference without chosen": (
        "stages: {dpo: {preferences: {name: jsonl, path: $no_chosen}}}\n",
        "$no_chosen:1: record has no string field 'chosen'",
    ),
    "arithmetic preferences from a stage without arithmetic facts": (
        "stages: {pretrain: {dataset: {name: jsonl, path: $text}}}\n",
        "stages.dpo.preferences.facts: stage 'pretrain' trains on a 'jsonl' dataset, which is "
        "not a ArithmeticDataset",
    ),
    "bad evaluation parameter": (
        ["-c", "evaluation.max_batch=3"],
        "evaluation.max_batch: unknown parameter of the evaluations",
    ),
    "bad override syntax": (["-c", "stages.dpo.beta"], "-c 'stages.dpo.beta': an override is"),
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
    assert done.returncode == 2, done.stderr[-3000:]
    message = " ".join(done.stderr.split())
    assert Template(expected).substitute(names) in message, done.stderr[-3000:]
    assert not (workdir / "jobs").exists()


def test_a_dataset_shorter_than_one_block_fails_its_job_and_the_command(dirs, tmp_path):
    workdir, home = dirs
    short = jsonl(tmp_path / "short.jsonl", {"text": "1+1=2"}, {"text": "2+2=4"})
    xp = experiment_file(
        tmp_path,
        f"stages: {{pretrain: {{dataset: {{name: jsonl, path: {short}}}}},\n"
        "  dpo: {preferences: {name: arithmetic, facts: {name: arithmetic, n_examples: 50}}}}\n",
    )
    done = run_experiment(workdir, home, yaml=xp)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "its training split is shorter than one block of seq_len + 1 = 33 tokens" in message
    assert "pretrain.err" in message and "Report:" not in done.stdout
