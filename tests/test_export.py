"""Export to Hugging Face folders: transformers loads what xpm-train writes, with the same
logits (1e-4) and the same token ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.hf import make_model_folder
from tests.support.tiny import run_paths, tiny_components, tiny_settings, tiny_stage
from xpm_train.export.model import ExportError, export_model
from xpm_train.tasks.checkpoint import CheckpointValues, load_checkpoint
from xpm_train.training.loop import train

TEXTS = ["12+7=19", "héllo wörld ✓", "  two  spaces\tand a tab\n"]


def transformers_logits(folder, tokens):
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(torch.tensor(np.asarray(tokens))).logits.numpy()


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt_neox"])
def test_hf_folder_round_trip(tmp_path, family):
    source = make_model_folder(tmp_path / "source", family, seed=3)
    exported = export_model(source, tmp_path / "exported")
    tokens = np.random.default_rng(0).integers(0, 250, (2, 16))
    ours = np.asarray(load_checkpoint(source).model(tokens))
    np.testing.assert_allclose(transformers_logits(exported, tokens), ours, atol=1e-4)
    before, after = (AutoTokenizer.from_pretrained(f) for f in (source, exported))
    for text in TEXTS:
        assert after(text)["input_ids"] == before(text)["input_ids"]


def trained_transformer(tmp_path, **model):
    """The tiny transformer trained for 20 steps, as a checkpoint of its job."""
    stage = tiny_stage(model=model)
    train(stage, tiny_settings(total_steps=20, checkpoint_interval=10), run_paths(tmp_path))
    parts = tiny_components(model=model)
    return CheckpointValues(parts["model"], parts["tokenizer"], tmp_path / "checkpoints", 20)


@pytest.mark.parametrize(
    "model",
    [{}, {"use_bias": True}, {"tie_embeddings": False}],
    ids=["default", "biases", "untied"],
)
def test_trained_transformer_exports_as_gpt_neox(tmp_path, model):
    checkpoint = trained_transformer(tmp_path / "job", **model)
    exported = export_model(checkpoint, tmp_path / "hf")
    loaded = load_checkpoint(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(exported)
    ids = [tokenizer(text)["input_ids"] for text in TEXTS[:1]]
    assert ids[0] == loaded.tokenizer.encode(TEXTS[0]).tolist()
    tokens = np.asarray([loaded.tokenizer.encode("3+4=7 12+9=21 5+5=1")[:16]])
    ours = np.asarray(loaded.model(tokens))
    np.testing.assert_allclose(transformers_logits(exported, tokens), ours, atol=1e-4)


def test_what_cannot_be_exported_is_refused(tmp_path):
    checkpoint = trained_transformer(
        tmp_path / "job", norm="rmsnorm", positions="learned", use_bias=True, tie_embeddings=False
    )
    with pytest.raises(ExportError, match="norm=rmsnorm .*; positions=learned .*; use_bias"):
        export_model(checkpoint, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_model(make_model_folder(tmp_path / "src", "llama"), tmp_path / "taken")
    assert (tmp_path / "taken" / "file").read_text() == "mine"
