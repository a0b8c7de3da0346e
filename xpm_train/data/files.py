"""Datasets read from local files: their paths resolved and their content fingerprinted at
planning, so that a job never reads another file than the one it was planned with, and an
edited file gives new jobs instead of silently reusing those made from the old content.

A relative path is relative to the directory where the experiment is run (the working
directory of ``experimaestro run-experiment``), and becomes absolute in the job's parameters:
jobs run in their own folders. The fingerprint is a sha256 of the files' content when they
total at most :data:`HASHED_BYTES`, else of their names, sizes and modification times.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from experimaestro import Config, Param, field

#: Files up to this total size are fingerprinted by their content (read once at planning).
HASHED_BYTES = 64 * 2**20


def files_fingerprint(files: list[Path]) -> str:
    """A sha256 of the files' content (or, above :data:`HASHED_BYTES`, of their names, sizes
    and modification times)."""
    digest = hashlib.sha256()
    by_content = sum(path.stat().st_size for path in files) <= HASHED_BYTES
    digest.update(b"content" if by_content else b"stat")
    for path in files:
        digest.update(str(path).encode() + b"\0")
        if by_content:
            with path.open("rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
        else:
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class LocalFiles(Config):
    """Mixin of the datasets read from ``path``: :meth:`resolve_files` at planning."""

    path: Param[str]
    """A file (relative paths: to the directory where the experiment is run)"""
    content: Param[str | None] = field(default=None, ignore_default=True)
    """Set at planning: the fingerprint of the files read (an edited file gives new jobs)"""

    def data_files(self) -> list[Path]:
        """The files read (those ``path`` names)."""
        return [Path(self.path).expanduser()]

    def resolve_files(self) -> None:
        """Make ``path`` absolute and fingerprint the files (raises for missing files)."""
        self.path = str(Path(self.path).expanduser().absolute())
        files = [path for path in self.data_files() if path.is_file()]
        try:
            if files:
                self.content = files_fingerprint(files)
        except OSError as error:
            raise ValueError(
                f"{error.filename or self.path} cannot be read ({error.strerror}); check the "
                "path and the file's permissions"
            ) from None
