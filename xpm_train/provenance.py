"""The code that made a job, so that a cached job is never silently made by other code.

A job's identity covers its parameters, plus :data:`NUMERICS_VERSION`: the project bumps it when
a change moves results, which gives every job a new identity (they all run again). Every job
also writes ``code.json`` in its folder when it starts: the xpm-train version, a fingerprint of
the installed xpm_train sources and the git commit (and dirty state) of the experiment's
repository; a resumed job adds the code of each later attempt. Planning compares the jobs it
reuses with the current code (:func:`jobs_made_by_other_code`) and lists those that differ.
With ``code_changes: rerun`` in the experiment file, the sources' fingerprint joins every job's
identity (:data:`CODE_PARAMETER`): any change to the sources makes new jobs (docs/yaml.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import xpm_train

#: Part of every job's identity: bump it when a change moves results (losses, metrics).
NUMERICS_VERSION = "2"
#: The file of a job folder recording the code of each attempt.
CODE_FILE = "code.json"
#: The environment variable through which the experiment gives its jobs its git state.
GIT_VARIABLE = "XPM_TRAIN_EXPERIMENT_GIT"
#: What ``code_changes`` may be in an experiment file.
CODE_CHANGES = ("reuse", "rerun")
#: The parameter of every job task that ``code_changes: rerun`` sets to the sources' fingerprint.
CODE_PARAMETER = "code_fingerprint"


@functools.cache
def sources_fingerprint() -> str:
    """A sha256 of the installed xpm_train sources (``.py`` and ``.cc``, by relative path)."""
    root = Path(xpm_train.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".cc") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def experiment_git(folder: Path | None = None) -> dict[str, Any] | None:
    """``{commit, dirty}`` of the git repository of ``folder`` (the working directory)."""
    from experimaestro.utils.git import get_git_info

    info = get_git_info(folder or Path.cwd())
    return None if info is None else {"commit": info["commit"], "dirty": bool(info["dirty"])}


def export_experiment_git() -> None:
    """Give the jobs started from now on the experiment's git state (in their environment)."""
    if GIT_VARIABLE not in os.environ:
        os.environ[GIT_VARIABLE] = json.dumps(experiment_git())


def current_code() -> dict[str, Any]:
    """The code of this process: version, numerics version, sources and experiment git."""
    git = os.environ.get(GIT_VARIABLE)
    return {
        "xpm_train": xpm_train.__version__,
        "numerics": NUMERICS_VERSION,
        "sources": sources_fingerprint(),
        "experiment_git": json.loads(git) if git else None,
    }


def record_code(folder: Path) -> None:
    """Write this attempt's code into ``folder/code.json`` (the first attempt's is kept)."""
    path = Path(folder) / CODE_FILE
    record = read_code(folder) or {"attempts": []}
    now = current_code()
    if not record["attempts"] or record["attempts"][-1] != now:
        record["attempts"].append(now)
    partial = path.with_name(f".{CODE_FILE}.partial")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)


def read_code(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((Path(folder) / CODE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record.get("attempts"), list) else None


def differences(made: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between the code that made a job and the current code: xpm-train's
    version and sources (the experiment's commit is recorded, not compared: a commit of the
    experiment files alone does not change how a job computes)."""
    found = []
    if made.get("xpm_train") != now["xpm_train"]:
        found.append(f"xpm-train {made.get('xpm_train')} -> {now['xpm_train']}")
    if made.get("sources") != now["sources"]:
        found.append(f"sources {made.get('sources')} -> {now['sources']}")
    return found


def jobs_made_by_other_code(folders: list[Path]) -> list[tuple[Path, list[str]]]:
    """The job folders (done or started) whose last attempt ran other code than this one."""
    now = current_code()
    found = []
    for folder in folders:
        record = read_code(folder)
        if record and record["attempts"]:
            changed = differences(record["attempts"][-1], now)
            if changed:
                found.append((folder, changed))
    return found


def describe_other_code(found: list[tuple[Path, list[str]]]) -> str:
    """The planning paragraph on reused jobs made by other code."""
    lines = [
        f"{len(found)} job(s) were made by other code and are reused (their parameters did "
        "not change):"
    ]
    for folder, changed in found[:10]:
        job = f"{folder.parent.name.split('.')[-1]}/{folder.name[:8]}"
        lines.append(f"  {job}: {', '.join(changed)} ({folder})")
    if len(found) > 10:
        lines.append(f"  ... and {len(found) - 10} more")
    lines.append(
        "  To run them again with the current code, set `code_changes: rerun` in the "
        "experiment file (new jobs whenever the sources change), or delete their folders."
    )
    return "\n".join(lines)
