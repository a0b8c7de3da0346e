"""Planning time of the main experiment, with and without the mocked heavy libraries.

Times ``experimaestro run-experiment --run-mode dry_run --workdir <tmp> yaml/full.yaml`` in a
subprocess (fresh workdir and isolated ``HOME`` each run): the default, where
``yaml/pre_experiment.py`` mocks jax, flax, optax, orbax and wandb, against
``XPM_TRAIN_NO_MOCKS=1``, where the driver imports the real libraries. The runs alternate; the
median of ``--repeats`` is reported, then a JSON object on the last line.

    python benchmarks/planning_speed.py [--repeats 5] [--yaml yaml/full.yaml]
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

#: Environment of each variant (added to the current one).
VARIANTS = {"mocked": {"XPM_TRAIN_NO_MOCKS": "0"}, "unmocked": {"XPM_TRAIN_NO_MOCKS": "1"}}


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--yaml", type=Path, default=PROJECT / "yaml" / "full.yaml")
    args = parser.parse_args()

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
