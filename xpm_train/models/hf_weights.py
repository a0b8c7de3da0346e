"""safetensors weights of a Hugging Face folder <-> the parameters of a :class:`Decoder`.

Loading reads one tensor at a time (``safe_open``, single or sharded files with their
index), turns it into the parameter's layout and dtype and places it with the parameter's
sharding: the host never holds a second full copy of the model (docs/hf.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from xpm_train.models.families import DecoderConfig

Params = dict[str, Any]
#: A parameter's path in the params dict, e.g. ("layers", 0, "attn", "q", "kernel").
ParamPath = tuple[Any, ...]
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class HFWeightsError(ValueError):
    """The folder's weights are missing, incomplete or of the wrong shape."""


def weight_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it."""
    folder = Path(folder)
    if (folder / INDEX).is_file():
        index = json.loads((folder / INDEX).read_text())
        return {name: folder / file for name, file in index["weight_map"].items()}
    if (folder / SINGLE).is_file():
        from safetensors import safe_open

        with safe_open(folder / SINGLE, framework="flax") as handle:
            return dict.fromkeys(handle.keys(), folder / SINGLE)
    raise HFWeightsError(f"{folder} has neither {SINGLE} nor {INDEX}")


def _prefix(config: DecoderConfig) -> str:
    return "gpt_neox." if config.family == "gpt_neox" else "model."


def _layer_names(config: DecoderConfig) -> dict[tuple[str, ...], str]:
    """Own names inside a layer -> HF names (without the parameter suffix)."""
    if config.family == "gpt_neox":
        return {
            ("attn_norm",): "input_layernorm",
            ("mlp_norm",): "post_attention_layernorm",
            ("attn", "o"): "attention.dense",
            ("mlp", "up"): "mlp.dense_h_to_4h",
            ("mlp", "down"): "mlp.dense_4h_to_h",
        }
    return {
        ("attn_norm",): "input_layernorm",
        ("mlp_norm",): "post_attention_layernorm",
        ("attn", "q"): "self_attn.q_proj",
        ("attn", "k"): "self_attn.k_proj",
        ("attn", "v"): "self_attn.v_proj",
        ("attn", "o"): "self_attn.o_proj",
        ("mlp", "gate"): "mlp.gate_proj",
        ("mlp", "up"): "mlp.up_proj",
        ("mlp", "down"): "mlp.down_proj",
    }


_SUFFIX = {"kernel": "weight", "scale": "weight", "bias": "bias", "embedding": "weight"}


def hf_name(config: DecoderConfig, path: ParamPath) -> tuple[str, str | None]:
    """The HF tensor of a parameter, and for gpt_neox's fused q/k/v which part of it."""
    prefix, leaf = _prefix(config), _SUFFIX[path[-1]]
    head = "embed_in" if config.family == "gpt_neox" else "embed_tokens"
    final = "final_layer_norm" if config.family == "gpt_neox" else "norm"
    if path[0] == "embed":
        return f"{prefix}{head}.weight", None
    if path[0] == "final_norm":
        return f"{prefix}{final}.{leaf}", None
    if path[0] == "lm_head":
        return "lm_head.weight", None
    layer, inner = path[1], tuple(path[2:-1])
    base = f"{prefix}layers.{layer}."
    if config.family == "gpt_neox" and inner in (("attn", "q"), ("attn", "k"), ("attn", "v")):
        return f"{base}attention.query_key_value.{leaf}", inner[1]
    return f"{base}{_layer_names(config)[inner]}.{leaf}", None


#: Older gpt_neox checkpoints (Pythia) name the output projection embed_out.
_ALIASES = {"lm_head.weight": ("embed_out.weight",)}


