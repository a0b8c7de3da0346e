"""Training throughput of xpm-train against a bare jitted JAX step and PyTorch eager (nanoGPT).

It trains the same nanoGPT model (pre-LayerNorm without biases, learned positions,
tied embeddings, exact GELU 4x MLP, causal attention, float32, vocab 65; AdamW lr 1e-3, betas
0.9/0.99, weight decay 0.1 on matrices, clip 1.0) on the same random token batches with:

- ``xpm_train``: the training loop exactly as a Pretrain job runs it (``train`` with a Stage:
  prefetching, NaN checks, metrics, final checkpoint), after the job's runtime settings;
- ``bare_jax``: a hand-written ``jax.jit`` step of the same flax model and optax optimizer;
- ``torch``: the model in PyTorch eager (``benchmarks/torch_gpt.py``), from the same weights.

Runs alternate, each in a fresh process (one implementation's threads or heap never slow the
next one down); each figure is the median of ``--repeats`` runs of ``--steps`` steps, warm-up
steps excluded. Also printed: the train step's compile time (cold, and loaded from the
persistent cache in ``<workdir>/.jax_cache``), the fraction of step time spent waiting for
data, and, on a GPU, the model FLOPs utilisation. The last line is one JSON object.

    pip install -e ".[bench]"
    python benchmarks/train_speed.py --model mini|baby|wide [--steps N] [--repeats 3]
    python benchmarks/train_speed.py --model gpt2   # GPU: bf16 compute, float32 weights, MFU
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xpm_train.training import runtime

SETTINGS = runtime.configure(Path(os.environ.get("XPM_BENCH_WORKDIR", "runs/benchmarks")))

import jax  # noqa: E402  (after the runtime settings, as in a job)
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
from bench_models import MODELS, BenchModel, bare_jax_run, model_flops_per_token  # noqa: E402
from machine_load import others_share, snapshot, wait_for_quiet  # noqa: E402

from tests.support.compiles import watch_compiles  # noqa: E402
from xpm_train.data.loader import Prefetcher  # noqa: E402
from xpm_train.models import fast_ops  # noqa: E402
from xpm_train.training import loop  # noqa: E402
from xpm_train.training.loop import LoopSettings, RunPaths, train  # noqa: E402
from xpm_train.training.metrics import read_metrics  # noqa: E402

#: Before a run, wait for other processes to use less than this share of the CPUs.
QUIET_SHARE = 0.1
#: A run during which other processes used more than this share of the CPUs is run again.
MAX_OTHERS = 0.15
#: Dense peak throughput (FLOP/s) of known accelerators for the MFU, bf16.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}


class TimedPrefetcher(Prefetcher):
    """The loop's prefetcher, recording how long each step waited for its batch."""

    waits: list[float] = []

    def __next__(self) -> object:
        before = self.wait_seconds
        try:
            return super().__next__()
        finally:
            TimedPrefetcher.waits.append(self.wait_seconds - before)


def xpm_train_run(bench: BenchModel, args: argparse.Namespace, folder: Path) -> dict:
    """One Pretrain-like training; tokens/s of the steps after the warm-up."""
    total = args.warmup + args.steps
    settings = LoopSettings(
        total_steps=total,
        batch_size=bench.batch,
        micro_batch_size=bench.batch,
        seed=0,
        eval_interval=10**9,
        log_interval=args.warmup,
        checkpoint_interval=10**9,
        keep_checkpoints=1,
    )
    paths = RunPaths(folder / "checkpoints", folder / "metrics.jsonl", folder / "result.json")
    TimedPrefetcher.waits = []
    loop.Prefetcher = TimedPrefetcher  # type: ignore[misc]
    try:
        with watch_compiles() as compiles:
            began = time.perf_counter()
            train(bench.stage(), settings, paths)
            wall = time.perf_counter() - began
    finally:
        loop.Prefetcher = Prefetcher  # type: ignore[misc]
    records = [r for r in read_metrics(paths.metrics, "train") if r["step"] > args.warmup]
    tokens_per_step = bench.batch * bench.block
    # Each record covers the log_interval (= warm-up) steps before it.
    seconds = sum(tokens_per_step * args.warmup / r["tokens_per_s"] for r in records)
    waited = sum(TimedPrefetcher.waits[args.warmup : total])
    return {
        "tokens_per_s": tokens_per_step * args.steps / seconds,
        "loss": records[-1]["loss"],
        "data_wait": waited / seconds,
        "compile_s": compiles.seconds("train_step"),
        "compiles": compiles.count("train_step"),
        "cache_hits": compiles.cache_hits,
        "cache_misses": compiles.cache_misses,
        "wall_s": wall,
    }


