"""Batched generation (greedy or sampled) with a trained model.

Prompts are right-padded into a fixed buffer of ``max prompt length + max_new_tokens`` and the
whole loop runs in one jitted ``fori_loop``: causal attention makes the padding after the
current position irrelevant, so no cache is needed for the short sequences this is used for.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xpm_train.data.tokenizers import Tokenizer, encode_prompt


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 16
    temperature: float = 0.0
    """0 for greedy decoding"""
    seed: int = 0


def _generate_ids(
    model: nnx.Module,
    buffer: jax.Array,
    lengths: jax.Array,
    settings: GenerationSettings,
    eos_id: int,
    pad_id: int,
) -> jax.Array:
    graphdef, params = nnx.split(model)
    rows = jnp.arange(buffer.shape[0])

    @jax.jit
    def run(params: nnx.State, buffer: jax.Array, key: jax.Array) -> jax.Array:
        decoder = nnx.merge(graphdef, params)

        def step(i: jax.Array, carry: tuple) -> tuple:
            buffer, done, key = carry
            logits = decoder(buffer)[rows, lengths + i - 1]
            key, sample_key = jax.random.split(key)
            if settings.temperature > 0:
                token = jax.random.categorical(sample_key, logits / settings.temperature)
            else:
                token = jnp.argmax(logits, axis=-1)
            token = jnp.where(done, pad_id, token).astype(buffer.dtype)
            buffer = buffer.at[rows, lengths + i].set(token)
            return buffer, done | (token == eos_id), key

        done = jnp.zeros(buffer.shape[0], bool)
        buffer, _, _ = jax.lax.fori_loop(0, settings.max_new_tokens, step, (buffer, done, key))
        return buffer

    return run(params, buffer, jax.random.key(settings.seed))


def generate(
    model: nnx.Module,
    tokenizer: Tokenizer,
    prompts: list[str],
    settings: GenerationSettings = GenerationSettings(),
) -> list[str]:
    """The completion of each prompt, up to the end-of-sequence token."""
    encoded = [encode_prompt(tokenizer, prompt) for prompt in prompts]
    lengths = np.array([len(ids) for ids in encoded], np.int32)
    width = int(lengths.max()) + settings.max_new_tokens
    buffer = np.full((len(prompts), width), tokenizer.pad_id, np.int32)
    for row, ids in enumerate(encoded):
        buffer[row, : len(ids)] = ids
    out = np.asarray(
        _generate_ids(
            model,
            jnp.asarray(buffer),
            jnp.asarray(lengths),
            settings,
            tokenizer.eos_id,
            tokenizer.pad_id,
        )
    )
    completions = []
    for row, start in enumerate(lengths):
        ids = out[row, start:]
        stop = np.flatnonzero(ids == tokenizer.eos_id)
        completions.append(tokenizer.decode(ids[: stop[0]] if len(stop) else ids))
    return completions


def exact_match(
    model: nnx.Module, tokenizer: Tokenizer, problems: list[tuple[str, str]], batch_size: int = 256
) -> float:
    """Fraction of (prompt, answer) problems whose greedy completion is exactly the answer."""
    if not problems:
        return float("nan")
    settings = GenerationSettings(max_new_tokens=max(len(a) for _, a in problems) + 1)
    correct = 0
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        completions = generate(model, tokenizer, [prompt for prompt, _ in chunk], settings)
        correct += sum(got == answer for got, (_, answer) in zip(completions, chunk, strict=True))
    return correct / len(problems)
