import jax
import numpy as np
import pytest

from xpm_train.training.checkpoint import CheckpointStore, restore_params
from xpm_train.training.state import abstract_state

from .support.tiny import model_factory, tiny_components, train_setup


def _state():
    parts = tiny_components()
    tx = parts["optimizer"].build(lambda step: 1e-3)
    setup = train_setup(model_factory(parts), tx, seed=3)
    return setup.state, abstract_state(setup.definition, tx, setup.shardings), setup.definition


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
