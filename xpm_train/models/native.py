"""The C++ causal-attention kernel (``attention.cc``): compiled on first use, cached, and
registered as XLA FFI custom calls for XLA:CPU.

XLA:CPU runs attention's small per-head products at a third of the machine's matmul speed
and computes the masked half of the causal scores; the kernel computes only the causal part
with a register-blocked loop (``baby`` attention forward and backward 1.7x faster).

The library is built with the machine's C++ compiler (``$CXX``, else ``c++``) for the CPU it
runs on, into ``$XPM_TRAIN_KERNEL_CACHE`` (default ``~/.cache/xpm-train/kernels``), named by
a hash of the source, the compiler command, jaxlib's version and the CPU's flags: a cluster
with several CPU kinds gets one build per kind. Without a compiler, or with
``XPM_TRAIN_NATIVE_ATTENTION=0``, the model uses the JAX implementation of ``fast_ops``.

Loading a library runs its code, so a cached one is loaded only if this user owns it, nobody
else can write it, and nobody else can replace it (its folder is this user's or root's and not
writable by group or others, or sticky). Otherwise the library is built again in a private
temporary folder (mode 700, deleted once loaded), with a warning saying why: fix the cache's
owner or mode (``chmod go-w``) to reuse it. The cache folder is created with mode 700 and the
libraries built there are not writable by group or others, whatever the umask.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from xpm_train.switches import is_on

ENV_VAR = "XPM_TRAIN_NATIVE_ATTENTION"
CACHE_VAR = "XPM_TRAIN_KERNEL_CACHE"
SOURCE = Path(__file__).with_name("attention.cc")
FORWARD, BACKWARD = "xpm_train_attention_forward", "xpm_train_attention_backward"
#: Floats per vector of the kernel: head sizes must be a multiple of it, and the softmax
#: weights it keeps for the backward pass are padded to one.
VECTOR_FLOATS = 16


@dataclass(frozen=True)
class Kernel:
    """Whether the kernel is registered, and where it was loaded from or why it is not."""

    available: bool
    detail: str
    #: Why the cached library was not loaded (the kernel was built privately), or "".
    note: str = ""

    def describe(self) -> str:
        if self.available:
            if self.note:
                return f"native attention kernel (built privately: {self.note})"
            return "native attention kernel"
        return f"native attention kernel ({self.detail})"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compile_command() -> list[str]:
    """The compiler and its flags, without the output and the source."""
    import jax

    compiler = os.environ.get("CXX", "c++")
    flags = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w"]
    return [compiler, *flags, f"-I{jax.ffi.include_dir()}"]


def cache_dir() -> Path:
    if os.environ.get(CACHE_VAR):
        return Path(os.environ[CACHE_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xpm-train" / "kernels"


def library_path() -> Path:
    import jaxlib

    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join([*_compile_command(), jaxlib.__version__, _cpu_flags()]).encode())
    return cache_dir() / f"attention-{key.hexdigest()[:16]}.so"


def _writable_by_others(mode: int) -> bool:
    return bool(mode & (stat.S_IWGRP | stat.S_IWOTH))


def untrusted_reason(path: Path) -> str | None:
    """Why the library at ``path`` (or one to be written there) must not be loaded: someone
    other than this user owns it or could write or replace it. None when it may be."""
    uid = os.getuid()
    try:
        folder = os.stat(path.parent)
    except FileNotFoundError:
        return None  # created with mode 700 by build()
    if folder.st_uid not in (uid, 0):
        return f"its folder {path.parent} is owned by uid {folder.st_uid}, not by uid {uid}"
    if _writable_by_others(folder.st_mode) and not folder.st_mode & stat.S_ISVTX:
        return (
            f"its folder {path.parent} is writable by group or others "
            f"(mode {stat.S_IMODE(folder.st_mode):o})"
        )
    try:
        library = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(library.st_mode):
        return f"{path} is not a regular file"
    if library.st_uid != uid:
        return f"{path} is owned by uid {library.st_uid}, not by uid {uid}"
    if _writable_by_others(library.st_mode):
        return f"{path} is writable by group or others (mode {stat.S_IMODE(library.st_mode):o})"
    return None


def build(folder: Path | None = None) -> Path:
    """The compiled library, built now if it is not in the cache (atomically: concurrent jobs
    each write their own file and rename it into place), or in ``folder`` if given. The caller
    checks the cached one with :func:`untrusted_reason` before loading it."""
    path = library_path() if folder is None else folder / library_path().name
    if path.exists():
        return path
    compiler = _compile_command()
    if shutil.which(compiler[0]) is None:
        raise RuntimeError(f"no C++ compiler {compiler[0]!r} on the PATH (set CXX to one)")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        partial = Path(tmp) / path.name
        command = [*compiler, "-o", str(partial), str(SOURCE)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-1500:]}")
        partial.chmod(0o755)  # not writable by others, whatever the umask
        os.replace(partial, path)
    return path


def _load(path: Path, jax) -> None:
    library = ctypes.CDLL(str(path))
    for name, symbol in ((FORWARD, "XpmAttentionForward"), (BACKWARD, "XpmAttentionBackward")):
        jax.ffi.register_ffi_target(
            name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
        )


@functools.cache
def kernel() -> Kernel:
    """Build (or load from the cache) and register the kernel, once per process."""
    if not is_on(ENV_VAR):
        return Kernel(False, f"off: {ENV_VAR}=0")
    import jax

    note = ""
    try:
        path = library_path()
        reason = untrusted_reason(path)
        if reason is None:
            path = build()
            # It may have been written since the check (by another process): check it again.
            reason = untrusted_reason(path)
        if reason is None:
            _load(path, jax)
        else:
            note = f"the kernel cache is not used, {reason}"
            warnings.warn(
                f"xpm-train: {note}. The native attention kernel is built again in a private "
                f"folder for this process; make the cache ({path.parent}) and its libraries "
                f"yours and not writable by others (chown, chmod go-w) to reuse it.",
                RuntimeWarning,
                stacklevel=2,
            )
            private = Path(tempfile.mkdtemp(prefix="xpm-train-kernel-"))  # mode 700
            try:
                path = build(private)
                _load(path, jax)  # the mapped library outlives its file
            finally:
                shutil.rmtree(private, ignore_errors=True)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        warnings.warn(
            f"xpm-train: the native attention kernel is not available, the JAX implementation "
            f"runs instead ({error}). Install a C++ compiler (or set CXX) to build it, or set "
            f"{ENV_VAR}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return Kernel(False, f"unavailable: {str(error).splitlines()[0][:200]}")
    return Kernel(True, str(path), note)
