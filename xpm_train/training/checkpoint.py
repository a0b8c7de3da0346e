"""Atomic orbax checkpoints of the training state, with a JSON record of the run's position.

Each checkpoint ``<dir>/<step>/`` holds ``state`` (step, parameters, optimizer state, RNG) and
``meta`` (step, samples seen, last metrics). orbax writes into a temporary folder and renames it
when complete, so an interrupted save never replaces a good checkpoint. A store opened
``read_only`` (to load a model from another job's folder, which may still be running) neither
creates nor removes anything there: orbax's clean-up of unfinished saves would delete the
running job's save in progress.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from xpm_train.training.state import Params, TrainState


class UnreadableCheckpoints(RuntimeError):
    """Every checkpoint of a folder is corrupt or partial: resuming would start from scratch."""

    def __init__(self, directory: Path, problems: list[str]):
        super().__init__(
            f"no checkpoint in {directory} can be read, so the job cannot resume: "
            + "; ".join(problems)
            + f". Delete {directory} to train again from the start."
        )


class CheckpointStore:
    """Saves and restores training states under ``directory``, keeping the last ``keep``."""

    def __init__(self, directory: Path, keep: int = 2, read_only: bool = False):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max(1, keep),
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
            enable_async_checkpointing=False,
        )
        absl = logging.getLogger("absl")
        level = absl.level
        if read_only:  # orbax warns that a read-only folder is read-only
            absl.setLevel(logging.ERROR)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        finally:
            absl.setLevel(level)

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

    def restore_latest_readable(
        self, target: TrainState
    ) -> tuple[TrainState, dict[str, Any]] | None:
        """The latest checkpoint that can be read, going back from the latest one when it is
        corrupt or partial (with a warning naming both); None when there is none. Raises
        :class:`UnreadableCheckpoints` when there are checkpoints and none can be read."""
        steps = sorted(self.steps(), reverse=True)
        problems: list[str] = []
        for step in steps:
            try:
                restored = self.restore(step, target)
            except Exception as error:  # orbax raises many kinds for damaged files
                problems.append(f"{self.directory / str(step)}: {type(error).__name__}: {error}")
                continue
            if problems:
                kept = self.set_aside([s for s in steps if s > step])
                print(
                    f"warning: checkpoint {self.directory / str(steps[0])} cannot be read, "
                    f"resuming from {self.directory / str(step)} instead ("
                    + "; ".join(problems)
                    + f"); the unreadable checkpoints are kept as {', '.join(kept)}",
                    file=sys.stderr,
                    flush=True,
                )
            return restored
        if problems:
            raise UnreadableCheckpoints(self.directory, problems)
        return None

    def set_aside(self, steps: list[int]) -> list[str]:
        """Rename the checkpoints of ``steps`` to ``unreadable-<step>`` (which orbax does not
        list), so that the run can write those steps again; their new names."""
        import jax
        from jax.experimental import multihost_utils

        names = []
        for step in steps:
            target = self.directory / f"unreadable-{step}"
            count = 1
            while target.exists():
                count += 1
                target = self.directory / f"unreadable-{step}-{count}"
            if jax.process_index() == 0:
                (self.directory / str(step)).rename(target)
            names.append(target.name)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoints set aside")
        self._manager.reload()
        return names

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
    store = CheckpointStore(directory, read_only=True)
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
