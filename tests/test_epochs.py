"""Epoch budgets: ``steps = ceil(epochs * epoch size / batch_size)``, the epoch size counted at
planning in packed blocks (text) or examples (pairs, completions); exactly one budget; the
plan shows the epochs and their steps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from xpm_train.data.blocks import BlockData
from xpm_train.data.completions import CompletionData
from xpm_train.data.packing import encode_documents, split_documents
from xpm_train.data.pairs import PairData
from xpm_train.registry import build
from xpm_train.tasks.dpo import DPO
from xpm_train.tasks.pretrain import Pretrain
from xpm_train.tasks.sft import SFT
from xpm_train.training import budget
from xpm_train.validation import ConfigError, validate

from .cli import run_experiment
from .conftest import PROJECT
from .test_stage_tasks import common
from .test_yaml_cli import experiment_file, plan_of

FACTS = {"name": "arithmetic", "n_examples": 120, "max_operand": 30}
BYTES = build("tokenizer", {"name": "bytes"}).instance()


def pretrain(**overrides) -> Pretrain:
    values = {
        "model": build("model", {"name": "transformer", "max_seq_len": 16}),
        "tokenizer": build("tokenizer", {"name": "bytes"}),
        "dataset": build("dataset", FACTS),
        "schedule": build("schedule", {"name": "cosine", "lr_warmup_steps": 1}),
        "seq_len": 16,
        "batch_size": 8,
        "micro_batch_size": 8,
    }
    values.update(overrides)
    return Pretrain.C(**values)


def dpo(**overrides) -> DPO:
    preferences = build("preferences", {"name": "arithmetic", "facts": build("dataset", FACTS)})
    values = common(**overrides)
    return DPO.C(preferences=preferences, **{k: v for k, v in values.items() if v is not None})


def sft(path: Path, **overrides) -> SFT:
    completions = build("completions", {"name": "jsonl", "path": str(path)})
    values = common(**overrides)
    return SFT.C(completions=completions, **{k: v for k, v in values.items() if v is not None})


def completions_file(folder: Path, count: int) -> Path:
    path = folder / "completions.jsonl"
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1)} for i in range(count)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_text_epochs_count_packed_blocks_of_the_training_split():
    task = pretrain(epochs=1.5)
    documents = build("dataset", FACTS).instance().documents()
    train, _ = split_documents(documents, task.eval_fraction, task.seed)
    tokens = sum(len(doc) for doc in encode_documents(train, BYTES))
    blocks = (tokens - 1) // 16
    assert task.total_steps() == math.ceil(1.5 * blocks / 8)
    # the loader's epoch holds exactly those blocks
    data = BlockData.from_dataset(task.dataset.instance(), BYTES, 16, 8, 0.05, 2, 0)
    assert data.train_batches(1).size == blocks
    validate(task)


def test_pair_epochs_count_the_training_pairs():
    task = dpo(steps=None, epochs=2.0)
    # the preferences keep the facts' training split (114 of 120), the stage holds out 5% of them
    kept, _ = split_documents(list(range(114)), task.eval_fraction, task.seed)
    assert task.total_steps() == math.ceil(2.0 * len(kept) / 8)
    data = PairData.from_dataset(task.preferences.instance(), BYTES, 16, 8, 0.05, 2, 0)
    assert len(data.train["chosen"]) == len(kept)
    validate(task)


def test_completion_epochs_read_the_decimal_as_written(tmp_path):
    path = completions_file(tmp_path, 105)  # 5 held out, 100 trained on
    task = sft(path, steps=None, epochs=0.56)
    assert 0.56 * 100 / 8 > 7  # in binary floating point: 7.000000000000001
    assert task.total_steps() == 7
    data = CompletionData.from_dataset(task.completions.instance(), BYTES, 16, 8, 0.05, 2, 0)
    assert len(data.train["tokens"]) == 100


@pytest.mark.parametrize(
    ("make", "key", "message"),
    [
        (lambda: pretrain(), "steps", "one of steps and tokens, or epochs instead (none is given)"),
        (lambda: pretrain(steps=5, epochs=1.0), "epochs", "(steps and epochs are given)"),
        (lambda: pretrain(tokens=500, epochs=1.0), "epochs", "(tokens and epochs are given)"),
        (lambda: dpo(steps=20, epochs=1.0), "epochs", "give steps or epochs, not both (steps=20"),
        (lambda: dpo(steps=None, epochs=0.0), "epochs", "0.0 must be a positive number"),
    ],
)
def test_one_budget_and_a_positive_one(make, key, message):
    with pytest.raises(ConfigError) as raised:
        validate(make())
    assert [k for k, m in raised.value.problems if message in m] == [key], raised.value.problems


def test_a_finetuning_stage_takes_epochs_instead_of_its_default_steps():
    task = dpo(steps=None, epochs=1.0)
    assert task.steps == 200 and task.total_steps() == 14
    assert budget.explicit(dpo(), "steps") and not budget.explicit(task, "steps")


def test_epochs_need_data_readable_at_planning(monkeypatch, tmp_path):
    monkeypatch.setattr(budget, "readable_at_planning", lambda *paths: False)
    task = sft(completions_file(tmp_path, 20), steps=None, epochs=1.0)
    with pytest.raises(ConfigError, match="epochs: epochs become steps at planning, from the size"):
        validate(task)
    missing = sft(tmp_path / "nothing.jsonl", steps=None, epochs=1.0)
    with pytest.raises(ConfigError, match="training data file .*nothing.jsonl' does not exist"):
        missing.total_steps()


def test_the_plan_shows_the_epochs_and_their_steps(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    overrides = [
        *("-c", "stages.pretrain.steps=null", "-c", "stages.pretrain.epochs=2"),
        *("-c", "stages.dpo.steps=null", "-c", "stages.dpo.epochs=0.5"),
    ]
    done = run_experiment(tmp_path / "ws", home, "--run-mode", "dry_run", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    costs = {
        job["job"].split("/")[0].split(".")[-1]: job.get("cost") for job in plan_of(done.stdout)
    }
    # tiny.yaml: 400 facts with operands up to 20, seq_len 32, batches of 8 (pretrain); the
    # dpo pairs are the pretraining facts' training split (380), 5% of them held out (361)
    tiny = yaml.safe_load((PROJECT / "yaml" / "tiny.yaml").read_text())
    spec = tiny["stages"]["pretrain"]["dataset"]
    documents = build("dataset", spec).instance().documents()
    train, _ = split_documents(documents, 0.05, 0)
    tokens = sum(len(doc) for doc in encode_documents(train, BYTES))
    blocks = (tokens - 1) // 32
    assert costs["pretrain"]["epochs"] == 2.0
    assert costs["pretrain"]["per epoch"] == f"{blocks} blocks"
    assert costs["pretrain"]["steps"] == math.ceil(2 * blocks / 8)
    assert costs["dpo"]["epochs"] == 0.5 and costs["dpo"]["per epoch"] == "361 examples"
    assert costs["dpo"]["steps"] == math.ceil(0.5 * 361 / 8) == 23
    assert costs["klstage"]["steps"] == 10 and "epochs" not in costs["klstage"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["-c", "stages.pretrain.epochs=2"],
            "stages.pretrain.epochs: give exactly one of steps and tokens, or epochs instead "
            "(steps and epochs are given)",
        ),
        (
            ["-c", "stages.kl.epochs=1"],
            "stages.kl.epochs: give steps or epochs, not both (steps=10 is given)",
        ),
    ],
)
def test_two_budgets_fail_planning_naming_the_key(overrides, expected, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    done = run_experiment(tmp_path / "ws", home, "--run-mode", "dry_run", *overrides)
    assert done.returncode == 2, done.stderr[-3000:]
    assert expected in " ".join(done.stderr.split())
    assert not (tmp_path / "ws" / "jobs").exists()


def test_epochs_of_text_in_tokens_of_an_upstream_tokenizer_fail_planning(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    xp = experiment_file(
        tmp_path,
        "stages:\n"
        "  tok: {kind: bpe, dataset: {name: arithmetic, n_examples: 100}, vocab_size: 300}\n"
        "  pretrain: {tokenizer: tok, steps: null, epochs: 1}\n",
    )
    done = run_experiment(tmp_path / "ws", home, "--run-mode", "dry_run", yaml=xp)
    assert done.returncode == 2, done.stderr[-3000:]
    message = " ".join(done.stderr.split())
    assert "stages.pretrain.epochs: epochs become steps at planning" in message
    assert "a tokenizer that an upstream job trains; give steps instead" in message
    assert not (tmp_path / "ws" / "jobs").exists()
