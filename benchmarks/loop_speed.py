"""Training throughput of the xpm-train loop against a bare, hand-written jitted JAX loop.

Both train the same model (the default experiment's transformer) with the same optimizer on
batches of the same shape; the runs alternate and the median of ``--repeats`` is reported,
compilation excluded. The xpm-train figure is the loop exactly as a Pretrain job runs it (data
pipeline with prefetching, gradient-accumulation-ready step, NaN checks, metrics, final
checkpoint).

    python benchmarks/loop_speed.py [--steps 200] [--repeats 3] [--d-model 128 --layers 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bare_jax import bare_step, timed_steps

from xpm_train.data.blocks import BlockData
from xpm_train.objectives.language_model import NextTokenPrediction
from xpm_train.registry import build
from xpm_train.training.loop import LoopSettings, RunPaths, Stage, train
from xpm_train.training.metrics import read_metrics


def components(args: argparse.Namespace) -> dict:
    specs = {
        "model": {
            "name": "transformer",
            "d_model": args.d_model,
            "n_layers": args.layers,
            "n_heads": args.heads,
            "max_seq_len": args.seq_len,
        },
        "tokenizer": {"name": "bytes"},
        "dataset": {"name": "arithmetic", "n_examples": 6000},
        "optimizer": {"name": "adamw"},
        "schedule": {"name": "cosine", "lr": 3e-3, "lr_warmup_steps": 10},
    }
    return {kind: build(kind, spec).instance() for kind, spec in specs.items()}


def pretrain_stage(args: argparse.Namespace, parts: dict) -> Stage:
    """The loop's stage of the components: next-token prediction on their packed data."""
    data = BlockData.from_dataset(
        parts["dataset"], parts["tokenizer"], args.seq_len, args.batch_size, 0.05, 1, seed=0
    )
    return Stage(
        make_model=lambda: parts["model"].create(parts["tokenizer"].vocab_size, seed=0),
        objective=NextTokenPrediction(),
        optimizer=parts["optimizer"],
        schedule=parts["schedule"],
        data=data,
    )


def xpm_train_tokens_per_s(args: argparse.Namespace, parts: dict) -> float:
    stage = pretrain_stage(args, parts)
    settings = LoopSettings(
        total_steps=args.steps + 1,
        batch_size=args.batch_size,
        micro_batch_size=args.batch_size,
        seed=0,
        eval_interval=10**9,
        log_interval=args.steps + 1,
        checkpoint_interval=10**9,
        keep_checkpoints=1,
    )
    with tempfile.TemporaryDirectory() as folder:
        paths = RunPaths(Path(folder) / "ckpt", Path(folder) / "m.jsonl", Path(folder) / "r.json")
        train(stage, settings, paths)
        (record,) = read_metrics(paths.metrics, "train")
    return record["tokens_per_s"]


def bare_tokens_per_s(args: argparse.Namespace, parts: dict) -> float:
    """The bare JAX step (``bare_jax.py``) on 8 random batches in turn, after one warm-up."""
    model = parts["model"].create(parts["tokenizer"].vocab_size, seed=0)
    tx = parts["optimizer"].build(parts["schedule"].build(args.steps + 1))
    step, params, opt_state = bare_step(model, tx)
    rng = np.random.default_rng(0)
    batches = [
        jnp.asarray(rng.integers(0, 256, (args.batch_size, args.seq_len + 1)), dtype=jnp.int32)
        for _ in range(8)
    ]
    timed = [batches[i % len(batches)] for i in range(args.steps)]
    seconds, _ = timed_steps(step, params, opt_state, batches[:1], timed)
    return args.steps * args.batch_size * args.seq_len / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    parts = components(args)
    runs: dict[str, list[float]] = {"xpm_train": [], "bare_jax": []}
    for repeat in range(args.repeats):
        runs["xpm_train"].append(xpm_train_tokens_per_s(args, parts))
        runs["bare_jax"].append(bare_tokens_per_s(args, parts))
        print(
            f"run {repeat + 1}: xpm_train {runs['xpm_train'][-1]:.0f} tok/s, "
            f"bare_jax {runs['bare_jax'][-1]:.0f} tok/s",
            flush=True,
        )
    median = {name: statistics.median(values) for name, values in runs.items()}
    ratio = median["xpm_train"] / median["bare_jax"]
    print(f"\n{'loop':<12}{'tokens/s (median)':>20}")
    for name, value in median.items():
        print(f"{name:<12}{value:>20.0f}")
    print(f"ratio xpm_train / bare_jax: {ratio:.3f}")
    print(
        json.dumps(
            {
                "model": {
                    "d_model": args.d_model,
                    "layers": args.layers,
                    "heads": args.heads,
                    "seq_len": args.seq_len,
                    "batch_size": args.batch_size,
                },
                "steps": args.steps,
                "tokens_per_s": median,
                "ratio": round(ratio, 4),
                "runs": runs,
                "backend": jax.default_backend(),
                "jax": jax.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
