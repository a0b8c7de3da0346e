"""Every bad input of issue 19 through the real CLI: one paragraph naming the key, the value
and the fix; exit status 2; no traceback and no job folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli import run_cli
from .conftest import PROJECT

HEADER = f"imports: [{PROJECT}/yaml/tiny.yaml]\ndirty_git: ignore\n"


def aliases(levels: int) -> str:
    """A list of ``10 ** levels`` values written in a few hundred bytes of YAML aliases."""
    items = ["- &a0 [1,1,1,1,1,1,1,1,1,1]"]
    items += [f"- &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "grid_search:\n" + "".join(f"  {item}\n" for item in items)


def nested(levels: int) -> str:
    return "evaluation: {seq_len: " + "[" * levels + "]" * levels + "}\n"


CASES = {
    "lr zero": (
        "-c",
        "stages.pretrain.schedule.lr=0",
        "stages.pretrain.schedule.lr: 0.0 must be a number > 0",
    ),
    "lr nan": (
        "-c",
        "stages.pretrain.schedule.lr=.nan",
        "stages.pretrain.schedule.lr: nan must be a number > 0",
    ),
    "eval_fraction": (
        "-c",
        "stages.pretrain.eval_fraction=1.0",
        "stages.pretrain.eval_fraction: 1.0 must be in [0, 1)",
    ),
    "seed": ("-c", "stages.pretrain.seed=-1", "stages.pretrain.seed: -1 must be >= 0"),
    "keep_checkpoints": (
        "-c",
        "stages.pretrain.keep_checkpoints=0",
        "stages.pretrain.keep_checkpoints: 0 must be >= 1",
    ),
    "model_parallel": (
        "-c",
        "stages.pretrain.model_parallel=0",
        "stages.pretrain.model_parallel: 0 must be >= 1",
    ),
    "model_parallel devices": (
        "-c",
        "stages.pretrain.model_parallel=2",
        "stages.pretrain.model_parallel: model_parallel=2 does not divide the 1 device(s)",
    ),
    "n_heads": (
        "-c",
        "stages.pretrain.model.n_heads=0",
        "transformer model: n_heads=0 must be >= 1",
    ),
    "betas": (
        "-c",
        "stages.pretrain.optimizer={name: adamw, b2: 1.0}",
        "stages.pretrain.optimizer.b2: 1.0 must be in [0, 1)",
    ),
    "muon betas": (
        "-c",
        "stages.pretrain.optimizer={name: muon, adam_b1: -0.1}",
        "stages.pretrain.optimizer.adam_b1: -0.1 must be in [0, 1)",
    ),
    "dpo pair too long": (
        "-c",
        "stages.dpo.seq_len=6",
        "stages.dpo.seq_len: preference pair 0 ('",
    ),
    "nested key": ("-c", "stages.pretrain.lr=0.1", "(did you mean 'schedule.lr'?)"),
    "id": (
        "yaml",
        "id: ../../elsewhere\n",
        "id: '../../elsewhere' cannot name the experiment's folder",
    ),
    "unreadable": (
        "yaml",
        "stages: {pretrain: {dataset: {name: jsonl, path: /proc/self/mem}}}\n",
        "/proc/self/mem cannot be read (Input/output error)",
    ),
    "not utf-8": (
        "yaml",
        "stages: {pretrain: {dataset: {name: text_files, path: DATA}}}\n",
        "is not UTF-8 text: byte 3 is 0xe9",
    ),
    "nested": ("yaml", nested(40), "values are nested more than 32 levels deep"),
    "nested override": (
        "-c",
        "evaluation.seq_len=" + "[" * 40 + "]" * 40,
        "values are nested more than 32 levels deep",
    ),
    "aliases": (
        "yaml",
        aliases(7),
        "more than 100,000 values once its YAML aliases (*name) are expanded",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_paragraph_before_anything_runs(tmp_path: Path, case: str):
    where, text, expected = CASES[case]
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9 au lait\n1+1=2\n")
    yaml = tmp_path / "experiment.yaml"
    yaml.write_text(HEADER + (text.replace("DATA", str(latin1)) if where == "yaml" else ""))
    args = ("-c", text) if where == "-c" else ()
    result = run_cli(yaml, tmp_path / "ws", tmp_path / "home", *args)
    assert result.returncode == 2, result.stderr[-3000:]
    assert expected in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr) < 5000  # one paragraph, not a dump of the expanded values
    assert not (tmp_path / "ws" / "jobs").exists()
