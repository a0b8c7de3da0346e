"""Process-level settings, compile once per run, the persistent compilation cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest
from experimaestro import experiment

from xpm_train.training import runtime
from xpm_train.training.loop import train

from .conftest import reset_scheduler
from .support.compiles import watch_compiles
from .support.tiny import run_paths, tiny_settings, tiny_stage
from .test_pretrain_task import tiny_pretrain

SWITCHES = (
    "XPM_TRAIN_RUNTIME",
    "XPM_TRAIN_JAX_CACHE",
    "JAX_COMPILATION_CACHE_DIR",
    "XPM_TRAIN_MALLOC",
    runtime.EXPORTED_MARK,
    runtime.QUEUE_AHEAD_VAR,
    *runtime.MALLOC_ENVIRONMENT,
)


@pytest.fixture
def clean_env(monkeypatch):
    """None of the switches set."""
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def restore_cache():
    """Give the process back its compilation-cache settings after the test."""
    keys = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    before = {key: getattr(jax.config, key) for key in keys}
    yield
    from jax.experimental.compilation_cache import compilation_cache

    for key, value in before.items():
        jax.config.update(key, value)
    compilation_cache.reset_cache()


def test_the_cache_goes_to_the_workdir(clean_env, restore_cache, tmp_path):
    settings = runtime.configure(tmp_path)
    assert settings.cache_dir == tmp_path.absolute() / ".jax_cache"
    assert jax.config.jax_compilation_cache_dir == str(settings.cache_dir)
    assert "fast ops" in settings.applied


def test_the_cache_can_be_turned_off_or_moved(clean_env, restore_cache, tmp_path):
    clean_env.setenv("XPM_TRAIN_JAX_CACHE", "0")
    assert runtime.configure(tmp_path).cache_dir is None
    clean_env.setenv("XPM_TRAIN_JAX_CACHE", str(tmp_path / "elsewhere"))
    assert runtime.configure(tmp_path).cache_dir == tmp_path / "elsewhere"
    clean_env.setenv("XPM_TRAIN_RUNTIME", "0")
    assert runtime.configure(tmp_path).cache_dir is None


def test_a_cache_folder_set_by_the_user_wins(clean_env, restore_cache, tmp_path):
    clean_env.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    settings = runtime.configure(tmp_path)
    assert settings.cache_dir == tmp_path / "mine"
    assert any("JAX_COMPILATION_CACHE_DIR" in s for s in settings.skipped)


def test_malloc_settings_reach_job_processes(clean_env):
    """Submitting a task exports them (glibc reads them at start-up); in-process, mallopt."""
    exported = runtime.export_job_environment()
    assert exported["MALLOC_ARENA_MAX"] == "1"
    assert exported["MALLOC_MMAP_THRESHOLD_"] == str(1 << 30)
    settings = runtime.RuntimeSettings()
    runtime.configure_malloc(settings)
    assert settings.applied == ["malloc: one arena, thresholds 1 GiB (from the job environment)"]

    for name in exported:
        clean_env.delenv(name)
    settings = runtime.RuntimeSettings()
    runtime.configure_malloc(settings)
    assert settings.applied == ["malloc: one arena, thresholds 1 GiB (mallopt)"]


ARENAS_AFTER_THREADS_ALLOCATE = textwrap.dedent(
    """
    import ctypes, tempfile, threading
    from xpm_train.training import runtime
    runtime.configure_malloc(runtime.RuntimeSettings())
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
    threads = [threading.Thread(target=libc.malloc, args=(1 << 20,)) for _ in range(4)]
    for thread in threads:
        thread.start()
        thread.join()
    path = tempfile.mktemp()
    stream = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(path).read().count("<heap nr="))
    """
)


def _arenas(**env: str) -> int:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MALLOC_") and name not in SWITCHES
    }
    command = [sys.executable, "-c", ARENAS_AFTER_THREADS_ALLOCATE]
    result = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_mallopt_fallback_keeps_threads_on_one_arena():
    """Without the job environment, threads that allocate after configure_malloc share glibc's
    main arena (malloc_info lists one heap) instead of each getting their own."""
    assert _arenas() == 1
    assert _arenas(XPM_TRAIN_MALLOC="0") > 1


def test_malloc_settings_of_the_user_win(clean_env):
    clean_env.setenv("MALLOC_ARENA_MAX", "4")
    assert runtime.export_job_environment() == {}
    settings = runtime.RuntimeSettings()
    runtime.configure_malloc(settings)
    assert settings.skipped == ["malloc settings (MALLOC_ARENA_MAX set by the user)"]
    clean_env.delenv("MALLOC_ARENA_MAX")
    clean_env.setenv("XPM_TRAIN_MALLOC", "0")
    assert runtime.export_job_environment() == {}
    runtime.configure_malloc(settings := runtime.RuntimeSettings())
    assert settings.skipped == ["malloc settings (XPM_TRAIN_MALLOC=0)"]


def test_cpu_queues_steps_by_their_duration_unless_told(clean_env):
    assert jax.default_backend() == "cpu" and runtime.queue_ahead() is None
    assert "one step at a time if a step takes 0.25s+" in runtime.configure(None).describe()
    clean_env.setenv(runtime.QUEUE_AHEAD_VAR, "1")
    assert runtime.queue_ahead() is True
    assert "one step at a time" not in runtime.configure(None).describe()
    clean_env.setenv(runtime.QUEUE_AHEAD_VAR, "0")
    assert runtime.queue_ahead() is False
    assert runtime.configure(None).applied[-1] == "one step at a time"


def test_workdir_of_a_job_folder(tmp_path):
    job = tmp_path / "ws" / "jobs" / "xpm_train.tasks.pretrain.pretrain" / "abc123"
    assert runtime.workdir_of(job) == tmp_path / "ws"
    assert runtime.workdir_of(tmp_path / "somewhere") is None


def test_training_compiles_its_step_once(tmp_path):
    """Evaluation and checkpoints included; no program is compiled twice, and twice the steps
    compile nothing more."""
    counts = []
    for steps in (8, 16):
        settings = tiny_settings(total_steps=steps, eval_interval=4, checkpoint_interval=4)
        with watch_compiles() as stats:
            train(tiny_stage(), settings, run_paths(tmp_path / str(steps)))
        assert stats.count("train_step") == 1
        assert stats.count("eval_step") == 1
        assert max(stats.compiles.values()) == 1, stats.compiles
        counts.append(sum(stats.compiles.values()))
    assert counts[1] <= counts[0]


def test_a_repeated_run_loads_its_step_from_the_cache(clean_env, restore_cache, tmp_path):
    runtime.configure_cache(runtime.RuntimeSettings(), tmp_path / "workdir")
    stats = []
    for run in ("first", "again"):
        with watch_compiles() as seen:
            train(tiny_stage(), tiny_settings(total_steps=4), run_paths(tmp_path / run))
        stats.append(seen)
    first, again = stats
    assert first.cache_misses > 0 and again.cache_hits > 0 and again.cache_misses == 0
    assert again.seconds("train_step") < first.seconds("train_step")


def _step_entries(cache: Path) -> set[str]:
    return {path.name for path in cache.glob("jit_train_step*")}


def test_jobs_share_the_cache_of_their_workdir(tmp_path):
    """A job fills <workdir>/.jax_cache; the same job, resubmitted, compiles nothing new."""
    workdir = tmp_path / "ws"
    with experiment(workdir, "cache-test", no_environmental_impact=True):
        checkpoint = tiny_pretrain(steps=4, eval_interval=4, checkpoint_interval=4).submit()
    folder = checkpoint.path.parent
    log = (folder / "pretrain.out").read_text()
    assert f"compilation cache {workdir.absolute() / '.jax_cache'}" in log
    assert "malloc: one arena, thresholds 1 GiB (from the job environment)" in log
    entries = _step_entries(workdir / ".jax_cache")
    assert len(entries) == 1

    (folder / "pretrain.done").unlink()
    (folder / "result.json").unlink()
    shutil.rmtree(folder / "checkpoints")
    reset_scheduler()
    with experiment(workdir, "cache-test", no_environmental_impact=True):
        tiny_pretrain(steps=4, eval_interval=4, checkpoint_interval=4).submit()
    assert (folder / "pretrain.done").exists()
    assert _step_entries(workdir / ".jax_cache") == entries
