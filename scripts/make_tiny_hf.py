"""Create a tiny Hugging Face model folder offline: a byte-level BPE tokenizer trained on
arithmetic facts and a randomly initialised llama, qwen2 or gpt_neox model saved beside it.

    python scripts/make_tiny_hf.py models/tiny-llama --family llama

Needs transformers and torch (``pip install -e ".[dev]"``); nothing is downloaded. The tests
build their models with the same functions (tests/support/hf.py).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Small enough to create in a second, big enough to exercise every feature of a family.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": {
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    },
    "qwen2": {
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "tie_word_embeddings": True,
    },
    "gpt_neox": {
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 256,
        "rotary_pct": 0.5,
        "use_parallel_residual": True,
    },
}
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def arithmetic_texts(n: int = 2000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        a, b = rng.randrange(100), rng.randrange(100)
        texts.append(f"{a}+{b}={a + b}")
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 300) -> Any:
    """A byte-level BPE tokenizer (``transformers.PreTrainedTokenizerFast``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def make_model_folder(
    folder: Path, family: str = "llama", tokenizer: Any = None, seed: int = 0, **overrides: Any
) -> Path:
    """Save a random ``family`` model (TINY_CONFIGS updated with ``overrides``) and a
    tokenizer in ``folder``; returns the folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = tokenizer if tokenizer is not None else train_tokenizer(arithmetic_texts())
    settings = {**TINY_CONFIGS[family], **overrides}
    settings.setdefault("vocab_size", len(tokenizer))
    for key in ("bos_token", "eos_token", "pad_token"):
        settings.setdefault(f"{key}_id", tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[key]))
    config = AutoConfig.for_model(family, **settings)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--family", choices=sorted(TINY_CONFIGS), default="llama")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = make_model_folder(args.folder, args.family, seed=args.seed)
    print(f"wrote a tiny {args.family} model and its tokenizer to {folder}")


if __name__ == "__main__":
    main()
