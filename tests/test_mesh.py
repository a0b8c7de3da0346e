"""The loop on a multi-device mesh: 2 CPU devices simulated in a subprocess."""

import pytest

from xpm_train.training.mesh import make_mesh

from .support.devices import run_on_two_devices

SCRIPT = """
import json, sys, tempfile
from pathlib import Path
import jax
from tests.support.tiny import run_paths, tiny_settings, tiny_stage
from xpm_train.training.loop import train
from xpm_train.training.metrics import read_metrics
assert jax.device_count() == 2, jax.devices()
out = {}
for name, model_parallel in (("data_parallel", 1), ("model_parallel", 2)):
    folder = Path(tempfile.mkdtemp())
    train(tiny_stage(), tiny_settings(total_steps=8, model_parallel=model_parallel),
          run_paths(folder))
    out[name] = [r["loss"] for r in read_metrics(folder / "metrics.jsonl", "train")]
print("RESULT" + json.dumps(out))
"""


def test_single_device_is_a_one_by_one_mesh():
    mesh = make_mesh()
    assert dict(mesh.shape) == {"data": 1, "model": 1}
    with pytest.raises(ValueError, match="model_parallel=2 does not divide the 1 device"):
        make_mesh(model_parallel=2)


def test_data_and_model_parallel_match_one_device(tmp_path):
    from xpm_train.training.loop import train
    from xpm_train.training.metrics import read_metrics

    from .support.tiny import run_paths, tiny_settings, tiny_stage

    train(tiny_stage(), tiny_settings(total_steps=8), run_paths(tmp_path))
    single = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    result = run_on_two_devices(SCRIPT)
    for losses in result.values():
        assert losses == pytest.approx(single, rel=1e-4)
