import jax
import numpy as np
import pytest

from xpm_train.training.checkpoint import CheckpointStore, restore_params
from xpm_train.training.mesh import make_mesh
from xpm_train.training.state import (
    abstract_state,
    create_state,
    init_params,
    model_def,
    state_shardings,
)

from .conftest import tiny_components


def _state():
    parts = tiny_components()

    def make_model():
        return parts["model"].create(parts["tokenizer"].vocab_size, seed=0)

    mesh = make_mesh()
    definition = model_def(make_model, mesh)
    tx = parts["optimizer"].build(lambda step: 1e-3)
    shardings = state_shardings(definition, tx, mesh)
    state = create_state(init_params(make_model, definition), tx, 3, shardings)
    return state, abstract_state(definition, tx, shardings), definition


def test_round_trip_restores_every_leaf_with_its_sharding(tmp_path):
    state, target, definition = _state()
    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    for step in (1, 2, 3):
        store.save(state.replace(step=state.step + step), {"step": step, "samples": 8 * step})
    assert store.steps() == [2, 3]
    restored, meta = store.restore(3, target)
    assert meta == {"step": 3, "samples": 24}
    assert int(restored.step) == 3
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, restored.opt_state, state.opt_state)
    np.testing.assert_array_equal(restored.rng, state.rng)
    leaf = jax.tree.leaves(restored.params)[0]
    assert leaf.sharding == jax.tree.leaves(definition.param_shardings)[0]
    store.close()

    params = restore_params(tmp_path / "ckpt", None, target.params)
    jax.tree.map(np.testing.assert_array_equal, params, state.params)


def test_no_checkpoint_is_a_clear_error(tmp_path):
    _, target, _ = _state()
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        restore_params(tmp_path / "empty", None, target.params)