def torch_run(bench: BenchModel, args: argparse.Namespace) -> dict:
    import torch  # pyright: ignore[reportMissingImports] (only in a torch run's process)
    from torch_gpt import GPTConfig, TorchTrainer, load_jax_params

    config = GPTConfig(bench.vocab, bench.block, bench.layers, bench.heads, bench.width, 1e-5)
    trainer = TorchTrainer(config, bench.lr, (0.9, 0.99), 0.1)
    load_jax_params(trainer.model, bench.initial_params())
    batches = [
        torch.from_numpy(bench.tokens(step).astype(np.int64))
        for step in range(args.warmup + args.steps)
    ]
    for tokens in batches[: args.warmup]:
        trainer.step(tokens)
    began = time.perf_counter()
    for tokens in batches[args.warmup :]:
        loss = trainer.step(tokens)
    seconds = time.perf_counter() - began
    return {"tokens_per_s": bench.batch * bench.block * args.steps / seconds, "loss": float(loss)}


def one_run(name: str, bench: BenchModel, args: argparse.Namespace, folder: Path) -> dict:
    if name == "xpm_train":
        return xpm_train_run(bench, args, folder)
    if name == "torch":
        return torch_run(bench, args)
    with fast_ops.use_fast_ops(name == "bare_jax"):  # plain_jax: the model without fast ops
        return bare_jax_run(bench, args.warmup, args.steps)


