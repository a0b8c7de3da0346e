"""Training throughput of one process against two JAX processes on the same cores: what the
collectives between processes cost (docs/scaling.md).

The same model, global batch and steps run as one process (one CPU device), then as two
processes that join through ``jax.distributed`` (gloo collectives, one CPU device each, half of
every batch each) with plain data parallelism and with fsdp. The two processes get the
environment ``srun`` gives a job of two tasks (``SLURM_PROCID``...), so they start exactly as
a SLURM job does, without a cluster. Runs alternate; the median of ``--repeats`` is reported,
compilation excluded (tokens/s of the logged windows after the first step).

    python benchmarks/scaling.py [--steps 60] [--repeats 3] [--d-model 128 --layers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> None:
    """One process of a run: train, and (process 0) write the tokens/s to ``args.worker``."""
    from xpm_train.training import processes

    processes.initialize()
    import jax
    from loop_speed import components, pretrain_stage  # the loop benchmark's model and data

    from xpm_train.training.loop import LoopSettings, RunPaths, train
    from xpm_train.training.metrics import read_metrics

    stage = pretrain_stage(args, components(args))
    devices = jax.device_count()
    settings = LoopSettings(
        total_steps=args.steps,
        batch_size=args.batch_size,
        micro_batch_size=args.batch_size // devices,
        seed=0,
        eval_interval=10**9,
        log_interval=10,
        checkpoint_interval=10**9,
        fsdp=args.fsdp,
    )
    folder = Path(args.folder)
    paths = RunPaths(folder / "checkpoints", folder / "metrics.jsonl", folder / "result.json")
    train(stage, settings, paths)
    if jax.process_index() == 0:
        windows = [r["tokens_per_s"] for r in read_metrics(paths.metrics, "train")][1:]
        Path(args.worker).write_text(json.dumps({"tokens_per_s": statistics.median(windows)}))


def run(args: argparse.Namespace, processes: int, fsdp: int) -> float:
    """Tokens/s of one run of ``processes`` processes."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [sys.executable, str(HERE), "--worker", str(result), "--folder", folder]
        command += ["--fsdp", str(fsdp)] + [f"--{k}={v}" for k, v in model_options(args).items()]
        job = str(random.randrange(1, 4000))  # the coordinator's port follows the job id
        started = []
        for rank in range(processes):
            env = dict(os.environ)
            if processes > 1:
                env.update(
                    SLURM_JOB_ID=job,
                    SLURM_STEP_NODELIST="localhost",
                    SLURM_NTASKS=str(processes),
                    SLURM_STEP_NUM_TASKS=str(processes),
                    SLURM_PROCID=str(rank),
                    SLURM_LOCALID=str(rank),
                )
            started.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
        codes = [process.wait(timeout=900) for process in started]
        if any(codes):
            raise SystemExit(f"a run of {processes} process(es) failed: exit codes {codes}")
        return float(json.loads(result.read_text())["tokens_per_s"])


def model_options(args: argparse.Namespace) -> dict[str, int]:
    names = ("steps", "batch_size", "seq_len", "d_model", "layers", "heads")
    return {name.replace("_", "-"): getattr(args, name) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fsdp", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    setups = {"one_process": (1, 1), "two_processes": (2, 1), "two_processes_fsdp": (2, -1)}
    figures: dict[str, list[float]] = {name: [] for name in setups}
    for repeat in range(args.repeats):
        for name, (count, fsdp) in setups.items():
            figures[name].append(run(args, count, fsdp))
            print(f"repeat {repeat + 1}: {name} {figures[name][-1]:,.0f} tokens/s", flush=True)
    medians = {f"{name}_tokens_per_s": round(statistics.median(v)) for name, v in figures.items()}
    one = medians["one_process_tokens_per_s"]
    summary = {
        **medians,
        "two_over_one": round(medians["two_processes_tokens_per_s"] / one, 3),
        "two_fsdp_over_one": round(medians["two_processes_fsdp_tokens_per_s"] / one, 3),
        "cores": os.cpu_count(),
        "model": model_options(args),
        "repeats": args.repeats,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
