"""The llama, qwen2 and gpt_neox decoders against transformers (PyTorch, float32): the same
logits from the same Hugging Face folder, config.json options refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.support.hf import make_model_folder
from xpm_train.models.hf_config import HFConfigError, model_from_folder, model_from_hf
from xpm_train.tasks.checkpoint import load_checkpoint

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
#: Every family and the options the parity covers: GQA, q/k/v biases, tied and untied
#: embeddings, llama3 rope scaling, partial rotary, parallel and sequential residuals.
VARIANTS = {
    "llama-gqa-untied": ("llama", {}),
    "llama-llama3-tied": ("llama", {"rope_scaling": LLAMA3, "tie_word_embeddings": True}),
    "llama-biases-mha": ("llama", {"attention_bias": True, "num_key_value_heads": 4}),
    "qwen2-tied": ("qwen2", {}),
    "gpt_neox-parallel": ("gpt_neox", {}),
    "gpt_neox-sequential-tied": (
        "gpt_neox",
        {"use_parallel_residual": False, "tie_word_embeddings": True, "rotary_pct": 1.0},
    ),
}


def reference_logits(folder, tokens, mask=None):
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        given = {"attention_mask": torch.tensor(mask)} if mask is not None else {}
        return model(torch.tensor(tokens), **given).logits.numpy()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_match_transformers(tmp_path, variant):
    family, overrides = VARIANTS[variant]
    folder = make_model_folder(tmp_path / variant, family, seed=1, **overrides)
    loaded = load_checkpoint(folder)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, loaded.tokenizer.vocab_size, (3, 24))
    mask = np.ones_like(tokens)
    mask[1, 17:] = 0  # right padding
    mask[2, :6] = 0  # left padding
    plain = np.asarray(loaded.model(tokens))
    assert np.abs(plain - reference_logits(folder, tokens)).max() <= 1e-4
    masked = np.asarray(loaded.model(tokens, attention_mask=mask))
    expected = reference_logits(folder, tokens, mask)
    valid = mask.astype(bool)
    assert np.abs(masked - expected)[valid].max() <= 1e-4
    assert loaded.step == 0 and type(loaded.model).__name__ == "Decoder"


def test_sharded_weights_and_bfloat16_parameters(tmp_path):
    """A checkpoint split in several safetensors files with their index loads the same; a
    bfloat16 folder gives bfloat16 parameters when asked."""
    folder = make_model_folder(tmp_path / "one", "llama")
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "sharded" / name).write_bytes((folder / name).read_bytes())
    tokens = np.arange(12)[None] % 50
    one = np.asarray(load_checkpoint(folder).model(tokens))
    sharded = np.asarray(load_checkpoint(tmp_path / "sharded").model(tokens))
    np.testing.assert_array_equal(one, sharded)

    from xpm_train.tasks.hf_model import read_hf_folder

    bf16 = read_hf_folder(folder, param_dtype="bfloat16").load()
    kernel = bf16.params["layers"][0]["attn"]["q"]["kernel"]
    assert str(kernel.dtype) == "bfloat16"
    # a bfloat16 file: its values, exactly, whatever the parameters' type
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "bf16" / name).write_bytes((folder / name).read_bytes())
    stored = model.model.layers[0].self_attn.q_proj.weight.float().detach().numpy().T
    for dtype in ("float32", "bfloat16"):
        loaded = read_hf_folder(tmp_path / "bf16", param_dtype=dtype).load()
        kernel = loaded.params["layers"][0]["attn"]["q"]["kernel"]
        np.testing.assert_array_equal(np.asarray(kernel, np.float32), stored)


def config_of(tmp_path, family="llama", **overrides):
    folder = make_model_folder(tmp_path / family, family, **overrides)
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model_type": "mistral"}, "model_type 'mistral' is not supported"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "rope type 'yarn'"),
        ({"use_sliding_window": True}, "sliding-window attention"),
        ({"attention_dropout": 0.1}, "attention_dropout 0.1"),
        ({"quantization_config": {"bits": 4}}, "quantization_config"),
    ],
)
def test_unsupported_options_are_named(tmp_path, change, named):
    config = {**config_of(tmp_path), **change}
    with pytest.raises(HFConfigError, match=named.replace("(", r"\(")):
        model_from_hf(config, "models/x/config.json")


def test_config_round_trip_keeps_the_architecture(tmp_path):
    from xpm_train.models.hf_config import hf_config

    for family in ("llama", "qwen2", "gpt_neox"):
        model = model_from_folder(make_model_folder(tmp_path / family, family))
        written = hf_config(model, {"eos": 1})
        again = model_from_hf(json.loads(json.dumps(written)))
        assert again.__xpm__.identifier.all == model.__xpm__.identifier.all, family


def test_missing_files_are_named(tmp_path):
    with pytest.raises(HFConfigError, match="config.json is missing"):
        model_from_folder(tmp_path)


SHARDED_SCRIPT = """
import json, sys
import jax, numpy as np
from xpm_train.tasks.hf_model import read_hf_folder
from xpm_train.tasks.checkpoint import restore_checkpoint
from xpm_train.training.mesh import make_mesh
assert jax.device_count() == 2
checkpoint = read_hf_folder(sys.argv[1])
definition, params = restore_checkpoint(checkpoint, make_mesh(model_parallel=2))
kernel = params["layers"][0]["mlp"]["up"]["kernel"]
tokens = np.arange(24).reshape(2, 12) % 97
with jax.set_mesh(definition.mesh):
    logits = definition.merge(params)(tokens)
print("RESULT" + json.dumps({"spec": str(kernel.sharding.spec),
      "shards": len(kernel.addressable_shards), "logits": np.asarray(logits).tolist()}))
"""


def test_weights_load_sharded_over_a_model_parallel_mesh(tmp_path):
    """Tensor parallel over 2 devices: each MLP kernel is split over the model axis as it is
    read, and the logits are those of one device."""
    from .support.devices import run_on_two_devices

    folder = make_model_folder(tmp_path / "llama", "llama")
    result = run_on_two_devices(SHARDED_SCRIPT, str(folder))
    assert result["spec"] == "P(None, 'model')" and result["shards"] == 2
    tokens = np.arange(24).reshape(2, 12) % 97
    single = np.asarray(load_checkpoint(folder).model(tokens))
    np.testing.assert_allclose(np.asarray(result["logits"]), single, atol=1e-5)


def test_a_changed_file_of_the_folder_changes_the_jobs_identity(tmp_path):
    import os

    from xpm_train.tasks.hf_model import read_hf_folder

    folder = make_model_folder(tmp_path / "llama", "llama")

    def identity() -> bytes:
        return read_hf_folder(folder).__xpm__.identifier.all

    before = identity()
    assert identity() == before  # reading is stable
    for name in ("model.safetensors", "tokenizer.json"):
        stat = (folder / name).stat()
        os.utime(folder / name, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert identity() != before, name
        before = identity()
