"""What every job task adds to its identity besides its parameters (see
:mod:`xpm_train.provenance`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from experimaestro import Config, Constant, Param, field

from xpm_train.provenance import NUMERICS_VERSION, record_code


class Versioned(Config):
    """Mixin of every job task: the numerics version in its identity, the sources'
    fingerprint too with ``code_changes: rerun``; :meth:`record_code` when the job starts."""

    if TYPE_CHECKING:  # a constant is not an argument of C(...): tell pyright
        numerics_version: ClassVar[str]
    else:
        numerics_version: Constant[str] = NUMERICS_VERSION
        """Bumped by the project when a change moves results: every job runs again"""
    code_fingerprint: Param[str | None] = field(default=None, ignore_default=True)
    """The xpm_train sources' fingerprint (``code_changes: rerun``): other sources, new jobs"""

    def record_code(self) -> None:
        """Write the code of this attempt into the job's ``code.json`` (process 0 of a job;
        nothing when the task runs in-process, outside a job folder)."""
        from experimaestro.taskglobals import Env

        from xpm_train.training.processes import other_process

        folder = Env.instance().taskpath
        if folder is not None and not other_process():
            record_code(Path(folder))
