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
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
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

    def describe(self) -> str:
        if self.available:
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


def build() -> Path:
    """The compiled library, built now if it is not in the cache (atomically: concurrent jobs
    each write their own file and rename it into place)."""
    path = library_path()
    if path.exists():
        return path
    compiler = _compile_command()
    if shutil.which(compiler[0]) is None:
        raise RuntimeError(f"no C++ compiler {compiler[0]!r} on the PATH (set CXX to one)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        partial = Path(tmp) / path.name
        command = [*compiler, "-o", str(partial), str(SOURCE)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-1500:]}")
        os.replace(partial, path)
    return path


@functools.cache
def kernel() -> Kernel:
    """Build (or load from the cache) and register the kernel, once per process."""
    if not is_on(ENV_VAR):
        return Kernel(False, f"off: {ENV_VAR}=0")
    import jax

    try:
        path = build()
        library = ctypes.CDLL(str(path))
        for name, symbol in ((FORWARD, "XpmAttentionForward"), (BACKWARD, "XpmAttentionBackward")):
            jax.ffi.register_ffi_target(
                name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
            )
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        warnings.warn(
            f"xpm-train: the native attention kernel is not available, the JAX implementation "
            f"runs instead ({error}). Install a C++ compiler (or set CXX) to build it, or set "
            f"{ENV_VAR}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return Kernel(False, f"unavailable: {str(error).splitlines()[0][:200]}")
    return Kernel(True, str(path))
