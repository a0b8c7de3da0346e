"""The experimaestro launcher of each stage, from the ``launcher:`` section, checked before
anything is submitted.

Every problem is reported at planning time (exit status 1, nothing submitted): SLURM options
that SLURM or xpm-train do not accept, a requirement string when experimaestro finds no
``launchers.py`` (experimaestro 2.7.0 would silently run the job locally), a requirement that
no launcher matches, and, in a normal run, a cluster that cannot take the jobs (missing SLURM
programs, no accounting for ``sacct``, options that ``sbatch --test-only`` refuses, xpm_train
not installed where the jobs' Python finds it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experimaestro.connectors.local import LocalConnector
from experimaestro.launcherfinder.registry import (
    LauncherNotFoundError,
    LauncherRegistry,
    find_launcher,
)
from experimaestro.launchers import Launcher
from experimaestro.launchers.direct import DirectLauncher
from experimaestro.launchers.slurm import SlurmLauncher, SlurmOptions
from experimaestro.scheduler.workspace import RunMode

from xpm_train.launchers.config import (
    OTHER_JOBS,
    LauncherBlock,
    LauncherChoice,
    LauncherSection,
    SlurmSection,
)
from xpm_train.launchers.slurm_resume import ResubmittingSlurmLauncher

#: The programs experimaestro's SlurmLauncher runs (from its ``binpath``).
SLURM_PROGRAMS = ("sbatch", "srun", "sacct", "squeue", "scancel")

#: How long a SLURM command may take at planning time.
COMMAND_TIMEOUT_S = 20.0


class LauncherError(ValueError):
    """A launcher that cannot be used; the message names the ``launcher.*`` key."""


@dataclass
class StageLaunchers:
    """The launcher of each training stage (by its name in ``stages:``), of the evaluations
    and of the report."""

    launchers: dict[str, Launcher]
    max_retries: int | None = None
    where: dict[str, str] = field(default_factory=dict)

    def submit_options(self, stage: str) -> dict[str, Any]:
        """The keyword arguments of ``task.submit()`` for a job of ``stage``."""
        return {"launcher": self.launchers[stage], "max_retries": self.max_retries}

    def summary(self) -> str:
        """One line per stage: ``pretrain: slurm (partition=gpu, time=1:00:00)``."""
        return "\n".join(
            f"  {stage}: {describe(launcher)}" for stage, launcher in self.launchers.items()
        )

    def all_local(self) -> bool:
        return all(isinstance(launcher, DirectLauncher) for launcher in self.launchers.values())


def describe(launcher: Launcher) -> str:
    """``local``, ``slurm (partition=gpu, time=1)`` or the launcher's own text."""
    if isinstance(launcher, DirectLauncher):
        return "local"
    if isinstance(launcher, SlurmLauncher):
        options = " ".join(launcher.options.args())
        return f"slurm ({options}; sacct every {launcher.interval:g}s)"
    return str(launcher)


def slurm_launcher(section: SlurmSection) -> SlurmLauncher:
    """experimaestro's SlurmLauncher with the options of a ``slurm`` block."""
    extra: dict[str, Any] = {}
    if section.interval is not None:
        extra["interval"] = section.interval
    if section.binpath is not None:
        extra["binpath"] = section.binpath
    return ResubmittingSlurmLauncher(options=SlurmOptions(**section.options()), **extra)


def requirement_launcher(spec: str, where: str) -> Launcher:
    """The launcher that ``launchers.py`` gives for the requirement ``spec``."""
    registry = LauncherRegistry.instance()
    config_dir = LauncherRegistry.CURRENT_CONFIG_DIR
    if registry.find_launcher_fn is None:
        raise LauncherError(
            f"{where}: {spec!r} is a requirement for the find_launcher() of launchers.py, but "
            f"{config_dir}/launchers.py does not exist or defines no find_launcher "
            "(experimaestro would silently run the job on this machine). Give "
            "--xpm-config-dir with a folder holding a launchers.py (the project's example is "
            "xpm-config/launchers.py), use a {slurm: {...}} block, or write local"
        )
    try:
        launcher = find_launcher(spec)
    except LauncherNotFoundError:
        raise LauncherError(
            f"{where}: no launcher of {config_dir}/launchers.py matches {spec!r}"
        ) from None
    except Exception as error:  # the requirement's syntax (arpeggio), or launchers.py itself
        raise LauncherError(
            f"{where}: {spec!r} is neither 'local' nor a valid requirement such as "
            f"'duration=2h & cuda(mem=40GiB)' ({type(error).__name__}: {error})"
        ) from None
    return launcher


