"""The SFT stage: completion-only loss, its data, the real loop, and an experiment through the
CLI (planning and its errors)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx

from xpm_train.data.completions import (
    ArithmeticCompletions,
    Completion,
    CompletionData,
    JsonlCompletions,
    encode_completions,
)
from xpm_train.data.datasets import ArithmeticDataset, DatasetError
from xpm_train.data.packing import split_documents
from xpm_train.data.tokenizers import ByteTokenizer, Tokenizer
from xpm_train.models.config import ModelConfig
from xpm_train.objectives.language_model import NextTokenPrediction
from xpm_train.optim.schedules import Cosine
from xpm_train.registry import build
from xpm_train.tasks.checkpoint import Checkpoint, restore_checkpoint
from xpm_train.tasks.sft import SFT
from xpm_train.training.loop import train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.step import make_eval_step
from xpm_train.validation import validate

from .cli import run_cli
from .conftest import PROJECT
from .support.tiny import run_paths, tiny_model, tiny_settings, tiny_specs, tiny_stage

TOKENIZER = ByteTokenizer.C().instance()
T = TypeVar("T")
EXAMPLES = [("1+2=", "3"), ("10+20=", "30"), ("7+7=", "14"), ("0+5=", "5")]


def jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def completions_file(tmp_path: Path) -> JsonlCompletions:
    records = [{"prompt": prompt, "completion": answer} for prompt, answer in EXAMPLES]
    return JsonlCompletions.C(path=jsonl(tmp_path / "sft.jsonl", records)).instance()


def tiny(kind: str, cls: type[T]) -> T:
    """The tiny configuration's component of ``kind`` (as ``tiny_stage`` builds it)."""
    config = build(kind, tiny_specs()[kind])
    assert isinstance(config, cls)
    return config


