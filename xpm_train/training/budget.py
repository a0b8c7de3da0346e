"""An epoch budget turned into steps: ``steps = ceil(epochs * epoch size / batch_size)``.

The epoch size is what one pass over the training split holds: the packed blocks of
``seq_len + 1`` tokens for text (pretrain, kl), the examples for pairs and completions (dpo,
sft). It is counted when the experiment is planned, since the steps decide the schedule, the
checkpoint a later stage reads and the plan's costs: an epoch budget needs training data that
can be read then (generated data, or files within ``PLANNING_READ_LIMIT``; for text, a
tokenizer that exists before any job runs), and is otherwise a planning error on ``epochs``.
The job counts again from the same data and seed, and gets the same number.

Runs in the experiment driver: no JAX here.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from experimaestro import Config
from experimaestro.core.objects import ConfigMixin

from xpm_train.data.datasets import PLANNING_READ_LIMIT, readable_at_planning
from xpm_train.validation import ConfigError

if TYPE_CHECKING:
    from xpm_train.tasks.trainer import TrainerTask

#: Where a task caches its epoch size, with the parameters it was counted for.
_CACHE = "_xpm_train_epoch_size"


def explicit(config: Any, name: str) -> bool:
    """Whether parameter ``name`` of a configuration was given (not left at its default).
    Known while planning only; False for an object of a job process."""
    provenance = getattr(getattr(config, "__xpm__", None), "provenance_of", None)
    found = provenance(name) if provenance is not None else None
    return found is not None and found.kind == "explicit"


def data_files(config: Any) -> list[Path]:
    """The local files a data component reads (its own ``files()`` or ``path``, and those of
    the components it holds)."""
    files = getattr(config, "files", None)
    if callable(files):
        return [Path(file) for file in cast(list[Path], files())]
    found: list[Path] = []
    path = getattr(config, "path", None)
    if isinstance(path, (str, Path)):
        found.append(Path(path).expanduser())
    for name in config.__xpm__.xpmtype.arguments:
        value = getattr(config, name, None)
        if isinstance(value, Config):
            found += data_files(value)
    return found


def counts_examples(task: TrainerTask) -> bool:
    """Whether an epoch of the task is counted in examples (else in packed blocks)."""
    from xpm_train.data.examples import ExampleData

    return issubclass(task.data_loader(), ExampleData)


def unreadable(task: TrainerTask) -> str | None:
    """Why the task's epoch size cannot be counted at planning, or None if it can."""
    try:
        files = data_files(task.training_data())
    except ValueError as error:
        return f"its training data cannot be listed ({error})"
    missing = [path for path in files if not path.is_file()]
    if missing:
        return f"its training data file {str(missing[0])!r} does not exist"
    if not readable_at_planning(*files):
        limit = PLANNING_READ_LIMIT // 2**20
        return f"its training data files are larger than the {limit} MiB read at planning"
    from xpm_train.data.hf_tokenizer import TrainedBPE

    tokenizer = task.model_and_tokenizer()[1]
    if not counts_examples(task) and isinstance(tokenizer, TrainedBPE):
        return "its text is counted in tokens of a tokenizer that an upstream job trains"
    return None


def count_epoch(task: TrainerTask) -> int:
    """Training examples (or packed blocks) in one pass over the task's training split."""
    if counts_examples(task):
        from xpm_train.data.packing import split_documents

        count = len(task.training_data().pairs())
        return len(split_documents(list(range(count)), task.eval_fraction, task.seed)[0])
    batches = task.stage_data().train_batches(1)
    return int(batches.size)  # type: ignore[attr-defined]  # a StepBatches


def epoch_size(task: TrainerTask) -> int:
    """The task's epoch size, counted once (a :class:`ConfigError` on ``epochs`` when it
    cannot be counted at planning)."""
    key = (task.seq_len, task.eval_fraction, task.seed)
    cached = task.__dict__.get(_CACHE)
    if cached is not None and cached[0] == key:
        return cached[1]
    if isinstance(task, ConfigMixin):  # planning: the job process reads its data anyway
        reason = unreadable(task)
        if reason is not None:
            raise ConfigError(
                [
                    (
                        "epochs",
                        "epochs become steps at planning, from the size of the training split, "
                        f"but {reason}; give steps instead",
                    )
                ]
            )
    try:
        size = count_epoch(task)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError([("epochs", f"cannot count the training examples: {error}")]) from None
    if size < 1:
        raise ConfigError([("epochs", "the training split holds no example")])
    task.__dict__[_CACHE] = (key, size)
    return size


def epoch_steps(task: TrainerTask) -> int:
    """``ceil(epochs * epoch size / batch_size)``, with ``epochs`` read as the decimal it was
    written as (``0.1`` epochs of 80 examples in batches of 8 is 1 step, not 2)."""
    epochs = task.epochs
    if epochs is None or not epochs > 0 or not math.isfinite(epochs):
        raise ConfigError([("epochs", f"{epochs} must be a positive number")])
    size = epoch_size(task)
    return math.ceil(Fraction(str(epochs)) * size / max(task.batch_size, 1))
