"""A trained model written as a Hugging Face folder: config.json, model.safetensors and the
tokenizer files, loadable by ``transformers.AutoModelForCausalLM`` / ``AutoTokenizer``.

llama, qwen2 and gpt_neox models are written in their own family. xpm-train's transformer is
written in the gpt_neox layout (LayerNorm, GELU MLP, rotary positions; its missing biases are
zeros); the options gpt_neox cannot express are refused by name (:func:`exportable`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from xpm_train.models.config import ModelConfig, TransformerConfig
from xpm_train.models.families import DecoderConfig, GPTNeoXConfig


class ExportError(ValueError):
    """The model cannot be written in a Hugging Face family, or the folder is in the way."""


def exportable(model: ModelConfig) -> DecoderConfig:
    """The Hugging Face family configuration ``model`` is written as (ExportError if none)."""
    if isinstance(model, DecoderConfig):
        return model
    if not isinstance(model, TransformerConfig):
        raise ExportError(f"a {type(model).__name__} model has no Hugging Face layout")
    refused = []
    if model.norm != "layernorm":
        refused.append(f"norm={model.norm} (gpt_neox uses layernorm; llama's MLP is gated)")
    if model.positions != "rope":
        refused.append(f"positions={model.positions} (gpt_neox uses rotary positions)")
    if model.use_bias and not model.tie_embeddings:
        refused.append("use_bias with untied embeddings (gpt_neox's output has no bias)")
    if refused:
        raise ExportError(
            "the transformer is written in the gpt_neox layout, which cannot express "
            + "; ".join(refused)
        )
    return GPTNeoXConfig.C(
        vocab_size=0,  # set from the embedding by export_model
        hidden_size=model.d_model,
        num_hidden_layers=model.n_layers,
        num_attention_heads=model.n_heads,
        intermediate_size=model.mlp_ratio * model.d_model,
        max_seq_len=model.max_seq_len,
        rope_theta=model.rope_base,
        norm_eps=model.norm_eps,
        hidden_act="gelu",
        tie_embeddings=model.tie_embeddings,
        rotary_pct=1.0,
        use_parallel_residual=False,
        param_dtype=model.param_dtype,
        compute_dtype=model.compute_dtype,
    )


def _zeros_like_last(kernel: Any) -> Any:
    import jax.numpy as jnp

    return jnp.zeros(kernel.shape[-1], kernel.dtype)


def _linear(layer: dict[str, Any]) -> dict[str, Any]:
    return {"kernel": layer["kernel"], "bias": layer.get("bias", _zeros_like_last(layer["kernel"]))}


def _norm(norm: dict[str, Any]) -> dict[str, Any]:
    return {"scale": norm["scale"], "bias": norm.get("bias", _zeros_like_last(norm["scale"]))}


def transformer_as_decoder(params: dict[str, Any], d_model: int) -> dict[str, Any]:
    """The transformer's parameters in the :class:`Decoder` layout (separate q/k/v)."""
    layers = {}
    for index, block in params["blocks"].items():
        qkv = _linear(block["attn"]["qkv"])
        parts = {
            name: {
                "kernel": qkv["kernel"][:, i * d_model : (i + 1) * d_model],
                "bias": qkv["bias"][i * d_model : (i + 1) * d_model],
            }
            for i, name in enumerate("qkv")
        }
        layers[index] = {
            "attn_norm": _norm(block["attn_norm"]),
            "attn": {**parts, "o": _linear(block["attn"]["out"])},
            "mlp_norm": _norm(block["mlp_norm"]),
            "mlp": {"up": _linear(block["mlp"]["up"]), "down": _linear(block["mlp"]["down"])},
        }
    converted = {
        "embed": params["embed"],
        "layers": layers,
        "final_norm": _norm(params["final_norm"]),
    }
    if "lm_head" in params:
        converted["lm_head"] = {"kernel": params["lm_head"]["kernel"]}
    return converted


def export_model(source: Any, folder: Path, step: int | None = None) -> Path:
    """Write the checkpoint ``source`` (a Checkpoint, a training job's folder or a Hugging
    Face folder) to ``folder`` as a Hugging Face model; returns the folder.

    The folder is written beside its final place and renamed when complete: an interrupted
    export leaves nothing half-written. An existing non-empty folder is refused.
    """
    from xpm_train.export.tokenizer import save_tokenizer
    from xpm_train.models.hf_config import hf_config
    from xpm_train.models.hf_weights import hf_tensors, save_params
    from xpm_train.tasks.checkpoint import checkpoint_in_folder, load_checkpoint

    folder = Path(folder).absolute()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(f"{folder} exists and is not empty: give a new folder")
    checkpoint = checkpoint_in_folder(Path(source)) if isinstance(source, (str, Path)) else source
    model = checkpoint.model
    target = exportable(model)  # refused before anything is loaded
    loaded = load_checkpoint(checkpoint, step)
    params = loaded.params
    if not isinstance(model, DecoderConfig):
        params = transformer_as_decoder(params, model.d_model)
        target.vocab_size = int(params["embed"]["embedding"].shape[0])
    tokenizer = loaded.tokenizer
    special = {
        "bos": getattr(tokenizer, "bos_id", None),
        "eos": tokenizer.eos_id,
        "pad": tokenizer.pad_id,
    }
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_params(hf_tensors(target, params), partial)
    (partial / "config.json").write_text(json.dumps(hf_config(target, special), indent=2))
    generation = {f"{name}_token_id": value for name, value in special.items() if value is not None}
    (partial / "generation_config.json").write_text(json.dumps(generation, indent=2))
    save_tokenizer(tokenizer, partial)
    if folder.exists():
        folder.rmdir()
    os.replace(partial, folder)
    return folder
