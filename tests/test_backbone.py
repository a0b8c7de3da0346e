"""yaml/backbone.yaml through the real ``experimaestro run-experiment``: a tiny llama folder
made by scripts/make_tiny_hf.py's functions, continued pretraining, SFT and DPO from it, and
the DPO model exported back to a folder that transformers loads with the same logits."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from tests.support.hf import make_model_folder
from xpm_train.tasks.checkpoint import load_checkpoint

from .cli import job_folders, run_cli
from .conftest import PROJECT


def records(job: Path, kind: str) -> list[dict]:
    lines = (job / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_sft_and_dpo_from_a_llama_folder_then_export(tmp_path):
    backbone = make_model_folder(tmp_path / "tiny-llama", "llama")
    experiment = tmp_path / "backbone.yaml"
    experiment.write_text(
        f"imports: [{PROJECT / 'yaml' / 'backbone.yaml'}]\n"
        f"stages:\n  base: {{path: {backbone}}}\n  dpo: {{log_interval: 1}}\n"
    )
    workdir = tmp_path / "runs"
    done = run_cli(experiment, workdir, tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = job_folders(workdir)
    assert sorted(jobs) == ["dpo", "evaluate", "export", "klstage", "report", "sft"]
    assert len(jobs["evaluate"]) == 4  # the backbone is evaluated too

    dpo = records(jobs["dpo"][0], "train")
    # the policy starts as its reference: the first step's loss is log 2
    assert abs(dpo[0]["loss"] - math.log(2)) < 1e-4
    early = np.mean([r["rewards/accuracies"] for r in dpo[:10]])
    late = np.mean([r["rewards/accuracies"] for r in dpo[-10:]])
    assert late > early + 0.2, (early, late)

    exported = jobs["export"][0] / "hf"
    trained = load_checkpoint(jobs["dpo"][0])
    tokens = np.asarray([trained.tokenizer.encode_prompt("12+7=")])
    reference = AutoModelForCausalLM.from_pretrained(exported).eval()
    with torch.no_grad():
        theirs = reference(torch.tensor(tokens)).logits.numpy()
    np.testing.assert_allclose(theirs, np.asarray(trained.model(tokens)), atol=1e-4)
    report = next(jobs["report"][0].glob("report.md")).read_text()
    assert "| base | 0 |" in report


BPE_GRAPH = """imports: [{tiny}]
stages:
  kl: null
  dpo: null
  tok:
    kind: bpe
    dataset: {{name: arithmetic, n_examples: 400, max_operand: 20}}
    vocab_size: 300
  pretrain: {{tokenizer: tok}}
