"""AdamW against muon on the default pretraining (the ``pretrain`` stage of yaml/full.yaml: its
model, data, steps, batch and cosine schedule shape), each at its tuned learning rate.

Both train with the loop directly, as a pretrain job does, and are scored on the stage's
held-out split: the loop's final held-out loss and the exact-match accuracy of greedy answers
(the evaluation job's figure, on up to 500 held-out facts). ``--sweep`` trains every learning
rate of ``SWEEP`` instead (how ``TUNED`` was chosen). The last line is JSON.

    python benchmarks/optimizers.py [--yaml yaml/full.yaml] [--sweep] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import yaml

from xpm_train.data.blocks import BlockData
from xpm_train.data.packing import split_documents
from xpm_train.graph.parameters import parameters
from xpm_train.inference.generate import exact_match
from xpm_train.objectives.language_model import NextTokenPrediction
from xpm_train.registry import build
from xpm_train.tasks.pretrain import Pretrain
from xpm_train.training.checkpoint import restore_params
from xpm_train.training.loop import LoopSettings, RunPaths, Stage, train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.metrics import read_metrics
from xpm_train.training.state import abstract_params, model_def

#: The schedule's peak lr of each optimizer, chosen by ``--sweep`` (1000 steps, 2 CPU cores):
#:   adamw 7.5e-4, 1.5e-3, 3e-3, 6e-3: held-out loss 1.291, 1.117, 1.178, 1.300
#:   muon  0.01, 0.02, 0.04, 0.08:     held-out loss 1.075, 1.076, 1.067, 1.067
TUNED: dict[str, float] = {"adamw": 1.5e-3, "muon": 0.04}
SWEEP: dict[str, list[float]] = {
    "adamw": [7.5e-4, 1.5e-3, 3e-3, 6e-3],
    "muon": [0.01, 0.02, 0.04, 0.08],
}
#: The lr of muon's adam parameters (embeddings, norms): full.yaml's AdamW lr, not tuned.
MUON_ADAM_LR = 3e-3
#: The pretrain task's parameters that shape the run (their defaults when the YAML omits them).
TRAINER_KEYS = ("batch_size", "micro_batch_size", "seq_len", "eval_fraction", "eval_batches")
MAX_PROBLEMS = 500


def pretrain_section(path: Path) -> dict[str, Any]:
    """The ``pretrain`` section, with the task's defaults for what it leaves out."""
    section = dict(yaml.safe_load(path.read_text())["stages"]["pretrain"])
    arguments = parameters(Pretrain)
    for key in (*TRAINER_KEYS, "seed"):
        section.setdefault(key, arguments[key].default)
    return section


def optimizer_spec(name: str, lr: float) -> dict[str, Any]:
    if name == "muon":
        return {"name": "muon", "adam_lr_scale": MUON_ADAM_LR / lr}
    return {"name": name}


def run(section: dict[str, Any], optimizer: dict[str, Any], lr: float, steps: int) -> dict:
    """Train with ``optimizer`` at peak ``lr``; the held-out loss and accuracy at the end."""
    schedule = {**section["schedule"], "lr": lr}
    parts: dict[str, Any] = {
        kind: build(kind, spec).instance()
        for kind, spec in (
            ("model", section["model"]),
            ("tokenizer", section["tokenizer"]),
            ("dataset", section["dataset"]),
            ("optimizer", optimizer),
            ("schedule", schedule),
        )
    }
    data = BlockData.from_dataset(
        parts["dataset"],
        parts["tokenizer"],
        section["seq_len"],
        section["batch_size"],
        section["eval_fraction"],
        section["eval_batches"],
        section["seed"],
    )
    seed, vocab = section["seed"], parts["tokenizer"].vocab_size
    stage = Stage(
        make_model=lambda: parts["model"].create(vocab, seed),
        objective=NextTokenPrediction(),
        optimizer=parts["optimizer"],
        schedule=parts["schedule"],
        data=data,
    )
    settings = LoopSettings(
        total_steps=steps,
        batch_size=section["batch_size"],
        micro_batch_size=section["micro_batch_size"],
        seed=seed,
        eval_interval=section.get("eval_interval", 100),
        log_interval=section.get("log_interval", 10),
        checkpoint_interval=steps,
        keep_checkpoints=1,
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xpm-train-optimizers-") as folder:
        paths = RunPaths(*(Path(folder) / name for name in ("ckpt", "m.jsonl", "r.json")))
        train(stage, settings, paths)
        seconds = time.perf_counter() - began
        evals = read_metrics(paths.metrics, "eval")
        definition = model_def(stage.make_model, make_mesh())
        params = restore_params(paths.checkpoints, steps, abstract_params(definition))
    _, held_out = split_documents(
        parts["dataset"].problems(), section["eval_fraction"], section["seed"]
    )
    model = definition.merge(params)
    return {
        "lr": lr,
        "optimizer": optimizer,
        "eval_loss": round(evals[-1]["eval/loss"], 4),
        "eval_losses": {r["step"]: round(r["eval/loss"], 4) for r in evals},
        "accuracy": round(exact_match(model, parts["tokenizer"], held_out[:MAX_PROBLEMS]), 4),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--yaml", type=Path, default=Path("yaml/full.yaml"))
    parser.add_argument("--sweep", action="store_true", help="train every lr of SWEEP")
    parser.add_argument("--steps", type=int, default=None, help="default: the stage's steps")
    args = parser.parse_args()
    section = pretrain_section(args.yaml)
    steps = args.steps or section["steps"]
    plan = [(name, lr) for name in TUNED for lr in (SWEEP[name] if args.sweep else [TUNED[name]])]
    results: dict[str, list[dict]] = {name: [] for name in TUNED}
    for name, lr in plan:
        result = run(section, optimizer_spec(name, lr), lr, steps)
        results[name].append(result)
        print(
            f"{name:6} lr {lr:.2e}: held-out loss {result['eval_loss']:.4f}, accuracy "
            f"{result['accuracy']:.3f} ({result['seconds']:.0f} s)",
            flush=True,
        )
    summary = {
        "steps": steps,
        "schedule": section["schedule"]["name"],
        "optimizers": {name: optimizer_spec(name, lr) for name, lr in TUNED.items()},
        "results": results,
        "backend": jax.default_backend(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
