"""Are the plan's wall-time estimates right? Plans an experiment in a fresh workdir with a dry
run that calibrates, runs it for real, and prints each training job's estimate, its actual wall
time and their ratio (docs/plan-cost.md). The actual wall time is experimaestro's record of the
job (``.experimaestro/status.json``: the job process's start to its end); the training loop's
own ``wall_time_s`` (``result.json``) is printed next to it. The last line is one JSON object.

    python benchmarks/plan_cost.py [--yaml yaml/full.yaml] [--keep DIR]

It waits for the other processes to go quiet first (the calibration and the jobs measure this
machine), and reports how busy they kept the CPUs during each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from machine_load import others_share, snapshot, wait_for_quiet  # noqa: E402

from xpm_train.planning.cost import job_wall  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
TARGET = 0.25


def experiment(workdir: Path, path: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``experimaestro run-experiment`` with the calibration on; also returns the seconds it
    took and how busy other processes kept the CPUs meanwhile."""
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    env = {**os.environ, "XPM_TRAIN_CALIBRATE": "1"}
    before, began = snapshot(), time.perf_counter()
    done = subprocess.run(
        [*command, *args, path], capture_output=True, text=True, env=env, cwd=PROJECT
    )
    load = {"seconds": round(time.perf_counter() - began, 1)}
    load["others_cpu_share"] = round(others_share(before, snapshot()), 3)
    if done.returncode:
        sys.exit(f"run-experiment {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return done, load


def planned_costs(stdout: str) -> dict[str, dict[str, Any]]:
    """The ``cost`` of each training job of the plan a dry run printed, by job folder."""
    plan = yaml.safe_load(stdout.split("Plan (", 1)[1].split("\n", 1)[1].split("\nJobs:")[0])
    return {job["job"]: job["cost"] for job in plan if "cost" in job}


def measured(workdir: Path, job: str) -> dict[str, Any]:
    folder = workdir / "jobs" / job
    result = json.loads((folder / "result.json").read_text())
    return {"wall_s": job_wall(folder), "loop_wall_s": result["wall_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--yaml", default="yaml/full.yaml")
    parser.add_argument("--keep", help="run in this (new) folder and keep it")
    parser.add_argument("--quiet-timeout", type=float, default=600.0)
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="plan-cost-")).absolute()
    if args.keep and workdir.exists():
        sys.exit(f"{workdir} exists: the benchmark needs a fresh workdir")
    try:
        share = wait_for_quiet(0.15, args.quiet_timeout)
        print(f"other processes used {share:.0%} of the CPUs before the start", flush=True)
        dry, dry_load = experiment(workdir, args.yaml, "--run-mode", "dry_run")
        calibrating = [line for line in dry.stdout.splitlines() if line.startswith("Calibrat")]
        print("\n".join(calibrating), flush=True)
        costs = planned_costs(dry.stdout)
        run, run_load = experiment(workdir, args.yaml)
        rows = []
        for job, cost in costs.items():
            actual = measured(workdir, job)
            estimate = cost.get("estimated wall_s")
            ratio = estimate / actual["wall_s"] if estimate and actual["wall_s"] else None
            rows.append(
                {
                    "job": job.split("/")[0].split(".")[-1],
                    "steps": cost["steps"],
                    "source": cost["source"],
                    "estimate_s": estimate,
                    "actual_s": round(actual["wall_s"], 1) if actual["wall_s"] else None,
                    "loop_s": round(actual["loop_wall_s"], 1),
                    "ratio": round(ratio, 3) if ratio else None,
                }
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{'job':<10} {'steps':>6} {'estimate':>9} {'actual':>8} {'loop':>7} {'ratio':>6}  source"
    )
    for row in rows:
        print(
            f"{row['job']:<10} {row['steps']:>6} {row['estimate_s'] or 0:>8.1f}s "
            f"{row['actual_s'] or 0:>7.1f}s {row['loop_s']:>6.1f}s {row['ratio'] or 0:>6.3f}  "
            f"{row['source']}"
        )
    within = all(r["ratio"] is not None and abs(r["ratio"] - 1) <= TARGET for r in rows)
    print(
        f"actual: experimaestro's job record (status.json, process start to end); loop: "
        f"result.json wall_time_s. All within {TARGET:.0%}: {within}"
    )
    summary = {"jobs": rows, "within_target": within, "dry_run": dry_load, "run": run_load}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
