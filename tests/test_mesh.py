"""The loop on a multi-device mesh: 2, 4 and 8 CPU devices simulated in a subprocess."""

import numpy as np
import pytest

from xpm_train.training.mesh import local_rows, make_mesh, mesh_shape, shard_batch

from .support.devices import run_on_devices

SCRIPT = """
import json, sys, tempfile
from pathlib import Path
import jax
from tests.support.tiny import run_paths, tiny_settings, tiny_stage
from xpm_train.training.loop import train
from xpm_train.training.metrics import read_metrics
from xpm_train.training.mesh import make_mesh
from xpm_train.training.state import abstract_state, bytes_per_device, model_def, state_shardings
out = {"devices": jax.device_count()}
for name, mesh in json.loads(sys.argv[1]).items():
    folder = Path(tempfile.mkdtemp())
    stage = tiny_stage()
    train(stage, tiny_settings(total_steps=8, micro_batch_size=1, **mesh), run_paths(folder))
    definition = model_def(stage.make_model, make_mesh(**mesh))
    tx = stage.optimizer.build(stage.schedule.build(8))
    state = abstract_state(definition, tx, state_shardings(definition, tx, definition.mesh))
    out[name] = {
        "losses": [r["loss"] for r in read_metrics(folder / "metrics.jsonl", "train")],
        "bytes": bytes_per_device(state),
    }
print("RESULT" + json.dumps(out))
"""


def test_mesh_axes_multiply_to_the_device_count():
    assert dict(make_mesh().shape) == {"data": 1, "fsdp": 1, "model": 1}
    assert mesh_shape(8, model_parallel=2, fsdp=2) == (2, 2, 2)
    assert mesh_shape(8, model_parallel=2, fsdp=-1) == (1, 4, 2)
    with pytest.raises(ValueError, match="model_parallel=2 does not divide the 1 device"):
        make_mesh(model_parallel=2)
    with pytest.raises(ValueError, match="fsdp=3 does not divide the 4 device"):
        mesh_shape(8, model_parallel=2, fsdp=3)


def test_one_process_holds_every_row():
    mesh = make_mesh()
    assert local_rows(mesh, 5).tolist() == [0, 1, 2, 3, 4]
    batch = {"tokens": np.arange(12).reshape(2, 3, 2)}
    placed = shard_batch(batch, mesh, batch_axis=1)
    assert np.array_equal(np.asarray(placed["tokens"]), batch["tokens"])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The losses of the run on one device, the reference of every mesh."""
    from xpm_train.training.loop import train
    from xpm_train.training.metrics import read_metrics

    from .support.tiny import run_paths, tiny_settings, tiny_stage

    folder = tmp_path_factory.mktemp("single")
    train(tiny_stage(), tiny_settings(total_steps=8, micro_batch_size=1), run_paths(folder))
    return [r["loss"] for r in read_metrics(folder / "metrics.jsonl", "train")]


def test_data_and_model_parallel_match_one_device(single):
    meshes = {"data_parallel": {}, "model_parallel": {"model_parallel": 2}}
    result = run_on_devices(2, SCRIPT, __import__("json").dumps(meshes))
    for name in meshes:
        assert result[name]["losses"] == pytest.approx(single, rel=1e-5)


@pytest.mark.parametrize("devices", [4, 8])
def test_fsdp_matches_one_device_and_splits_the_state(single, devices):
    """fsdp over every device, and fsdp x model: the losses of one device; the parameters
    and optimizer state held by one device drop to about 1/fsdp of the whole."""
    meshes = {
        "data": {},
        "fsdp": {"fsdp": -1},
        "fsdp_model": {"fsdp": devices // 2, "model_parallel": 2},
    }
    result = run_on_devices(devices, SCRIPT, __import__("json").dumps(meshes))
    assert result["devices"] == devices
    for name in meshes:
        assert result[name]["losses"] == pytest.approx(single, rel=1e-5), name
    per_device, total = result["fsdp"]["bytes"]
    assert result["data"]["bytes"] == [total, total]  # replicated: every device holds all
    print(f"{devices} devices: {per_device} of {total} bytes per device with fsdp {devices}")
    assert total / devices <= per_device < 1.1 * total / devices
    assert result["fsdp_model"]["bytes"][0] < 1.1 * total / devices
