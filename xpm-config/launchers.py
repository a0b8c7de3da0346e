"""Example ``launchers.py``: experimaestro requirement strings -> SLURM partitions.

experimaestro loads this file from its configuration folder: ``~/.config/experimaestro/``, or
the folder given by ``run-experiment --xpm-config-dir``. With it, a launcher (a stage's
``launcher`` key, or ``launcher.default``, ``launcher.evaluation``, ``launcher.report``) can be
a requirement instead of a ``{slurm: {...}}`` block:

    experimaestro run-experiment --xpm-config-dir xpm-config --workdir runs \\
        -c 'stages.pretrain.launcher=duration=2h & cuda(mem=40GiB)' yaml/slurm.yaml

For each requirement, experimaestro calls :func:`find_launcher` (once per ``|`` alternative);
the first partition that can host it gives the launcher, with the requested time, cores,
memory and GPUs as SLURM options. The partitions below describe the local test cluster of
``scripts/slurm/start.sh`` (``cpu``: this machine's cores and memory; ``gpu``: a GPU partition
as a real cluster would have one; the local one has no GPU, so SLURM refuses GPU jobs there).
Edit ``PARTITIONS`` to describe your cluster.
"""

import os
from dataclasses import dataclass

from experimaestro.launcherfinder import (
    CPUSpecification,
    CudaSpecification,
    HostRequirement,
    HostSpecification,
)
from experimaestro.launchers import Launcher
from experimaestro.launchers.slurm import SlurmLauncher, SlurmOptions

GiB = 1024**3

#: Seconds between two polls of sacct (experimaestro's default, 60 s, adds up to a minute to
#: every job); ``XPM_TRAIN_SLURM_INTERVAL`` overrides it, e.g. in tests.
INTERVAL = float(os.environ.get("XPM_TRAIN_SLURM_INTERVAL", "10"))

#: This machine, as the local cluster's ``cpu`` partition sees it.
_CORES = os.cpu_count() or 1
_MEMORY = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.9)


@dataclass
class Partition:
    name: str
    host: HostSpecification
    qos: str | None = None


#: Tried in this order: a requirement goes to the first partition that can host it.
PARTITIONS = [
    Partition("cpu", HostSpecification(cpu=CPUSpecification(cores=_CORES, memory=_MEMORY))),
    Partition(
        "gpu",
        HostSpecification(
            cpu=CPUSpecification(cores=16, memory=128 * GiB),
            accelerators=[CudaSpecification(memory=80 * GiB) for _ in range(4)],
            max_duration=48 * 3600,  # seconds
            min_gpu=1,  # only jobs that ask for a GPU
        ),
    ),
]


def find_launcher(requirements: HostRequirement, tags: set[str] = set()) -> Launcher | None:  # noqa: B006
    """The SLURM launcher of the first partition matching ``requirements`` (None if none)."""
    for partition in PARTITIONS:
        match = requirements.match(partition.host)
        if match is None:
            continue
        wanted = match.requirement
        options = SlurmOptions(partition=partition.name, qos=partition.qos)
        if wanted.duration:
            options.time = SlurmOptions.format_time(int(wanted.duration))
        if wanted.cpu.cores:
            options.cpus_per_task = str(wanted.cpu.cores)
        if wanted.cpu.memory:
            options.mem = f"{wanted.cpu.memory // 1024**2}M"
        if wanted.accelerators:
            options.gpus_per_node = len(wanted.accelerators)
        return SlurmLauncher(options=options, interval=INTERVAL)
    return None
