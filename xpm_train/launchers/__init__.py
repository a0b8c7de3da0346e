"""Where jobs run: the ``launcher:`` section of an experiment (local, SLURM, or a requirement
resolved by experimaestro's ``launchers.py``), see docs/slurm.md."""

from xpm_train.launchers.config import LauncherBlock, LauncherSection, SlurmSection
from xpm_train.launchers.resolve import (
    LauncherError,
    StageLaunchers,
    planned_launchers,
    stage_launchers,
)

__all__ = [
    "LauncherBlock",
    "LauncherError",
    "LauncherSection",
    "SlurmSection",
    "StageLaunchers",
    "planned_launchers",
    "stage_launchers",
]