def in_fresh_process(name: str, args: argparse.Namespace, folder: Path, **env: str) -> dict:
    """:func:`one_run` in a new Python process; its result is the child's last output line."""
    command = [sys.executable, __file__, "--model", args.model, "--one", name]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--folder", str(folder)]
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode:
        sys.exit(f"the {name} run failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _version(package: str) -> str | None:
    """The installed version of ``package``, None when it is not installed (torch is optional)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def summary_runtime(runs: dict[str, list[dict]]) -> str:
    """The runtime settings of the runs' processes (those of an xpm_train run if any)."""
    return (runs.get("xpm_train") or next(iter(runs.values())))[0]["runtime"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mini")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impls", default="xpm_train,bare_jax,torch")
    parser.add_argument("--plain", action="store_true", help="also bare_jax without fast ops")
    parser.add_argument(
        "--quiet",
        type=float,
        default=60.0,
        help="before each run, wait up to this many seconds for other processes to use less "
        f"than {100 * QUIET_SHARE:.0f}%% of the CPUs (0: do not wait)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single run, in a child process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="run again (at most this many times) a run during which other processes used "
        f"more than {100 * MAX_OTHERS:.0f}%% of the CPUs",
    )
    args = parser.parse_args()
    bench = MODELS[args.model]
    args.steps = args.steps or bench.steps
    args.warmup = args.warmup or bench.warmup
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup (the loop's log interval)")
    if args.one:
        print(
            json.dumps(
                {**one_run(args.one, bench, args, args.folder), "runtime": SETTINGS.describe()}
            )
        )
        return
    runtime.export_job_environment()  # every run's process starts as a job's would
    impls = args.impls.split(",") + (["plain_jax"] if args.plain else [])
    if "torch" in impls and jax.default_backend() != "cpu":
        impls.remove("torch")  # the PyTorch reference is CPU-only here
    print(
        f"model {args.model}: {bench.layers} layers, {bench.heads} heads, width {bench.width}, "
        f"block {bench.block}, batch {bench.batch}, {bench.num_params():,} parameters; "
        f"{args.repeats} runs x {args.steps} steps (+{args.warmup} warm-up)",
        flush=True,
    )
    runs: dict[str, list[dict]] = {name: [] for name in impls}
    loads, shares = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = impls if repeat % 2 == 0 else impls[::-1]
            for name in order:
                for attempt in range(args.retries + 1):
                    if args.quiet > 0:
                        wait_for_quiet(QUIET_SHARE, args.quiet)
                    loads.append(os.getloadavg()[0])
                    before = snapshot()
                    folder = Path(tmp) / f"{name}{repeat}-{attempt}"
                    result = in_fresh_process(name, args, folder)
                    share = others_share(before, snapshot())
                    print(
                        f"run {repeat + 1} {name:<10} {result['tokens_per_s']:>10.0f} tok/s  "
                        f"loss {result['loss']:.4f}  load avg {loads[-1]:.1f}, "
                        f"other processes {100 * share:.0f}% of the CPUs",
                        flush=True,
                    )
                    if share <= MAX_OTHERS:
                        break
                    print("  (other processes were busy: run again)", flush=True)
                shares.append(share)
                runs[name].append(result)
    print(f"job process settings: {summary_runtime(runs)}")
    median = {n: statistics.median(r["tokens_per_s"] for r in rs) for n, rs in runs.items()}
    summary = {"model": args.model, "tokens_per_s": {n: round(v, 1) for n, v in median.items()}}
    ratios = {}
    for a, b in (("xpm_train", "torch"), ("xpm_train", "bare_jax"), ("bare_jax", "torch")):
        if a in median and b in median:
            ratios[f"{a}/{b}"] = round(median[a] / median[b], 3)
    summary["ratios"] = ratios
    print(f"\n{'implementation':<16}{'tokens/s (median)':>18}{'runs':>30}")
    for name, rs in runs.items():
        values = " ".join(f"{r['tokens_per_s']:.0f}" for r in rs)
        print(f"{name:<16}{median[name]:>18.0f}{values:>30}")
    for key, value in ratios.items():
        print(f"ratio {key}: {value:.3f}")
    if "xpm_train" in runs:
        xr = runs["xpm_train"]
        hits = [r["compile_s"] for r in xr if r["cache_hits"] and not r["cache_misses"]]
        missed = [r["compile_s"] for r in xr if r["cache_misses"]]
        if missed:
            cold = missed[0]
        else:  # every run loaded the step from the cache: one more run without it
            cold = in_fresh_process(
                "xpm_train", args, Path(tempfile.mkdtemp()), XPM_TRAIN_JAX_CACHE="0"
            )["compile_s"]
        cached = statistics.median(hits) if hits else None
        wait = statistics.median(r["data_wait"] for r in xr)
        summary["compile_s"] = {"cold": round(cold, 2), "cached": cached and round(cached, 2)}
        summary["train_step_compiles_per_run"] = max(r["compiles"] for r in xr)
        summary["data_wait_fraction"] = round(wait, 4)
        print(
            f"train step compile: cold {cold:.2f}s, from the persistent cache "
            + (f"{cached:.2f}s" if cached is not None else "n/a")
            + f"; compilations per run {summary['train_step_compiles_per_run']}"
        )
        print(f"data wait: {100 * wait:.2f}% of the step time")
    flops = model_flops_per_token(bench)
    if jax.default_backend() != "cpu" and "xpm_train" in median:
        kind = jax.devices()[0].device_kind
        peak = next((v for k, v in PEAK_FLOPS.items() if k in kind), None)
        if peak:
            summary["mfu"] = round(flops * median["xpm_train"] / peak, 4)
            print(f"MFU on {kind}: {100 * summary['mfu']:.1f}% (peak {peak / 1e12:.0f} TFLOP/s)")
    else:
        summary["gflops"] = {n: round(flops * v / 1e9, 1) for n, v in median.items()}
    summary.update(
        params=bench.num_params(),
        steps=args.steps,
        repeats=args.repeats,
        load_avg=[round(min(loads), 2), round(max(loads), 2)],
        others_cpu_share=[round(min(shares), 3), round(max(shares), 3)],
        runtime=summary_runtime(runs),
        versions={
            "jax": jax.__version__,
            "jaxlib": importlib.metadata.version("jaxlib"),
            "torch": _version("torch"),
            "python": platform.python_version(),
            "backend": jax.default_backend(),
            "cpu_count": os.cpu_count(),
        },
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
