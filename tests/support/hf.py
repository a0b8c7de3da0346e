"""Tiny Hugging Face folders for the tests, made with scripts/make_tiny_hf.py's functions
(transformers and torch are test dependencies; nothing is downloaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_tiny_hf.py"
_spec = importlib.util.spec_from_file_location("make_tiny_hf", _SCRIPT)
assert _spec is not None and _spec.loader is not None
make_tiny_hf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_tiny_hf)

arithmetic_texts = make_tiny_hf.arithmetic_texts
train_tokenizer = make_tiny_hf.train_tokenizer
make_model_folder = make_tiny_hf.make_model_folder
TINY_CONFIGS = make_tiny_hf.TINY_CONFIGS