def _run(command: list[str], env: dict[str, str] | None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return -1, f"no answer within {COMMAND_TIMEOUT_S:g}s"
    except OSError as error:
        return -1, str(error)
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return done.returncode, " / ".join(lines[-3:])


def validate_cluster(launcher: SlurmLauncher, where: str) -> list[str]:
    """Why the cluster cannot take jobs with these options (empty when it can)."""
    binpath = Path(launcher.binpath)
    missing = [name for name in SLURM_PROGRAMS if not os.access(binpath / name, os.X_OK)]
    if missing:
        return [
            f"{where}: SLURM programs not found in {binpath}: {', '.join(missing)} (set "
            "binpath in the slurm block, or run on a machine of the cluster)"
        ]
    env = dict(launcher.launcherenv) if launcher.launcherenv is not None else None
    conf = (env if env is not None else os.environ).get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        return [f"{where}: SLURM_CONF={conf} does not exist"]
    code, output = _run([str(binpath / "sacct"), "-n", "-X", "-j", "1", "-o", "JobID"], env)
    if code != 0:
        return [
            f"{where}: sacct does not work ({output}); experimaestro follows SLURM jobs with "
            "sacct, so the cluster needs accounting (slurmdbd)"
        ]
    test = [str(binpath / "sbatch"), "--test-only", *launcher.options.args(), "--wrap", "true"]
    code, output = _run(test, env)
    if code != 0:
        return [f"{where}: SLURM refuses {' '.join(launcher.options.args())}: {output}"]
    return []


def validate_installation() -> list[str]:
    """Jobs run ``sys.executable`` on the nodes and import xpm_train from its environment:
    check that a fresh interpreter finds the same xpm_train as this process, without the
    experiment's python path (experimaestro 2.7.0 drops it when it resubmits a job)."""
    import xpm_train

    probe = "import importlib.util as u; s = u.find_spec('xpm_train'); print(s and s.origin)"
    code, output = _run([sys.executable, "-c", probe], None)
    expected = Path(xpm_train.__file__).resolve()
    if code == 0 and output not in ("", "None") and Path(output).resolve() == expected:
        return []
    found = f"it finds {output}" if code == 0 and output not in ("", "None") else "it is missing"
    return [
        f"launcher: the jobs run {sys.executable}, which must import xpm_train from its "
        f"environment ({expected}), but {found}; install the project in that environment "
        "(pip install -e .)"
    ]


def stage_launchers(
    section: LauncherSection,
    stages: dict[str, LauncherChoice] | None = None,
    ask_cluster: bool = True,
) -> StageLaunchers:
    """The launcher of every stage (``stages``: the ``launcher`` of each training stage's
    section, by name) and of the other jobs; raises :class:`LauncherError` listing every
    problem.

    ``ask_cluster``: also ask the cluster (programs, accounting, ``sbatch --test-only``)
    and check that the jobs' interpreter imports xpm_train.
    """
    errors: list[str] = []
    if section.max_retries is not None and section.max_retries < 0:
        errors.append(f"launcher.max_retries: {section.max_retries} must be >= 0")
    if section.local_jobs is not None and section.local_jobs < 1:
        errors.append(f"launcher.local_jobs: {section.local_jobs} must be >= 1")
    owns = {name: (f"stages.{name}.launcher", own) for name, own in (stages or {}).items()}
    owns |= {name: (f"launcher.{name}", getattr(section, name)) for name in OTHER_JOBS}
    for key, own in [("launcher.default", section.default), *owns.values()]:
        if isinstance(own, LauncherBlock):
            errors += own.slurm.validate(f"{key}.slurm")
    if errors:
        raise LauncherError(_listed(errors))

    launchers: dict[str, Launcher] = {}
    where: dict[str, str] = {}
    by_spec: dict[str, Launcher] = {}
    checked: dict[tuple[Any, ...], list[str]] = {}
    for stage, (own_key, own) in owns.items():
        key, choice = section.choice(own_key, own)
        where[stage] = key
        try:
            if isinstance(choice, LauncherBlock):
                launcher: Launcher = slurm_launcher(choice.slurm)
            elif choice == "local":
                launcher = DirectLauncher(LocalConnector.instance())
            else:
                if choice not in by_spec:
                    by_spec[choice] = requirement_launcher(choice, key)
                launcher = by_spec[choice]
        except LauncherError as error:
            if str(error) not in errors:
                errors.append(str(error))
            continue
        launchers[stage] = launcher
        if ask_cluster and isinstance(launcher, SlurmLauncher):
            identity = (str(launcher.binpath), tuple(launcher.options.args()))
            if identity not in checked:
                checked[identity] = validate_cluster(launcher, key)
                errors += checked[identity]
    if ask_cluster and not errors:
        if any(not isinstance(launcher, DirectLauncher) for launcher in launchers.values()):
            errors += validate_installation()
    if errors:
        raise LauncherError(_listed(errors))
    return StageLaunchers(launchers, section.max_retries, where)


def _listed(errors: list[str]) -> str:
    if len(errors) == 1:
        return errors[0]
    return f"{len(errors)} launcher problems:\n" + "\n".join(f"  - {error}" for error in errors)


def planned_launchers(
    section: LauncherSection, stages: dict[str, LauncherChoice], run_mode: RunMode | None
) -> StageLaunchers:
    """:func:`stage_launchers` for an experiment; a problem stops it before anything is
    submitted (:class:`~xpm_train.planning.hook.PlanningError`, exit status 1). The cluster is
    only asked in a normal run (not in ``dry_run`` nor ``generate_only``)."""
    from xpm_train.planning.hook import PlanningError

    try:
        ask_cluster = run_mode in (None, RunMode.NORMAL)
        launchers = stage_launchers(section, stages, ask_cluster)
    except LauncherError as error:
        message = str(error)
    else:
        if not launchers.all_local():
            print(f"Launchers:\n{launchers.summary()}", flush=True)
        return launchers
    raise PlanningError(f"{message}. Nothing was submitted.")
