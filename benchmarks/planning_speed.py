"""Planning time of the main experiment, with and without the mocked heavy libraries.

Times ``experimaestro run-experiment --run-mode dry_run --workdir <tmp> yaml/full.yaml`` in a
subprocess (fresh workdir and isolated ``HOME`` each run): the default, where
``yaml/pre_experiment.py`` mocks jax, flax, optax, orbax and wandb, against
``XPM_TRAIN_NO_MOCKS=1``, where the driver imports the real libraries. The runs alternate; the
median of ``--repeats`` is reported, then a JSON object on the last line.

With ``--jobs N``, plans instead a sweep of about N jobs (yaml/tiny.yaml's pretrain and DPO
stages swept over learning rates and betas, each job evaluated, one report) with the mocks,
and prints ``{"jobs": ..., "seconds": ...}`` (median of ``--repeats``) on the last line.

    python benchmarks/planning_speed.py [--repeats 5] [--yaml yaml/full.yaml]
    python benchmarks/planning_speed.py --jobs 1000 [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

#: Environment of each variant (added to the current one); no cost calibration (docs/plan-cost.md).
VARIANTS = {
    "mocked": {"XPM_TRAIN_NO_MOCKS": "0", "XPM_TRAIN_CALIBRATE": "0"},
    "unmocked": {"XPM_TRAIN_NO_MOCKS": "1", "XPM_TRAIN_CALIBRATE": "0"},
}


#: Learning rates of the pretraining stage in a ``--jobs`` sweep.
PRETRAIN_POINTS = 10


def sweep_yaml(folder: Path, jobs: int) -> tuple[Path, int]:
    """An experiment file of about ``jobs`` jobs: pretrain x PRETRAIN_POINTS learning rates,
    DPO x betas from each, an evaluation per training job, a report. Returns its path and its
    exact number of jobs."""
    betas = max(1, round((jobs - 1) / 2 / PRETRAIN_POINTS) - 1)
    lrs = [round(1e-3 * (1 + i), 6) for i in range(PRETRAIN_POINTS)]
    beta_values = [round(0.05 * (1 + i), 4) for i in range(betas)]
    path = folder / "sweep.yaml"
    path.write_text(
        f"id: planning-speed\nimports: [{PROJECT / 'yaml' / 'tiny.yaml'}]\n"
        "stages:\n"
        f"  pretrain: {{schedule: {{name: cosine, lr: {{sweep: {lrs}}}, lr_warmup_steps: 5}}}}\n"
        "  kl: null\n"
        f"  dpo: {{init: pretrain, beta: {{sweep: {beta_values}}}}}\n"
    )
    training = PRETRAIN_POINTS * (1 + betas)
    return path, 2 * training + 1


def dry_run_seconds(yaml: Path, extra_env: dict[str, str]) -> float:
    """Wall-clock seconds of one dry run of ``yaml`` (fails loudly if the run fails)."""
    with tempfile.TemporaryDirectory(prefix="planning-speed-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), **extra_env}
        command = [
            sys.executable,
            "-m",
            "experimaestro",
            "run-experiment",
            "--run-mode",
            "dry_run",
            "--workdir",
            str(Path(tmp) / "ws"),
            str(yaml),
        ]
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT)
        elapsed = time.perf_counter() - start
    if result.returncode != 0 or "Simulating" not in result.stdout + result.stderr:
        raise RuntimeError(f"dry run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--yaml", type=Path, default=PROJECT / "yaml" / "full.yaml")
    parser.add_argument("--jobs", type=int, help="plan a sweep of about this many jobs")
    args = parser.parse_args()
    if args.jobs:
        with tempfile.TemporaryDirectory(prefix="planning-sweep-") as tmp:
            yaml, jobs = sweep_yaml(Path(tmp), args.jobs)
            runs = [dry_run_seconds(yaml, VARIANTS["mocked"]) for _ in range(args.repeats)]
        print(f"dry run of a sweep of {jobs} jobs: {', '.join(f'{r:.2f}' for r in runs)} s")
        print(json.dumps({"jobs": jobs, "seconds": round(statistics.median(runs), 2)}))
        return

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, extra_env in VARIANTS.items():
            times[name].append(dry_run_seconds(args.yaml.resolve(), extra_env))

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"dry run of {args.yaml} ({args.repeats} runs each, seconds)")
    print(f"{'variant':<10}{'median':>8}{'min':>8}{'max':>8}")
    for name, values in times.items():
        print(f"{name:<10}{medians[name]:>8.3f}{min(values):>8.3f}{max(values):>8.3f}")
    summary = {
        "mocked_s": round(medians["mocked"], 3),
        "unmocked_s": round(medians["unmocked"], 3),
        "saved_s": round(medians["unmocked"] - medians["mocked"], 3),
        "repeats": args.repeats,
        "runs_s": {name: [round(value, 3) for value in values] for name, values in times.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
