"""Process-level settings of a job, applied first thing in every job process.

:func:`configure_job` is what a training or evaluation job calls before it uses JAX:

- the persistent compilation cache: compiled programs are kept in ``<workdir>/.jax_cache`` (the
  workdir of the experimaestro job), so a resumed or repeated job, or another job with the same
  model and batch shapes, loads its programs instead of compiling them again. Turn it off with
  ``XPM_TRAIN_JAX_CACHE=0`` or move it with ``XPM_TRAIN_JAX_CACHE=<folder>``; a
  ``JAX_COMPILATION_CACHE_DIR`` set by the user wins.
- the model's custom-VJP ops (:mod:`xpm_train.models.fast_ops`) are used unless
  ``XPM_TRAIN_FAST_OPS=0``; read when the training step is traced.

``XPM_TRAIN_RUNTIME=0`` turns the cache off too. glibc malloc thresholds and
``--xla_cpu_experimental_ynn_fusion_type=`` were measured too and are not applied: they help the
plain model code but slow the fast ops down (docs/performance.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CACHE_FOLDER = ".jax_cache"
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
    from xpm_train.models import fast_ops

    settings = RuntimeSettings()
    if _switch("XPM_TRAIN_RUNTIME") is None:
        settings.skipped.append("compilation cache (XPM_TRAIN_RUNTIME=0)")
    else:
        configure_cache(settings, workdir)

    if fast_ops.enabled():
        settings.applied.append("fast ops")
    else:
        settings.skipped.append(f"fast ops ({fast_ops.ENV_VAR}=0 or not on CPU)")
    return settings


def configure_job(job_folder: Path) -> RuntimeSettings:
    """:func:`configure` for the job in ``job_folder``: the compilation cache goes to its
    workdir (or, outside an experimaestro workdir, to the job folder)."""
    return configure(workdir_of(job_folder) or Path(job_folder))
