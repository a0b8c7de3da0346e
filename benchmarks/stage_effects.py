"""Does each stage do its job? Runs the default pipeline, then the same with ``stages.kl.beta=0``
(experimaestro reuses the pretraining job), and prints the figures the stages are judged by:

- KL stage: held-out loss on the stage-1 data after the KL stage, beta > 0 vs beta = 0;
- DPO: held-out reward accuracy, and the task's exact-match accuracy before and after DPO,
  with the default ``rpo_alpha`` and with plain DPO (``stages.dpo.rpo_alpha=0``).

    python benchmarks/stage_effects.py [--workdir runs] [--yaml yaml/full.yaml]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from experimaestro import from_task_dir

from xpm_train.training.result import TrainResult


def run_pipeline(yaml: str, workdir: str, *overrides: str) -> Path:
    args = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", workdir]
    for override in overrides:
        args += ["-c", override]
    done = subprocess.run([*args, yaml], capture_output=True, text=True)
    match = re.search(r"^Report: (.+)$", done.stdout, re.M)
    if done.returncode or not match:
        sys.exit(f"pipeline failed ({' '.join(overrides)}):\n{done.stderr[-3000:]}")
    return Path(match.group(1)).parent


def stage_figures(report_job: Path) -> dict[str, dict[str, Any]]:
    report = from_task_dir(report_job, as_instance=True)
    figures = {}
    for stage, evaluation in report.evaluations.items():
        metrics = json.loads(Path(evaluation.metrics_path).read_text())["datasets"]
        result = TrainResult.read(Path(evaluation.checkpoint.metrics).parent / "result.json")
        figures[stage] = {"eval": metrics, "train": result.metrics}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workdir", default="runs")
    parser.add_argument("--yaml", default="yaml/full.yaml")
    args = parser.parse_args()
    with_kl = stage_figures(run_pipeline(args.yaml, args.workdir))
    without_kl = stage_figures(run_pipeline(args.yaml, args.workdir, "stages.kl.beta=0"))
    plain_dpo = stage_figures(run_pipeline(args.yaml, args.workdir, "stages.dpo.rpo_alpha=0"))
    summary = {
        "stage1_loss": {
            "pretrain": with_kl["pretrain"]["eval"]["pretrain"]["loss"],
            "kl_beta>0": with_kl["kl"]["eval"]["pretrain"]["loss"],
            "kl_beta=0": without_kl["kl"]["eval"]["pretrain"]["loss"],
        },
        "stage2_loss": {
            "pretrain": with_kl["pretrain"]["eval"]["kl"]["loss"],
            "kl_beta>0": with_kl["kl"]["eval"]["kl"]["loss"],
            "kl_beta=0": without_kl["kl"]["eval"]["kl"]["loss"],
        },
        "accuracy": {
            stage: with_kl[stage]["eval"]["pretrain"]["accuracy"]
            for stage in ("pretrain", "kl", "dpo")
        },
        "train_accuracy": {
            stage: with_kl[stage]["eval"]["pretrain"]["train_accuracy"]
            for stage in ("pretrain", "kl", "dpo")
        },
        "kl_beta=0_accuracy": without_kl["kl"]["eval"]["pretrain"]["accuracy"],
        "dpo_loss": with_kl["dpo"]["eval"]["pretrain"]["loss"],
        "plain_dpo_loss": plain_dpo["dpo"]["eval"]["pretrain"]["loss"],
        "plain_dpo_accuracy": plain_dpo["dpo"]["eval"]["pretrain"]["accuracy"],
        "plain_dpo_eval_reward_accuracy": plain_dpo["dpo"]["train"]["eval/rewards/accuracies"],
        "dpo_eval_reward_accuracy": with_kl["dpo"]["train"]["eval/rewards/accuracies"],
        "dpo_eval_reward_margin": with_kl["dpo"]["train"]["eval/rewards/margins"],
    }
    print(f"{'figure':<34}{'value':>10}")
    for group, values in summary.items():
        if isinstance(values, dict):
            for name, value in values.items():
                print(f"{group + ' ' + name:<34}{value:>10.4f}")
        else:
            print(f"{group:<34}{values:>10.4f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
