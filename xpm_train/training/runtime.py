"""Process-level settings that make training fast, applied first thing in every job process.

:func:`configure` is what a training or evaluation job calls before it uses JAX. Each setting
can be turned off with an environment variable, and a value the user already set wins:

``XPM_TRAIN_RUNTIME=0``
    apply none of the settings below.
``XPM_TRAIN_MALLOC=0``
    leave glibc's allocator alone. Otherwise ``mallopt`` raises the mmap threshold to its
    maximum (32 MiB) and the trim threshold to 1 GiB, so that the buffers XLA frees and
    allocates again at every step are reused from the heap instead of being unmapped and
    page-faulted in again. Skipped if ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``
    or a ``glibc.malloc`` tunable is set.
``XPM_TRAIN_XLA_FLAGS=0``
    add nothing to ``XLA_FLAGS``. Otherwise :data:`XLA_CPU_FLAGS` are appended, each unless
    ``XLA_FLAGS`` already names it. They only take effect if JAX's backend has not started.
``XPM_TRAIN_JAX_CACHE=0`` (or a folder)
    no persistent compilation cache (or this folder). By default compiled programs are kept
    in ``<workdir>/.jax_cache``, so a resumed or repeated job does not compile again. A
    ``JAX_COMPILATION_CACHE_DIR`` set by the user wins.
``XPM_TRAIN_FAST_OPS=0``
    trace the model without its custom-VJP ops (:mod:`xpm_train.models.fast_ops`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Flags added to XLA_FLAGS (name -> value) on the CPU backend.
XLA_CPU_FLAGS: dict[str, str] = {
    # YNNPACK fusions of dots and their neighbours are slower than XLA's own dot emitter and
    # loop fusions on the models of this project.
    "xla_cpu_experimental_ynn_fusion_type": "",
}
#: glibc's limit for M_MMAP_THRESHOLD on 64-bit systems (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
CACHE_FOLDER = ".jax_cache"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_OFF = ("0", "false", "no", "off")


@dataclass
class RuntimeSettings:
    """What :func:`configure` applied (and why not, for what it skipped)."""

    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cache_dir: Path | None = None

    def describe(self) -> str:
        text = "runtime: " + ("; ".join(self.applied) or "defaults")
        return text + (f" (skipped: {'; '.join(self.skipped)})" if self.skipped else "")


def _switch(name: str) -> str | None:
    """The value of an ``XPM_TRAIN_*`` switch; None when it is turned off."""
    value = os.environ.get(name, "1").strip()
    return None if value.lower() in _OFF else value


def configure_malloc(settings: RuntimeSettings) -> None:
    """Raise glibc's mmap and trim thresholds in this process (see the module docstring)."""
    if _switch("XPM_TRAIN_MALLOC") is None:
        settings.skipped.append("malloc (XPM_TRAIN_MALLOC=0)")
        return
    user = [k for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_") if k in os.environ]
    if user or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        settings.skipped.append(f"malloc (set by the user: {', '.join(user) or 'GLIBC_TUNABLES'})")
        return
    if not sys.platform.startswith("linux"):
        settings.skipped.append("malloc (not glibc)")
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        settings.skipped.append("malloc (no mallopt)")
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        settings.applied.append(
            f"malloc mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim {TRIM_THRESHOLD >> 20} MiB"
        )
    else:
        settings.skipped.append("malloc (mallopt refused)")


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started else bool(getattr(xla_bridge, "_backends", None))


def configure_xla_flags(settings: RuntimeSettings) -> None:
    """Append :data:`XLA_CPU_FLAGS` to ``XLA_FLAGS`` (the user's flags win)."""
    if _switch("XPM_TRAIN_XLA_FLAGS") is None:
        settings.skipped.append("XLA flags (XPM_TRAIN_XLA_FLAGS=0)")
        return
    current = os.environ.get("XLA_FLAGS", "")
    added = [f"--{n}={v}" for n, v in XLA_CPU_FLAGS.items() if f"--{n}" not in current]
    if not added:
        return
    if _backend_started():
        settings.skipped.append("XLA flags (JAX's backend had already started)")
        return
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    settings.applied.append("XLA_FLAGS " + " ".join(added))


def configure_cache(settings: RuntimeSettings, workdir: Path | None) -> None:
    """Keep compiled programs in ``<workdir>/.jax_cache`` (or ``XPM_TRAIN_JAX_CACHE``)."""
    import jax

    choice = _switch("XPM_TRAIN_JAX_CACHE")
    if choice is None:
        settings.skipped.append("compilation cache (XPM_TRAIN_JAX_CACHE=0)")
        return
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        settings.cache_dir = Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
        settings.skipped.append("compilation cache folder (JAX_COMPILATION_CACHE_DIR is set)")
        return
    if choice != "1":
        folder = Path(choice)
    elif workdir is not None:
        folder = Path(workdir) / CACHE_FOLDER
    else:
        settings.skipped.append("compilation cache (no workdir)")
        return
    folder = folder.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    if jax.config.jax_compilation_cache_dir != str(folder):
        from jax.experimental.compilation_cache import compilation_cache

        jax.config.update("jax_compilation_cache_dir", str(folder))
        compilation_cache.reset_cache()  # a cache opened earlier in this process is dropped
    # Cache every program: the default skips those compiled in under a second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    settings.cache_dir = folder
    settings.applied.append(f"compilation cache {folder}")


def workdir_of(job_folder: Path) -> Path | None:
    """The experimaestro workdir of a job folder ``<workdir>/jobs/<task id>/<hash>``."""
    job_folder = Path(job_folder).absolute()
    if len(job_folder.parents) >= 3 and job_folder.parents[1].name == "jobs":
        return job_folder.parents[2]
    return None


def configure(workdir: Path | None = None) -> RuntimeSettings:
    """Apply the process-level settings (see the module docstring); call before using JAX."""
    settings = RuntimeSettings()
    if _switch("XPM_TRAIN_RUNTIME") is None:
        settings.skipped.append("all (XPM_TRAIN_RUNTIME=0)")
        return settings
    configure_malloc(settings)
    configure_xla_flags(settings)
    configure_cache(settings, workdir)
    return settings


def configure_job(job_folder: Path) -> RuntimeSettings:
    """:func:`configure` for the job in ``job_folder``: the compilation cache goes to its
    workdir (or, outside an experimaestro workdir, to the job folder)."""
    return configure(workdir_of(job_folder) or Path(job_folder))