class SeesOriginalInputs(nnx.Module):
    """A model whose logits are those of a batch's original inputs, whatever the tokens: with
    it, changing a token changes a target only."""

    def __init__(self, logits: jax.Array) -> None:
        self.logits = logits

    def __call__(self, tokens: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        return self.logits


def test_masks_cover_the_completion_and_its_eos_only():
    arrays = encode_completions([Completion(*e) for e in EXAMPLES[:2]], TOKENIZER, seq_len=10)
    tokens, mask = arrays["tokens"], arrays["mask"]
    assert tokens.shape == (2, 11) and mask.shape == (2, 10)
    assert tokens[0, 0] == TOKENIZER.eos_id and TOKENIZER.decode(tokens[0]) == "1+2=3"
    assert tokens[0, 6] == TOKENIZER.eos_id and (tokens[0, 7:] == TOKENIZER.pad_id).all()
    # [eos] 1 + 2 = 3 [eos]: the targets are tokens[1:]; "3" and the eos are targets 4 and 5
    assert mask[0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert mask[1].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]
    for row, (_, answer) in enumerate(EXAMPLES[:2]):
        scored = tokens[row, 1:][mask[row] == 1]
        assert scored.tolist() == [*TOKENIZER.encode(answer).tolist(), TOKENIZER.eos_id]


def test_stage_data_splits_pads_and_rejects_long_examples(tmp_path):
    dataset = completions_file(tmp_path)
    data = CompletionData.from_dataset(dataset, TOKENIZER, 12, 4, 0.25, 2, seed=0)
    assert len(data.train["tokens"]) == 3 and len(data.eval["tokens"]) == 1
    batch = data.train_batches(accum_steps=2)(0)
    assert batch["tokens"].shape == (2, 2, 13) and batch["mask"].shape == (2, 2, 12)
    (held_out,) = data.eval_batches(batch_size=4)
    assert held_out["mask"][1:].sum() == 0 and (held_out["tokens"][1:] == TOKENIZER.pad_id).all()
    with pytest.raises(
        DatasetError, match=re.escape("example 1 (from 0: '10+20=' -> '30') has 10 tok")
    ):
        CompletionData.from_dataset(dataset, TOKENIZER, 8, 4, 0.0, 2, seed=0)


def test_jsonl_records_need_both_fields(tmp_path):
    path = jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q", "completion": "A"}, {"prompt": "Q"}])
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: record has no string field 'complet"):
        validate(JsonlCompletions.C(path=path))
    with pytest.raises(DatasetError, match="jsonl completions: file .* does not exist"):
        validate(JsonlCompletions.C(path=str(tmp_path / "none.jsonl")))


def test_arithmetic_completions_use_training_facts_only():
    facts = ArithmeticDataset.C(n_examples=200, max_operand=30)
    pairs = ArithmeticCompletions.C(facts=facts, eval_fraction=0.1, split_seed=3).pairs()
    _, held_out = split_documents(facts.problems(), 0.1, 3)
    assert len(pairs) == 180
    assert not {pair.prompt for pair in pairs} & {prompt for prompt, _ in held_out}
    assert all(eval(pair.prompt[:-1]) == int(pair.completion) for pair in pairs)


def test_only_completion_targets_change_the_loss(tmp_path):
    data = CompletionData.from_dataset(completions_file(tmp_path), TOKENIZER, 12, 4, 0.0, 1, 0)
    batch = {k: jnp.asarray(v[0]) for k, v in data.train_batches(accum_steps=1)(0).items()}
    graphdef, params = nnx.split(tiny_model())
    forward = jax.jit(lambda params, inputs: nnx.merge(graphdef, params)(inputs))
    model = SeesOriginalInputs(forward(params, batch["tokens"][:, :-1]))

    def loss(tokens: jax.Array) -> float:
        out = NextTokenPrediction()(model, {**batch, "tokens": tokens}, None, None)
        assert float(out.weight) == float(batch["mask"].sum())  # completion tokens + eos
        return float(out.loss_sum / out.weight)

    base = loss(batch["tokens"])
    mask = np.asarray(batch["mask"][0])
    prompt_target, completion_target = 1, int(np.argmax(mask))  # mask[1] == 0: in the prompt
    assert mask[prompt_target] == 0 and mask[completion_target] == 1
    for target, changes in ((prompt_target, False), (completion_target, True)):
        tokens = batch["tokens"].at[0, target + 1].set(ord("x"))
        assert (abs(loss(tokens) - base) > 1e-3) is changes


def test_sft_lowers_the_held_out_completion_loss(tmp_path):
    """Pretrain the tiny model briefly, then run the SFT task's own stage in the real loop:
    the loss of the completions of facts neither stage saw goes down."""
    model, tokenizer = tiny("model", ModelConfig), tiny("tokenizer", Tokenizer)
    facts = tiny("dataset", ArithmeticDataset)
    quick = {"eval_interval": 1000, "checkpoint_interval": 1000}  # one evaluation, at the end
    train(tiny_stage(seq_len=16), tiny_settings(**quick), run_paths(tmp_path / "pretrain"))
    init = Checkpoint.C(
        model=model, tokenizer=tokenizer, path=tmp_path / "pretrain" / "checkpoints", step=24
    )
    task = SFT.C(
        init=init,
        completions=ArithmeticCompletions.C(facts=facts, eval_fraction=0.1, split_seed=0),
        schedule=Cosine.C(lr=3e-3, lr_warmup_steps=2),
        steps=30,
        seq_len=16,
        batch_size=8,
        micro_batch_size=8,
        eval_interval=1000,
        checkpoint_interval=1000,
    )
    validate(task)
    train(task.build_stage(), task.loop_settings(), run_paths(tmp_path / "sft"))
    after = Checkpoint.C(
        model=model, tokenizer=tokenizer, path=tmp_path / "sft" / "checkpoints", step=30
    )

    _, held_out = split_documents(facts.problems(), 0.1, 0)  # tiny_stage's split
    examples = [Completion(*problem) for problem in held_out]
    batch = {k: jnp.asarray(v) for k, v in encode_completions(examples, TOKENIZER, 16).items()}
    mesh = make_mesh()
    definition, before_params = restore_checkpoint(init, mesh)
    step = jax.jit(make_eval_step(definition, NextTokenPrediction()))

    def completion_loss(params: Any) -> float:
        out = step(params, batch, None)
        return float(out.loss_sum / out.weight)

    before = completion_loss(before_params)
    later = completion_loss(restore_checkpoint(after, mesh)[1])
    print(f"held-out completion loss: {before:.3f} -> {later:.3f}")
    assert later < before - 0.2


# An experiment through the real CLI: tiny.yaml's pretrain stage, then SFT on its facts.
SFT_STAGE = """
stages:
  kl: null
  dpo: null
  sft:
    kind: sft
    init: pretrain
    completions: {completions}
    schedule: {{name: cosine, lr: 3.0e-3, lr_warmup_steps: 2}}
    seq_len: 16
    batch_size: 8
    micro_batch_size: 8
    steps: 10
    eval_interval: 5
    checkpoint_interval: 5
"""
ARITHMETIC = "{name: arithmetic, facts: pretrain}"


def run_graph(tmp_path: Path, completions: str = ARITHMETIC, extra: str = ""):
    experiment = tmp_path / "sft.yaml"
    body = SFT_STAGE.format(completions=completions) + extra
    experiment.write_text(f"imports: [{PROJECT / 'yaml' / 'tiny.yaml'}]\n{body}")
    workdir = tmp_path / "ws"
    # XPM_TRAIN_CALIBRATE=0: no timing of the job shapes (tens of seconds) in a dry run
    env = {"XPM_TRAIN_CALIBRATE": "0"}
    done = run_cli(experiment, workdir, tmp_path / "home", "--run-mode", "dry_run", env=env)
    return done, experiment, workdir


def test_a_pretrain_sft_graph_plans_sft_after_pretrain(tmp_path):
    done, _, _ = run_graph(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    plan = re.split(r"Plan \(\d+ jobs\):\n", done.stdout, maxsplit=1)[1].split("\n\n")[0]
    jobs = {job["job"].split("/")[0].split(".")[-1]: job for job in yaml.safe_load(plan)}
    assert set(jobs) == {"pretrain", "sft", "evaluate", "report"}
    pretrain, sft = jobs["pretrain"], jobs["sft"]
    assert sft["depends on"] == [pretrain["job"]]
    completions = sft["parameters"]["completions"]
    assert completions["facts"] == pretrain["parameters"]["dataset"]
    assert completions["eval_fraction"] == pretrain["parameters"]["eval_fraction"]


@pytest.mark.parametrize(
    ("completions", "extra", "expected"),
    [
        (ARITHMETIC, "    reference: pretrain\n", "stages.sft.reference: unknown parameter"),
        (
            "{name: jsonl, path: /no/such/file.jsonl}",
            "",
            "stages.sft.completions: jsonl completions: file '/no/such/file.jsonl' does not exist",
        ),
    ],
)
def test_planning_errors_name_the_key_and_the_file(tmp_path, completions, extra, expected):
    done, experiment, workdir = run_graph(tmp_path, completions, extra)
    assert done.returncode == 2, done.stderr[-3000:]
    message = " ".join(done.stderr.split())
    assert expected in message and str(experiment) in message, done.stderr[-3000:]
    assert not (workdir / "jobs").exists()
