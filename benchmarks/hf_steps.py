"""The runs of ``benchmarks/hf_speed.py``: its inputs (a Hugging Face llama folder and the
encoded batches) and one measurement per process (xpm-train, PyTorch, TRL, loading)."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # make_tiny_hf
LR, BETA = 1e-5, 0.1
#: Every optimizer: AdamW, constant lr, betas 0.9/0.999, eps 1e-8, no weight decay, clip 1.0.
BETAS, EPS, CLIP = (0.9, 0.999), 1e-8, 1.0


def memory(key: str = "VmHWM") -> float:
    """``/proc/self/status`` figure in MiB (VmHWM: the peak resident set size)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith(key + ":")) / 1024


def word_pool(tokenizer: Any, rng: random.Random, size: int) -> list[str]:
    """Words that are one token each with their leading space: n words are n tokens."""
    words = [t[1:] for t in tokenizer.get_vocab() if t[:1] == "Ġ" and t[1:].isalpha()]
    words = [
        w for w in sorted(words) if len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1
    ]
    rng.shuffle(words)
    return words[:size]


def make_inputs(folder: Path, size: dict[str, Any]) -> str:
    """The llama folder (BPE tokenizer trained on synthetic words), the examples (pairs.json:
    TRL's strings) and their xpm-train encoding (data.npz: every batch of every run); every
    sequence is exactly ``seq_len + 1`` tokens, so no batch has padding. Returns the bos."""
    from make_tiny_hf import make_model_folder, train_tokenizer  # pyright: ignore[reportMissingImports]
    from transformers.utils import logging

    from xpm_train.data.completions import Completion, encode_completions
    from xpm_train.data.pairs import encode_pairs
    from xpm_train.data.preferences import PreferencePair
    from xpm_train.tasks.hf_model import read_hf_folder

    logging.disable_progress_bar()
    rng = random.Random(0)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    lexicon = ["".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(20000)]
    tokenizer = train_tokenizer(
        [" ".join(rng.choices(lexicon, k=12)) for _ in range(40000)], size["vocab"]
    )
    make_model_folder(folder, "llama", tokenizer, seed=0, **size["model"])
    words = word_pool(tokenizer, rng, 4000)
    n_prompt = size["prompt"]
    n_completion = size["seq_len"] - 1 - n_prompt  # + the bos before and the eos after

    def text(n: int) -> str:
        return "".join(" " + w for w in rng.choices(words, k=n))

    total = size["warmup"] + size["steps"]
    sft = [Completion(text(n_prompt), text(n_completion)) for _ in range(size["batch"] * total)]
    dpo = [
        PreferencePair(text(n_prompt), text(n_completion), text(n_completion))
        for _ in range(size["pairs"] * total)
    ]
    ours = read_hf_folder(folder).tokenizer.instance()
    arrays = encode_completions(sft, ours, size["seq_len"])
    arrays = {f"sft_{k}": v for k, v in arrays.items()}
    arrays |= {f"dpo_{k}": v for k, v in encode_pairs(dpo, ours, size["seq_len"]).items()}
    assert (arrays["sft_tokens"] != ours.pad_id).all(), "every sequence fills seq_len + 1"
    np.savez(str(folder / "data.npz"), **arrays)  # pyright: ignore[reportArgumentType]
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in dpo]
    (folder / "pairs.json").write_text(json.dumps(rows))
    return tokenizer.bos_token


def batches(folder: Path, kind: str, rows: int, count: int) -> list[dict[str, np.ndarray]]:
    """The ``count`` batches of ``rows`` examples of ``kind`` (sft or dpo), in order."""
    data = {k[4:]: v for k, v in np.load(folder / "data.npz").items() if k.startswith(kind)}
    return [{k: v[i * rows : (i + 1) * rows] for k, v in data.items()} for i in range(count)]


def timed(step: Any, items: list[Any], warmup: int) -> tuple[float, float]:
    """Seconds of the steps after the first ``warmup`` ones, and the first step's loss
    (``step`` returns its loss as a float, so it has finished)."""
    first = step(items[0])
    for item in items[1:warmup]:
        step(item)
    began = time.perf_counter()
    for item in items[warmup:]:
        step(item)
    return time.perf_counter() - began, first