"""


def test_a_trained_bpe_is_the_tokenizer_of_a_pretrain_stage(tmp_path):
    experiment = tmp_path / "bpe.yaml"
    experiment.write_text(BPE_GRAPH.format(tiny=PROJECT / "yaml" / "tiny.yaml"))
    done = run_cli(experiment, tmp_path / "runs", tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = job_folders(tmp_path / "runs")
    assert sorted(jobs) == ["evaluate", "pretrain", "report", "trainbpe"]
    tokenizer_file = jobs["trainbpe"][0] / "tokenizer.json"
    loaded = load_checkpoint(jobs["pretrain"][0])
    assert loaded.params["embed"]["embedding"].shape[0] == 300
    assert str(loaded.tokenizer.tokenizer_path()) == str(tokenizer_file)
    assert len(loaded.tokenizer.encode("12+7=19")) < len("12+7=19")  # merges learned


def test_stage_outputs_of_the_wrong_kind_are_named(tmp_path):
    experiment = tmp_path / "bpe.yaml"
    body = BPE_GRAPH.format(tiny=PROJECT / "yaml" / "tiny.yaml")
    body += "  sft: {kind: sft, init: tok, completions: {name: arithmetic, facts: pretrain}}\n"
    body += (
        "  other: {kind: pretrain, tokenizer: pretrain, dataset: {name: arithmetic}, steps: 5}\n"
    )
    experiment.write_text(body)
    done = run_cli(experiment, tmp_path / "runs", tmp_path / "home", "--run-mode", "dry_run")
    assert done.returncode == 2
    assert "stages.sft.init: stage 'tok' (bpe) produces no model checkpoint" in done.stderr
    assert "stages.other.tokenizer: stage 'pretrain' (pretrain) gives no tokenizer" in done.stderr
    assert not (tmp_path / "runs" / "jobs").exists()


def test_bad_backbone_folders_are_planning_errors(tmp_path):
    """A missing folder, an unsupported model_type or config option, a missing tokenizer:
    one line naming the key and the file, exit 2, nothing submitted."""
    good = make_model_folder(tmp_path / "good", "llama")
    cases = {
        "missing": ("is not a folder (a Hugging Face model is a local folder)", None),
        "mistral": ("model_type 'mistral' is not supported", {"model_type": "mistral"}),
        "yarn": (
            "does not honour rope type 'yarn'",
            {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}},
        ),
        "no-tokenizer": ("has no tokenizer.json", "tokenizer.json"),
    }
    for name, (message, change) in cases.items():
        folder = tmp_path / name
        if change is not None:
            shutil.copytree(good, folder)
            if isinstance(change, dict):
                config = json.loads((folder / "config.json").read_text())
                (folder / "config.json").write_text(json.dumps({**config, **change}))
            else:
                (folder / change).unlink()
        done = run_cli(
            PROJECT / "yaml" / "backbone.yaml",
            tmp_path / "runs",
            tmp_path / "home",
            "--run-mode",
            "dry_run",
            "-c",
            f"stages.base.path={folder}",
        )
        assert done.returncode == 2, name
        assert "stages.base.path: " in done.stderr and str(folder) in done.stderr, name
        assert message in done.stderr, (name, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "runs" / "jobs").exists()


def test_a_family_model_from_scratch_is_checked_against_its_tokenizer(tmp_path):
    """A llama pretrained from scratch with an hf tokenizer: a relative tokenizer path and an
    embedding smaller than the vocabulary are planning errors; fixed, the stage trains."""
    folder = make_model_folder(tmp_path / "tiny-llama", "llama")
    model = (
        "{name: llama, vocab_size: VOCAB, hidden_size: 32, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 64, max_seq_len: 64}"
    )
    experiment = tmp_path / "scratch.yaml"
    body = (
        f"imports: [{PROJECT / 'yaml' / 'tiny.yaml'}]\nstages:\n  kl: null\n  dpo: null\n"
        f"  pretrain:\n    model: {model}\n    tokenizer: {{name: hf, path: PATH}}\n"
    )
    experiment.write_text(body.replace("VOCAB", "256").replace("PATH", "tiny-llama"))
    done = run_cli(experiment, tmp_path / "runs", tmp_path / "home", cwd=tmp_path)
    assert done.returncode == 2
    assert "stages.pretrain.model.vocab_size: vocab_size=256 is smaller than the tokenizer's" in (
        done.stderr
    )
    assert "stages.pretrain.tokenizer: tokenizer path 'tiny-llama' is relative" in done.stderr
    experiment.write_text(body.replace("VOCAB", "320").replace("PATH", str(folder)))
    done = run_cli(experiment, tmp_path / "runs", tmp_path / "home")
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = load_checkpoint(job_folders(tmp_path / "runs")["pretrain"][0])
    assert type(loaded.model).__name__ == "Decoder"
    assert loaded.params["embed"]["embedding"].shape == (320, 32)


def test_a_graph_without_held_out_text_says_what_to_add(tmp_path):
    experiment = tmp_path / "no-text.yaml"
    experiment.write_text(
        f"imports: [{PROJECT / 'yaml' / 'backbone.yaml'}]\n"
        "stages:\n  text: null\n"
        "  sft: {init: base, completions: {name: arithmetic, facts: {name: arithmetic}}}\n"
        "  dpo: {preferences: {name: arithmetic, facts: {name: arithmetic}}}\n"
        f"  base: {{path: {make_model_folder(tmp_path / 'llama', 'llama')}}}\n"
    )
    done = run_cli(experiment, tmp_path / "runs", tmp_path / "home", "--run-mode", "dry_run")
    assert done.returncode == 2
    assert "stages: no stage trains on a text dataset" in done.stderr
    assert not (tmp_path / "runs" / "jobs").exists()
