"""config.json of a Hugging Face folder <-> a model component of :mod:`families`.

Every key of config.json that changes the function the model computes is either mapped to a
parameter or checked to have the value the implementation honours; anything else (a rope
scaling variant, sliding-window attention, dropout) is refused with the key and its value.
No jax import: planning reads these files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xpm_train.models.families import (
    LLAMA3_SCALING,
    DecoderConfig,
    GPTNeoXConfig,
    LlamaConfig,
    Qwen2Config,
)

FAMILIES: dict[str, type[DecoderConfig]] = {
    "llama": LlamaConfig,
    "qwen2": Qwen2Config,
    "gpt_neox": GPTNeoXConfig,
}
#: config.json keys that are not mapped to a parameter: bookkeeping and generation settings,
#: which do not change the computed function, and the keys checked by ``model_from_hf``.
_IGNORED = {
    "architectures", "transformers_version", "dtype", "torch_dtype", "use_cache",
    "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id", "model_type",
    "_name_or_path", "pretraining_tp", "output_hidden_states", "return_dict",
    "chunk_size_feed_forward", "is_encoder_decoder", "id2label", "label2id", "problem_type",
    "output_attentions", "is_decoder", "classifier_dropout", "tokenizer_class",
    "max_window_layers", "use_sliding_window", "sliding_window", "layer_types",
    "rope_parameters", "rope_scaling", "rope_theta", "rotary_emb_base", "partial_rotary_factor",
    "attention_dropout", "hidden_dropout", "use_parallel_residual", "rotary_pct",
}  # fmt: skip
_COMMON = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_seq_len",
    "head_dim": "head_dim",
    "hidden_act": "hidden_act",
    "tie_word_embeddings": "tie_embeddings",
}
_FAMILY_KEYS = {
    "llama": {
        "rms_norm_eps": "norm_eps",
        "num_key_value_heads": "num_key_value_heads",
        "attention_bias": "attention_bias",
        "mlp_bias": "mlp_bias",
    },
    "qwen2": {"rms_norm_eps": "norm_eps", "num_key_value_heads": "num_key_value_heads"},
    "gpt_neox": {
        "layer_norm_eps": "norm_eps",
        "use_parallel_residual": "use_parallel_residual",
        "attention_bias": None,  # checked: gpt_neox is implemented with biases
    },
}


class HFConfigError(ValueError):
    """config.json cannot be read or asks for something the implementation does not do."""


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise HFConfigError(f"{path} is missing: a Hugging Face model folder has a config.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise HFConfigError(f"{path} is not readable JSON ({error})") from None


def rope_settings(hf: dict[str, Any]) -> dict[str, Any]:
    """theta, rotary fraction and scaling, from transformers' ``rope_parameters`` or the older
    top-level keys."""
    parameters = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    rope_type = parameters.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    theta = parameters.get("rope_theta", hf.get("rope_theta", hf.get("rotary_emb_base", 10000.0)))
    fraction = parameters.get(
        "partial_rotary_factor", hf.get("partial_rotary_factor", hf.get("rotary_pct", 1.0))
    )
    values = {**scaling, **parameters}
    return {
        "type": rope_type or "default",
        "theta": float(theta),
        "fraction": float(fraction),
        "llama3": {key: values[key] for key in LLAMA3_SCALING if key in values},
    }


def model_from_hf(hf: dict[str, Any], where: str = "config.json") -> DecoderConfig:
    """The model component a config.json describes; HFConfigError names what is refused."""
    model_type = hf.get("model_type")
    if model_type not in FAMILIES:
        raise HFConfigError(
            f"{where}: model_type {model_type!r} is not supported; the supported families are "
            f"{', '.join(FAMILIES)}"
        )
    problems = []
    keys = {**_COMMON, **_FAMILY_KEYS[model_type]}
    values: dict[str, Any] = {}
    for key, value in hf.items():
        if key in keys and keys[key] is not None and value is not None:
            values[keys[key]] = value
        elif key not in keys and key not in _IGNORED and isinstance(value, (dict, list)):
            problems.append(f"{key} (an option this implementation does not know)")
    rope = rope_settings(hf)
    values["rope_theta"] = rope["theta"]
    if rope["type"] == "llama3" and model_type != "gpt_neox":
        values["rope_scaling"] = {k: float(v) for k, v in rope["llama3"].items()}
    elif rope["type"] not in ("default", None):
        problems.append(f"rope type {rope['type']!r} (only default and llama3 are implemented)")
    if model_type == "gpt_neox":
        values["rotary_pct"] = rope["fraction"]
        if hf.get("attention_bias") is False:
            problems.append("attention_bias false (gpt_neox is implemented with biases)")
    elif rope["fraction"] != 1.0:
        problems.append(f"partial_rotary_factor {rope['fraction']} (only gpt_neox has one)")
    for key in ("attention_dropout", "hidden_dropout"):
        if hf.get(key):
            problems.append(f"{key} {hf[key]} (dropout is not implemented: set it to 0)")
    sliding = [t for t in hf.get("layer_types") or [] if t != "full_attention"]
    if hf.get("use_sliding_window") or sliding:
        problems.append("sliding-window attention (use_sliding_window / layer_types)")
    if problems:
        raise HFConfigError(
            f"{where}: the {model_type} implementation does not honour " + "; ".join(problems)
        )
    try:
        return FAMILIES[model_type].C(**values)
    except (TypeError, ValueError) as error:
        raise HFConfigError(f"{where}: {error}") from None


def model_from_folder(folder: Path) -> DecoderConfig:
    return model_from_hf(read_config(folder), str(Path(folder) / "config.json"))


def hf_config(model: DecoderConfig, special_ids: dict[str, int | None]) -> dict[str, Any]:
    """The config.json of ``model`` (``special_ids``: bos/eos/pad token ids)."""
    family = model.family
    keys = {**_COMMON, **_FAMILY_KEYS[family]}
    config: dict[str, Any] = {"model_type": family, "architectures": [_ARCHITECTURES[family]]}
    for hf_key, own in keys.items():
        if own is not None:
            value = getattr(model, own)
            if value is not None:
                config[hf_key] = value
    rope: dict[str, Any] = {"rope_theta": model.rope_theta, "rope_type": "default"}
    if family == "gpt_neox":
        rope["partial_rotary_factor"] = model.rotary_pct  # type: ignore[attr-defined]
        config["rotary_pct"] = model.rotary_pct  # type: ignore[attr-defined]
        config["rotary_emb_base"] = model.rope_theta
        config["attention_bias"] = True
    else:
        config["rope_theta"] = model.rope_theta
        scaling = model.rope_scaling_factors()
        if scaling is not None:
            rope = {**rope, **scaling, "rope_type": "llama3"}
            config["rope_scaling"] = {**scaling, "rope_type": "llama3"}
    config["rope_parameters"] = rope
    config["torch_dtype"] = config["dtype"] = model.param_dtype
    for name, value in special_ids.items():
        if value is not None:
            config[f"{name}_token_id"] = value
    return config


_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gpt_neox": "GPTNeoXForCausalLM",
}
