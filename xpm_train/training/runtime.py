"""Process-level settings of a job, applied first thing in every job process.

:func:`configure_job` is what a training or evaluation job calls before it uses JAX:

- the persistent compilation cache: compiled programs are kept in ``<workdir>/.jax_cache`` (the
  workdir of the experimaestro job), so a resumed or repeated job, or another job with the same
  model and batch shapes, loads its programs instead of compiling them again. Turn it off with
  ``XPM_TRAIN_JAX_CACHE=0`` or move it with ``XPM_TRAIN_JAX_CACHE=<folder>``; a
  ``JAX_COMPILATION_CACHE_DIR`` set by the user wins.
- the model's custom-VJP ops (:mod:`xpm_train.models.fast_ops`) are used unless
  ``XPM_TRAIN_FAST_OPS=0``; read when the training step is traced. Their causal attention
  runs a C++ kernel (:mod:`xpm_train.models.native`), built here with the machine's compiler
  on first use and cached; ``XPM_TRAIN_NATIVE_ATTENTION=0`` keeps the JAX code.
- glibc's malloc keeps freed memory: XLA:CPU allocates each step's temporary buffer (43 MB for
  the ``mini`` benchmark model) with ``malloc`` from its own threads; glibc serves a block that
  large with a fresh ``mmap`` (or a fresh per-thread heap) and unmaps it when it is freed, so
  every step page-faults its whole working set again (12 000 faults a step on ``mini``, a quarter
  of the step time). glibc reads its settings when a process starts, so
  :func:`export_job_environment` (called when an xpm-train task is submitted) puts
  :data:`MALLOC_ENVIRONMENT` in the environment that the job processes inherit: one malloc arena,
  mmap and trim thresholds of 1 GiB. In a process started without them,
  :func:`configure_malloc` sets the same three with ``mallopt``: the arena limit then holds for
  the threads that allocate afterwards, so it must run before JAX starts its thread pools
  (``baby`` benchmark step: 1 040 ms with the thresholds alone, 895 ms with one arena too).
  Turn both off with ``XPM_TRAIN_MALLOC=0``; any ``MALLOC_*`` variable set by
  the user wins.

- on CPU the training loop waits for each step before it queues the next when steps are long
  (:func:`queue_ahead`): with a step queued behind the running one, XLA:CPU runs the steps
  slower (``baby`` benchmark step 4-8 % slower, same busy cores), while on short steps queueing
  hides the loop's own work (``mini``: 12 % faster queued). On accelerators the loop keeps one
  step queued, so that the device never waits for the host. ``XPM_TRAIN_QUEUE_AHEAD=1`` or
  ``=0`` chooses.

``XPM_TRAIN_RUNTIME=0`` turns the cache and the malloc settings off (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from xpm_train.switches import is_on, switch

CACHE_FOLDER = ".jax_cache"
#: 1 GiB, for both thresholds (``mallopt`` takes an int).
MALLOC_THRESHOLD = 1 << 30
MALLOC_ENVIRONMENT = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": str(MALLOC_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(MALLOC_THRESHOLD),
}
#: The glibc ``mallopt`` parameter of each variable of :data:`MALLOC_ENVIRONMENT`.
MALLOPT_PARAMETERS = {
    "MALLOC_ARENA_MAX": -8,
    "MALLOC_MMAP_THRESHOLD_": -3,
    "MALLOC_TRIM_THRESHOLD_": -1,
}
#: Set in a job process started with :data:`MALLOC_ENVIRONMENT` by xpm-train.
EXPORTED_MARK = "XPM_TRAIN_MALLOC_EXPORTED"
QUEUE_AHEAD_VAR = "XPM_TRAIN_QUEUE_AHEAD"
#: On CPU, steps at least this long run one at a time: the host's own work per step (a few ms,
#: which queueing overlaps with the step) is then under 1 % of it.
WAIT_FROM_SECONDS = 0.25


@dataclass
class RuntimeSettings:
    """What :func:`configure` applied (and why not, for what it skipped)."""

    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cache_dir: Path | None = None

    def describe(self) -> str:
        text = "runtime: " + ("; ".join(self.applied) or "defaults")
        return text + (f" (skipped: {'; '.join(self.skipped)})" if self.skipped else "")


def configure_cache(settings: RuntimeSettings, workdir: Path | None) -> None:
    """Keep compiled programs in ``<workdir>/.jax_cache`` (or ``XPM_TRAIN_JAX_CACHE``)."""
    import jax

    choice = switch("XPM_TRAIN_JAX_CACHE")
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


def _user_malloc_variables() -> list[str]:
    if os.environ.get(EXPORTED_MARK):
        return []
    return sorted(name for name in os.environ if name.startswith("MALLOC_"))


def export_job_environment() -> dict[str, str]:
    """Put :data:`MALLOC_ENVIRONMENT` in ``os.environ``, for the job processes started from now
    on (experimaestro's local launcher and ``sbatch`` pass the environment on); returns what
    was set. Nothing when ``XPM_TRAIN_MALLOC=0``, ``XPM_TRAIN_RUNTIME=0`` or any ``MALLOC_*``
    variable is set by the user."""
    off = switch("XPM_TRAIN_MALLOC") is None or switch("XPM_TRAIN_RUNTIME") is None
    if off or _user_malloc_variables() or sys.platform != "linux":
        return {}
    exported = {**MALLOC_ENVIRONMENT, EXPORTED_MARK: "1"}
    os.environ.update(exported)
    return exported


def configure_malloc(settings: RuntimeSettings) -> None:
    """Keep freed memory in glibc's heap (see the module docstring)."""
    if switch("XPM_TRAIN_MALLOC") is None:
        settings.skipped.append("malloc settings (XPM_TRAIN_MALLOC=0)")
        return
    chosen = _user_malloc_variables()
    if chosen:
        settings.skipped.append(f"malloc settings ({', '.join(chosen)} set by the user)")
        return
    if os.environ.get(EXPORTED_MARK):
        settings.applied.append("malloc: one arena, thresholds 1 GiB (from the job environment)")
        return
    libc_name = ctypes.util.find_library("c") if sys.platform == "linux" else None
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        settings.skipped.append("malloc settings (not glibc)")
        return
    for name, value in MALLOC_ENVIRONMENT.items():
        if libc.mallopt(MALLOPT_PARAMETERS[name], int(value)) != 1:
            settings.skipped.append(f"malloc settings (mallopt of {name} refused)")
            return
    settings.applied.append("malloc: one arena, thresholds 1 GiB (mallopt)")


def workdir_of(job_folder: Path) -> Path | None:
    """The experimaestro workdir of a job folder ``<workdir>/jobs/<task id>/<hash>``."""
    job_folder = Path(job_folder).absolute()
    if len(job_folder.parents) >= 3 and job_folder.parents[1].name == "jobs":
        return job_folder.parents[2]
    return None


def configure(workdir: Path | None = None) -> RuntimeSettings:
    """Apply the process-level settings (see the module docstring); call before using JAX."""
    from xpm_train.models import fast_ops, native

    settings = RuntimeSettings()
    # absl (orbax's logger) writes ~200 INFO lines per job into its .err: keep its warnings.
    logging.getLogger("absl").setLevel(logging.WARNING)
    if switch("XPM_TRAIN_RUNTIME") is None:
        settings.skipped.append("compilation cache and malloc settings (XPM_TRAIN_RUNTIME=0)")
    else:
        configure_cache(settings, workdir)
        configure_malloc(settings)

    if fast_ops.enabled():
        settings.applied.append("fast ops")
        kernel = native.kernel()
        (settings.applied if kernel.available else settings.skipped).append(kernel.describe())
    else:
        settings.skipped.append(f"fast ops ({fast_ops.ENV_VAR}=0 or not on CPU)")
    queue = queue_ahead()
    if queue is None:
        settings.applied.append(f"one step at a time if a step takes {WAIT_FROM_SECONDS:g}s+")
    elif not queue:
        settings.applied.append("one step at a time")
    return settings


def queue_ahead() -> bool | None:
    """Whether the training loop queues the next step before the running one has finished:
    ``XPM_TRAIN_QUEUE_AHEAD`` when set, else yes on accelerators; on CPU None: the loop times
    its first step and waits for each step when one takes :data:`WAIT_FROM_SECONDS` or more."""
    if QUEUE_AHEAD_VAR in os.environ:
        return is_on(QUEUE_AHEAD_VAR)
    import jax

    return True if jax.default_backend() != "cpu" else None


def configure_job(job_folder: Path) -> RuntimeSettings:
    """:func:`configure` for the job in ``job_folder``: the compilation cache goes to its
    workdir (or, outside an experimaestro workdir, to the job folder)."""
    return configure(workdir_of(job_folder) or Path(job_folder))
