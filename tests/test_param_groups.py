"""Parameter groups: which group each parameter of the project's models is in, the exact update
of a group, planning errors through the real CLI, and a tiny pretraining with muon."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xpm_train.models.config import TransformerConfig
from xpm_train.models.families import LlamaConfig
from xpm_train.optim.groups import SHORTCUTS, ParamGroup, assign_groups
from xpm_train.optim.optimizers import AdamW, Muon
from xpm_train.optim.paths import param_shapes
from xpm_train.registry import build, validate_spec
from xpm_train.training.checkpoint import CheckpointStore
from xpm_train.training.loop import train
from xpm_train.training.mesh import make_mesh
from xpm_train.training.metrics import read_metrics
from xpm_train.training.state import abstract_state, model_def, state_shardings

from .cli import run_cli
from .conftest import PROJECT
from .support.tiny import run_paths, tiny_settings, tiny_stage

SMALL = {
    "vocab_size": 300,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
HRM_GROUP = {"pattern": "embeddings", "lr_scale": 10.0, "weight_decay": 0.0}
#: YAML lists of groups need sections.py to build list[Config] items (issue 20).
yaml_groups = pytest.mark.skipif(
    bool(validate_spec("optimizer", {"name": "adamw", "groups": [HRM_GROUP]})),
    reason="xpm_train/graph/sections.py does not build YAML lists of Configs yet",
)


def tiny_llama() -> LlamaConfig:
    return LlamaConfig.C(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
    )


@pytest.mark.parametrize(
    "model, vocab, expected",
    [
        (
            TransformerConfig.C(),
            258,
            {
                "blocks/0/attn/qkv/kernel": "muon",
                "blocks/1/mlp/down/kernel": "muon",
                "blocks/0/attn_norm/scale": "adam",
                "final_norm/scale": "adam",
                "embed/embedding": "adam, group 0 (embeddings)",
            },
        ),
        (
            tiny_llama(),
            300,
            {
                "layers/0/attn/q/kernel": "muon",
                "layers/1/attn/o/kernel": "muon",
                "layers/0/mlp/gate/kernel": "muon",
                "layers/0/mlp_norm/scale": "adam",
                "lm_head/kernel": "adam",
                "embed/embedding": "adam, group 0 (embeddings)",
            },
        ),
    ],
    ids=["transformer", "llama"],
)
def test_every_parameter_has_one_shortcut_and_one_group(model, vocab, expected):
    shapes = param_shapes(model, vocab)
    described = Muon.C(groups=[ParamGroup.C(**HRM_GROUP)]).instance().describe(shapes)
    for path, label in described.items():
        print(f"{path:32} {str(shapes[path]):12} {label}")
    assert sorted(described) == sorted(shapes)
    for path in shapes:
        names = [name for name, regex in SHORTCUTS.items() if re.search(regex, path)]
        assert len(names) == 1, (path, names)
    assert {path: described[path] for path in expected} == expected
    kinds = {label.split(",")[0] for label in described.values()}
    assert kinds == {"muon", "adam"}


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "transformer", "use_bias": True, "tie_embeddings": False, "positions": "learned"},
        {"name": "transformer", "norm": "rmsnorm", "n_layers": 1},
        {**SMALL, "name": "qwen2", "tie_embeddings": True},
        {**SMALL, "name": "gpt_neox"},
        {**SMALL, "name": "llama", "attention_bias": True, "mlp_bias": True},
    ],
    ids=["transformer-biases-untied", "transformer-rmsnorm", "qwen2", "gpt_neox", "llama-biases"],
)
def test_the_shortcuts_split_the_parameters_of_every_model(spec):
    shapes = param_shapes(build("model", spec), 258)
    for path in shapes:
        names = [name for name, regex in SHORTCUTS.items() if re.search(regex, path)]
        assert len(names) == 1, (path, names)
    rules = Muon.C().instance()
    muon = sorted(path for path, shape in shapes.items() if rules.rule(path, shape) == "muon")
    assert muon and all(re.search(r"/(attn|mlp)/\w+/kernel$", path) for path in muon)


def test_with_jax_mocked_the_parameters_are_listed_in_a_subprocess():
    from xpm_train.optim import paths

    model = TransformerConfig.C(n_layers=1, tie_embeddings=False)
    assert not paths.jax_mocked()
    assert paths._in_subprocess(model, 258) == paths.abstract(model, 258)


def test_a_group_matching_nothing_or_a_parameter_in_two_groups_is_an_error():
    paths = ["embed/embedding", "blocks/0/attn/qkv/kernel", "blocks/0/attn/qkv/bias"]
    assert assign_groups(paths, [ParamGroup.C(pattern="biases")]) == {
        "embed/embedding": None,
        "blocks/0/attn/qkv/kernel": None,
        "blocks/0/attn/qkv/bias": 0,
    }
    with pytest.raises(ValueError, match="group pattern 'lm_head' matches no parameter"):
        assign_groups(paths, [ParamGroup.C(pattern="lm_head")])
    with pytest.raises(ValueError, match=r"'blocks/0/attn/qkv/kernel' is in several groups"):
        assign_groups(paths, [ParamGroup.C(pattern="qkv"), ParamGroup.C(pattern="matrices")])


def test_group_lr_scale_and_weight_decay_give_a_separate_adamw_update():
    rng = np.random.default_rng(0)
    params = {
        "embed": {"embedding": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)},
        "blocks": {
            0: {
                "attn": {"qkv": {"kernel": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)}},
                "attn_norm": {"scale": jnp.ones((4,))},
            }
        },
    }
    groups = [
        ParamGroup.C(pattern="embeddings", lr_scale=10.0, weight_decay=0.0),
        ParamGroup.C(pattern="^blocks/0/attn_norm/scale$", lr_scale=0.5, weight_decay=0.2),
    ]
    schedule = lambda step: 0.01 * (step + 1)  # noqa: E731
    tx = AdamW.C(groups=groups, weight_decay=0.1, clip_norm=0.0).instance().build(schedule)

    def adamw(lr_scale: float, weight_decay: float) -> optax.GradientTransformation:
        return optax.adamw(lambda s: schedule(s) * lr_scale, b2=0.95, weight_decay=weight_decay)

    separate = {  # name -> (keys of the parameter, its own AdamW)
        "embed": (("embed", "embedding"), adamw(10.0, 0.0)),
        "norm": (("blocks", 0, "attn_norm", "scale"), adamw(0.5, 0.2)),
        "kernel": (("blocks", 0, "attn", "qkv", "kernel"), adamw(1.0, 0.1)),
    }

    def leaf(tree, keys):
        for key in keys:
            tree = tree[key]
        return tree

    state, current = tx.init(params), params
    own = {
        name: (leaf(params, keys), opt.init(leaf(params, keys)))
        for name, (keys, opt) in separate.items()
    }
    for _ in range(3):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        updates, state = tx.update(grads, state, current)
        current = optax.apply_updates(current, updates)
        for name, (keys, opt) in separate.items():
            value, opt_state = own[name]
            step, opt_state = opt.update(leaf(grads, keys), opt_state, value)
            own[name] = (optax.apply_updates(value, step), opt_state)
    for name, (keys, _) in separate.items():
        np.testing.assert_array_equal(leaf(current, keys), own[name][0], err_msg=name)


def test_tiny_pretraining_with_muon_and_a_group_lowers_the_loss_and_checkpoints(tmp_path):
    optimizer = {"name": "muon", "adam_lr_scale": 0.2, "groups": [ParamGroup.C(**HRM_GROUP)]}
    stage = tiny_stage(optimizer=optimizer, schedule={"lr": 0.02})
    train(stage, tiny_settings(), run_paths(tmp_path))
    records = read_metrics(tmp_path / "metrics.jsonl", "train")
    evals = read_metrics(tmp_path / "metrics.jsonl", "eval")
    print([round(r["loss"], 3) for r in records], [round(r["eval/loss"], 3) for r in evals])
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
    assert evals[-1]["eval/loss"] < evals[0]["eval/loss"]
    # The state restores as a resumed job restores it: momenta and moments of every parameter.
    mesh = make_mesh()
    definition = model_def(stage.make_model, mesh)
    tx = stage.optimizer.build(stage.schedule.build(24))
    target = abstract_state(definition, tx, state_shardings(definition, tx, mesh))
    store = CheckpointStore(tmp_path / "checkpoints")
    state, meta = store.restore(24, target)
    store.close()
    _, own = state.opt_state
    assert int(own.count) == 24 and meta["step"] == 24
    momentum = own.mu["blocks"][0]["attn"]["qkv"]["kernel"]
    assert momentum.shape == (32, 96) and float(jnp.abs(momentum).max()) > 0
    assert float(own.nu["embed"]["embedding"].max()) > 0


def planning_error(tmp_path: Path, groups: str) -> str:
    experiment = tmp_path / "xp.yaml"
    experiment.write_text(
        f"imports: [{PROJECT / 'yaml' / 'tiny.yaml'}]\n"
        f"stages:\n  pretrain:\n    optimizer: {{name: muon, groups: {groups}}}\n"
    )
    done = run_cli(experiment, tmp_path / "ws", tmp_path / "home", "--run-mode", "dry_run")
    assert done.returncode == 2, done.stderr[-3000:]
    assert not (tmp_path / "ws" / "jobs").exists()
    return " ".join(done.stderr.split())


@yaml_groups
def test_a_pattern_matching_no_parameter_is_a_planning_error(tmp_path):
    message = planning_error(tmp_path, "[{pattern: embeddings}, {pattern: lm_head, lr_scale: 2}]")
    assert "stages.pretrain.optimizer: group pattern 'lm_head' matches no parameter" in message


@yaml_groups
def test_a_parameter_in_two_groups_is_a_planning_error(tmp_path):
    message = planning_error(tmp_path, "[{pattern: norms}, {pattern: final_norm, lr_scale: 0.5}]")
    assert "parameter 'final_norm/scale' is in several groups ('norms' and 'final_norm')" in message