def xpm_run(kind: str, folder: Path, size: dict[str, Any]) -> dict[str, Any]:
    """The step a SFT or DPO stage's loop runs: ``make_train_step`` of the stage's objective
    and optimizer, jitted with the loop's shardings and donation, one step at a time."""
    from xpm_train.training import runtime

    settings = runtime.configure(Path(os.environ.get("XPM_BENCH_WORKDIR", "runs/benchmarks")))
    import jax
    import jax.numpy as jnp

    from xpm_train.objectives.dpo import DirectPreference
    from xpm_train.objectives.language_model import NextTokenPrediction
    from xpm_train.optim.optimizers import AdamW
    from xpm_train.optim.schedules import WarmupStableDecay
    from xpm_train.tasks.checkpoint import restore_checkpoint
    from xpm_train.tasks.hf_model import read_hf_folder
    from xpm_train.training.mesh import make_mesh
    from xpm_train.training.state import create_state, state_shardings
    from xpm_train.training.step import make_train_step

    total = size["warmup"] + size["steps"]
    checkpoint, mesh = read_hf_folder(folder), make_mesh()
    definition, params = restore_checkpoint(checkpoint, mesh)
    schedule = WarmupStableDecay.C(lr=LR, lr_warmup_steps=0, decay_fraction=0.0).instance()
    learning_rate = schedule.build(total)
    optimizer = AdamW.C(weight_decay=0.0, b1=BETAS[0], b2=BETAS[1], eps=EPS, clip_norm=CLIP)
    tx = optimizer.instance().build(learning_rate)
    shardings = state_shardings(definition, tx, mesh)
    state = create_state(params, tx, 0, shardings)
    if kind == "sft":  # the SFT stage's objective: the mask holds the completion tokens
        objective, frozen, rows = NextTokenPrediction(), None, size["batch"]
    else:  # the reference: a second copy read from the folder, as a DPO stage's
        objective = DirectPreference(definition.graphdef, BETA, 0.0)
        frozen, rows = restore_checkpoint(checkpoint, mesh)[1], size["pairs"]
    train_step = jax.jit(
        make_train_step(definition, objective, tx, learning_rate),
        in_shardings=(shardings, None, None),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    )
    items = [
        {k: jnp.asarray(v[None]) for k, v in b.items()}  # one micro-batch
        for b in batches(folder, kind, rows, total)
    ]

    def step(batch: dict[str, Any]) -> float:
        nonlocal state
        state, metrics = train_step(state, batch, frozen)
        return float(metrics["loss"])

    seconds, first = timed(step, items, size["warmup"])
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
    return {
        "seconds": seconds,
        "first_loss": first,
        "params": count,
        "runtime": settings.describe(),
        "peak_rss_mib": memory(),
    }


