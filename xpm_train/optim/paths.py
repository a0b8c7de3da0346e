"""The parameter paths and shapes of a model configuration, from its abstract shapes
(``nnx.eval_shape``: nothing is allocated, nothing trained).

The planning driver runs with jax mocked (``yaml/pre_experiment.py``): there, the shapes come
from a subprocess (``python -m xpm_train.optim.paths``, about 2 s) that imports the real
libraries, cached by the model's identity and the vocabulary size; elsewhere (a job, a test)
from this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

Shapes = dict[str, tuple[int, ...]]

_CACHE: dict[tuple[str, int], Shapes] = {}
TIMEOUT_S = 300.0


def param_shapes(model: Any, vocab_size: int) -> Shapes:
    """``{path: shape}`` of every parameter of ``model.create(vocab_size, seed)``."""
    if not jax_mocked():
        try:
            return abstract(model, vocab_size)
        except Exception as error:  # a model that cannot be built: its own checks say why
            raise ValueError(f"could not list the model's parameters: {error}") from error
    key = (model.__xpm__.identifier.all.hex(), vocab_size)
    if key not in _CACHE:
        _CACHE[key] = _in_subprocess(model, vocab_size)
    return dict(_CACHE[key])


def jax_mocked() -> bool:
    """Whether ``jax`` is experimaestro's stand-in (the planning driver's mocks)."""
    import jax
    from experimaestro.experiments.mockmodule import FakeModule

    return isinstance(jax, FakeModule)


def abstract(model: Any, vocab_size: int) -> Shapes:
    """The shapes of the parameters, in this process."""
    import jax
    from flax import nnx

    from xpm_train.optim.groups import path_text

    created = nnx.eval_shape(lambda: model.create(vocab_size, 0))
    params = nnx.to_pure_dict(nnx.split(created, nnx.Param)[1])
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {path_text(keys): tuple(leaf.shape) for keys, leaf in leaves}


def _in_subprocess(model: Any, vocab_size: int) -> Shapes:
    from experimaestro import save

    with tempfile.TemporaryDirectory(prefix="xpm-train-params-") as folder:
        save(model, Path(folder))
        command = [sys.executable, "-m", "xpm_train.optim.paths", folder, str(vocab_size)]
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, env=env
            )
        except subprocess.TimeoutExpired as error:
            raise ValueError(f"listing the model's parameters took over {TIMEOUT_S}s") from error
        if done.returncode:
            tail = (done.stderr or done.stdout).strip()[-1000:]
            raise ValueError(f"could not list the model's parameters: {tail}")
        return {path: tuple(shape) for path, shape in json.loads(done.stdout).items()}


def main(folder: str, vocab_size: str) -> None:
    from experimaestro import load

    model = load(Path(folder), as_instance=True)
    print(json.dumps(abstract(model, int(vocab_size))))


if __name__ == "__main__":
    main(*sys.argv[1:3])