def _fused_part(tensor: np.ndarray, part: str, config: DecoderConfig) -> np.ndarray:
    """q, k or v rows of gpt_neox's query_key_value, laid out (heads, 3, head_size)."""
    heads, size = config.num_attention_heads, config.head_size
    fused = tensor.reshape(heads, 3, size, *tensor.shape[1:])
    return fused[:, "qkv".index(part)].reshape(heads * size, *tensor.shape[1:])


def _to_param(
    tensor: np.ndarray, path: ParamPath, part: str | None, config: DecoderConfig
) -> np.ndarray:
    if part is not None:
        tensor = _fused_part(tensor, part, config)
    return tensor.T if path[-1] == "kernel" else tensor


class _Reader:
    """Tensors of safetensors files as numpy arrays on the host (bfloat16 ones through the
    flax reader, numpy's reader having no bfloat16)."""

    def __init__(self) -> None:
        self.handles: dict[tuple[Path, str], Any] = {}

    def read(self, file: Path, name: str) -> np.ndarray:
        numpy = self._handle(file, "numpy")
        if numpy.get_slice(name).get_dtype() != "BF16":
            return numpy.get_tensor(name)
        return np.asarray(self._handle(file, "flax").get_tensor(name))

    def _handle(self, file: Path, framework: str) -> Any:
        from safetensors import safe_open

        key = (file, framework)
        if key not in self.handles:
            self.handles[key] = safe_open(file, framework=framework).__enter__()
        return self.handles[key]

    def close(self) -> None:
        for handle in self.handles.values():
            handle.__exit__(None, None, None)


def _leaves(params: Params) -> Iterator[tuple[ParamPath, Any]]:
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        yield tuple(getattr(key, "key", getattr(key, "idx", key)) for key in path), leaf


def _set(tree: Params, path: ParamPath, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def load_params(folder: Path, config: DecoderConfig, abstract: Params) -> Params:
    """The parameters of ``abstract`` (ShapeDtypeStructs with shardings) read from the
    folder's safetensors files."""
    files = weight_files(folder)
    reader = _Reader()
    params: Params = {}
    try:
        for path, target in _leaves(abstract):
            name, part = hf_name(config, path)
            found = next((n for n in (name, *_ALIASES.get(name, ())) if n in files), None)
            if found is None:
                raise HFWeightsError(f"{folder}: the weights have no tensor {name!r}")
            value = _to_param(reader.read(files[found], found), path, part, config)
            if tuple(value.shape) != tuple(target.shape):
                raise HFWeightsError(
                    f"{folder}: tensor {found!r} has shape {tuple(value.shape)}, the config "
                    f"implies {tuple(target.shape)}"
                )
            value = np.ascontiguousarray(value, dtype=target.dtype)
            _set(params, path, jax.device_put(value, target.sharding))
            del value
    finally:
        reader.close()
    return params


def hf_tensors(config: DecoderConfig, params: Params) -> dict[str, np.ndarray]:
    """The parameters as HF tensors (numpy, on the host), ready for ``save_file``."""
    tensors: dict[str, np.ndarray] = {}
    fused: dict[str, dict[str, np.ndarray]] = {}
    for path, value in _leaves(params):
        name, part = hf_name(config, path)
        array = np.asarray(jax.device_get(value))
        array = array.T if path[-1] == "kernel" else array
        if part is None:
            tensors[name] = array
            continue
        fused.setdefault(name, {})[part] = array
    heads, size = config.num_attention_heads, config.head_size
    for name, parts in fused.items():
        rest = parts["q"].shape[1:]
        stacked = np.stack([parts[p].reshape(heads, size, *rest) for p in "qkv"], axis=1)
        tensors[name] = stacked.reshape(3 * heads * size, *rest)
    return tensors


def save_params(tensors: dict[str, np.ndarray], folder: Path) -> Path:
    """Write ``model.safetensors`` (bfloat16 tensors through the flax writer)."""
    from safetensors.flax import save_file

    path = Path(folder) / SINGLE
    save_file({name: jnp.asarray(array) for name, array in tensors.items()}, str(path))
    return path