def torch_run(kind: str, folder: Path, size: dict[str, Any]) -> dict[str, Any]:
    """A plain transformers + PyTorch step: SFT (cross-entropy on the completion tokens) or DPO
    (policy and frozen reference forward, sigmoid loss); backward, clip, fused AdamW."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder).train()
    opt = torch.optim.AdamW(model.parameters(), LR, BETAS, EPS, weight_decay=0.0, fused=True)
    total = size["warmup"] + size["steps"]
    rows = size["batch"] if kind == "sft" else size["pairs"]
    items = [
        {k: torch.from_numpy(v) for k, v in b.items()} for b in batches(folder, kind, rows, total)
    ]
    if kind == "dpo":
        reference = AutoModelForCausalLM.from_pretrained(folder).eval().requires_grad_(False)

    def logps(net: Any, tokens: Any, mask: Any) -> Any:
        logits = net(input_ids=tokens[:, :-1]).logits
        picked = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
        return (picked * mask).sum(-1)

    def loss_of(batch: dict[str, Any]) -> Any:
        if kind == "sft":
            tokens = batch["tokens"].long()
            labels = tokens[:, 1:].masked_fill(batch["mask"] == 0, -100)
            logits = model(input_ids=tokens[:, :-1]).logits
            return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        tokens = torch.cat([batch["chosen"], batch["rejected"]]).long()
        mask = torch.cat([batch["chosen_mask"], batch["rejected_mask"]])
        with torch.no_grad():
            ref_chosen, ref_rejected = logps(reference, tokens, mask).chunk(2)
        chosen, rejected = logps(model, tokens, mask).chunk(2)
        return -F.logsigmoid(BETA * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()

    def step(batch: dict[str, Any]) -> float:
        loss = loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    seconds, first = timed(step, items, size["warmup"])
    return {
        "seconds": seconds,
        "first_loss": first,
        "threads": torch.get_num_threads(),
        "peak_rss_mib": memory(),
    }


def trl_run(folder: Path, size: dict[str, Any], bos: str) -> dict[str, Any]:
    """TRL's DPOTrainer on the same pairs (checked token for token against xpm-train's
    encoding), timed between the ends of its steps; the plain PyTorch DPO step, with TRL's
    error, when TRL fails."""
    try:
        import torch
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from trl import DPOConfig, DPOTrainer  # pyright: ignore[reportPrivateImportUsage]

        ends: list[float] = []

        class StepEnds(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                ends.append(time.perf_counter())

        rows = json.loads((folder / "pairs.json").read_text())
        dataset = Dataset.from_list([{**r, "prompt": bos + r["prompt"]} for r in rows])
        config = DPOConfig(
            output_dir=str(folder / "trl"),
            per_device_train_batch_size=size["pairs"],
            max_length=size["seq_len"] + 1,
            beta=BETA,
            learning_rate=LR,
            adam_beta1=BETAS[0],
            adam_beta2=BETAS[1],
            adam_epsilon=EPS,
            weight_decay=0.0,
            max_grad_norm=CLIP,
            lr_scheduler_type="constant",
            max_steps=size["warmup"] + size["steps"],
            gradient_checkpointing=False,
            bf16=False,
            use_cpu=True,
            report_to="none",
            logging_strategy="no",
            save_strategy="no",
            disable_tqdm=True,
            seed=0,
        )
        trainer = DPOTrainer(
            AutoModelForCausalLM.from_pretrained(folder),
            AutoModelForCausalLM.from_pretrained(folder),  # the reference: a frozen copy
            args=config,
            train_dataset=dataset,
            callbacks=[StepEnds()],
            processing_class=AutoTokenizer.from_pretrained(folder),
        )
        data = np.load(folder / "data.npz")
        ours = {tuple(t) for t in np.concatenate([data["dpo_chosen"], data["dpo_rejected"]])}
        for example in trainer.train_dataset:
            row: dict[str, Any] = dict(example)  # pyright: ignore[reportCallIssue,reportArgumentType]
            for side in ("chosen", "rejected"):
                if tuple(row["prompt_ids"] + row[f"{side}_ids"]) not in ours:
                    raise ValueError(f"TRL's {side} tokens differ from xpm-train's")
        trainer.train()
        return {
            "seconds": ends[-1] - ends[size["warmup"] - 1],
            "optim": str(getattr(config.optim, "value", config.optim)),
            "threads": torch.get_num_threads(),
            "peak_rss_mib": memory(),
        }
    except Exception as error:  # noqa: BLE001 (reported; the plain step is measured instead)
        return {**torch_run("dpo", folder, size), "trl_error": f"{type(error).__name__}: {error}"}


def load_run(impl: str, folder: Path) -> dict[str, Any]:
    """Seconds and memory to import the library, then to load the folder's model."""
    began = time.perf_counter()
    if impl == "xpm_train":
        import jax

        from xpm_train.tasks.checkpoint import load_checkpoint
    else:
        from transformers import AutoModelForCausalLM
    imported, rss = time.perf_counter(), memory("VmRSS")
    if impl == "xpm_train":
        jax.block_until_ready(load_checkpoint(folder).params)
    else:
        AutoModelForCausalLM.from_pretrained(folder)
    return {
        "seconds": time.perf_counter() - imported,
        "import_s": imported - began,
        "rss_after_import_mib": rss,
        "peak_rss_mib": memory(),
    }
