"""Atomic orbax checkpoints of the training state, with a JSON record of the run's position.

Each checkpoint ``<dir>/<step>/`` holds ``state`` (step, parameters, optimizer state, RNG) and
``meta`` (step, samples seen, last metrics). orbax writes into a temporary folder and renames it
when complete, so an interrupted save never replaces a good checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from xpm_train.training.state import Params, TrainState


class CheckpointStore:
    """Saves and restores training states under ``directory``, keeping the last ``keep``."""

    def __init__(self, directory: Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(1, keep),
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state: TrainState, meta: dict[str, Any], force: bool = False) -> Path:
        step = int(meta["step"])
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state.as_dict()), meta=ocp.args.JsonSave(meta)
            ),
            force=force,
        )
        self._manager.wait_until_finished()
        return self.directory / str(step)

    def restore(self, step: int, target: TrainState) -> tuple[TrainState, dict[str, Any]]:
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target.as_dict()), meta=ocp.args.JsonRestore()
            ),
        )
        return TrainState.from_dict(restored.state), dict(restored.meta)

    def read_meta(self, step: int) -> dict[str, Any]:
        """Only the JSON record of the checkpoint of ``step``."""
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def close(self) -> None:
        self._manager.close()


def restore_params(directory: Path, step: int | None, target: Params) -> Params:
    """Only the parameters of a checkpoint (latest step if ``step`` is None)."""
    store = CheckpointStore(directory)
    try:
        step = store.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        handler = ocp.PyTreeCheckpointer()
        item = store.directory / str(step) / "state"
        tree = handler.restore(
            item,
            args=ocp.args.PyTreeRestore(
                item={"params": target},
                restore_args=ocp.checkpoint_utils.construct_restore_args({"params": target}),
                partial_restore=True,
            ),
        )
        return tree["params"]
    finally:
        store.close()
