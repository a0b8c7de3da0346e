"""The ``launcher:`` section of an experiment file: where each stage's jobs run.

```yaml
launcher:
  default: local                                    # every job, unless its stage says otherwise
  evaluation: "duration=30m & cpu(cores=2)"        # a requirement, resolved by launchers.py
  max_retries: 5
stages:
  pretrain: {kind: pretrain, launcher: {slurm: {partition: gpu, gpus_per_node: 1}}, ...}
```

A launcher is ``local`` (a process on this machine), a ``{slurm: {...}}`` block (experimaestro's
``SlurmLauncher`` with these options) or any other string: an experimaestro requirement
resolved by the ``find_launcher`` function of ``launchers.py``. A training stage's launcher is
the ``launcher`` key of its section in ``stages:``; evaluation and report jobs have theirs here.
A ``slurm`` block is merged over the default's when both are SLURM blocks. The strict hook checks
the keys and types of these classes; :meth:`SlurmSection.validate` checks the values.
(No ``from __future__ import annotations``: experimaestro validates with the field types.)
"""

import re
from typing import Any

import attrs
from experimaestro.experiments import configuration

#: The jobs other than training stages that can have their own launcher.
OTHER_JOBS = ("evaluation", "report")

#: SLURM's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}")
#: SLURM's --mem: megabytes, or a size with a unit.
_MEMORY = re.compile(r"\d+[KMGT]?")


def _slurm_value(value: int | str, pattern: re.Pattern[str]) -> bool:
    """A positive number, or a string of the form ``pattern``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return isinstance(value, str) and pattern.fullmatch(value) is not None


@configuration()
class SlurmSection:
    """Options of experimaestro's ``SlurmLauncher`` (each one a ``#SBATCH --<option>`` line,
    unset ones left to the cluster's defaults)."""

    partition: str | None = None
    time: int | str | None = None
    """Time limit: minutes (``90``) or SLURM's ``[D-]H:M:S`` forms (``"1:30:00"``)"""
    nodes: int | None = None
    """Nodes of a training job (with ntasks_per_node: one JAX process per task)"""
    ntasks_per_node: int | None = None
    """Processes per node of a training job (e.g. one per GPU); all processes form one JAX
    job through jax.distributed (docs/scaling.md)"""
    cpus_per_task: int | None = None
    mem: int | str | None = None
    """Memory of the node: megabytes, or with a unit (``"16G"``)"""
    gpus_per_node: int | None = None
    qos: str | None = None
    account: str | None = None
    constraint: str | None = None
    interval: float | None = None
    """Seconds between two polls of ``sacct`` by the experiment (experimaestro's default: 60;
    a finished job is noticed up to this long after its end)"""
    binpath: str | None = None
    """Folder of sbatch, sacct, squeue, scancel and srun (default: /usr/bin)"""

    def merged(self, override: "SlurmSection") -> "SlurmSection":
        """These options, with those set in ``override`` replacing them."""
        given = {key: value for key, value in attrs.asdict(override).items() if value is not None}
        return attrs.evolve(self, **given)

    def validate(self, where: str) -> list[str]:
        """Values that SLURM or xpm-train do not accept, one message each."""
        errors = []
        if self.time is not None and not _slurm_value(self.time, _TIME):
            errors.append(
                f"{where}.time: {self.time!r} is not a SLURM time limit (minutes, or "
                "'H:M:S', 'D-H:M:S', ...)"
            )
        if self.mem is not None and not _slurm_value(self.mem, _MEMORY):
            errors.append(
                f"{where}.mem: {self.mem!r} is not a SLURM memory size (megabytes, or a "
                "number with K, M, G or T)"
            )
        for key in ("nodes", "ntasks_per_node", "cpus_per_task", "gpus_per_node"):
            value = getattr(self, key)
            if value is not None and value < (0 if key == "gpus_per_node" else 1):
                errors.append(f"{where}.{key}: {value} is not a valid count")
        if (self.nodes or 1) > 1 and self.ntasks_per_node is None:
            errors.append(
                f"{where}.ntasks_per_node: needed with nodes: {self.nodes} (the processes of "
                "the job on each node: 1, or one per GPU with gpus_per_node)"
            )
        gpus, tasks = self.gpus_per_node or 0, self.ntasks_per_node or 1
        if gpus and gpus % tasks:
            errors.append(
                f"{where}.ntasks_per_node: {tasks} processes cannot share the {gpus} GPUs of a "
                "node evenly; use one process per GPU or one per node"
            )
        if self.interval is not None and self.interval <= 0:
            errors.append(f"{where}.interval: {self.interval} must be > 0 seconds")
        return errors

    def processes(self) -> int:
        """The processes of a job: one per task."""
        return (self.nodes or 1) * (self.ntasks_per_node or 1)

    def devices(self) -> int:
        """The JAX devices of a job: its GPUs, else one CPU device per process."""
        if self.gpus_per_node:
            return (self.nodes or 1) * self.gpus_per_node
        return self.processes()

    def options(self) -> dict[str, Any]:
        """The keyword arguments of experimaestro's ``SlurmOptions``."""
        names = ("partition", "time", "nodes", "ntasks_per_node", "cpus_per_task", "mem")
        names += ("gpus_per_node",)
        names += ("qos", "account", "constraint")
        options = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        for name in ("time", "cpus_per_task", "mem"):  # SlurmOptions types them as strings
            if name in options:
                options[name] = str(options[name])
        return options


@configuration()
class LauncherBlock:
    """A launcher given as a mapping: ``{slurm: {<options>}}``."""

    slurm: SlurmSection = attrs.field(factory=SlurmSection)


#: What a stage's launcher can be: ``local``, a requirement string, a ``{slurm: ...}`` block;
#: None (the stages' default): the ``default`` launcher.
LauncherChoice = str | LauncherBlock | None


@configuration()
class LauncherSection:
    """Where each stage's jobs run (see the module's documentation)."""

    default: str | LauncherBlock = "local"
    evaluation: LauncherChoice = None
    """Every evaluation job"""
    report: LauncherChoice = None
    max_retries: int | None = None
    """How many times experimaestro resubmits a training job that stopped at its time limit
    (experimaestro's default: 3)"""
    local_jobs: int | None = None
    """At most this many jobs at once on this machine (all local jobs of all experiments that
    set it, through an experimaestro counter token); default: no limit"""

    def choice(self, key: str, own: LauncherChoice) -> tuple[str, str | LauncherBlock]:
        """``(where, launcher)`` of a job whose own launcher, set at YAML key ``key``, is
        ``own``: its own, merged over the default's SLURM options, or the default."""
        if own is None:
            return "launcher.default", self.default
        if isinstance(own, LauncherBlock) and isinstance(self.default, LauncherBlock):
            return key, LauncherBlock(slurm=self.default.slurm.merged(own.slurm))
        return key, own
