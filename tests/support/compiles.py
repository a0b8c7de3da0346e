"""What JAX compiled in this process: compilations by function, their time, cache hits.

Built on ``jax.monitoring`` events: each program JAX builds records a trace, a lowering and a
backend compilation (which, with the persistent cache, may be a load from the cache)::

    with watch_compiles() as stats:
        train(...)
    stats.count("train_step"), stats.seconds("train_step"), stats.cache_hits

Not in the package: tests/test_runtime.py checks the step compiles once, and
benchmarks/train_speed.py reports the compile time and the cache hits.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_COMPILE = "/jax/core/compile/backend_compile_duration"
_HIT = "/jax/compilation_cache/cache_hits"
_MISS = "/jax/compilation_cache/cache_misses"


@dataclass
class CompileStats:
    """Compilations seen while the watch was active."""

    compiles: Counter[str] = field(default_factory=Counter)
    """Backend compilations (or loads from the persistent cache) by function name"""
    compile_seconds: Counter[str] = field(default_factory=Counter)
    trace_seconds: Counter[str] = field(default_factory=Counter)
    """Tracing and lowering to MLIR, by function name"""
    cache_hits: int = 0
    cache_misses: int = 0

    def _matching(self, counter: Counter[str], name: str) -> list[str]:
        return [key for key in counter if key in (name, f"jit({name})")]

    def count(self, name: str) -> int:
        """Compilations of the jitted function ``name`` (e.g. ``train_step``)."""
        return sum(self.compiles[key] for key in self._matching(self.compiles, name))

    def seconds(self, name: str) -> float:
        """Trace, lowering and compile (or cache load) time of ``name``."""
        return sum(
            counter[key]
            for counter in (self.compile_seconds, self.trace_seconds)
            for key in self._matching(counter, name)
        )


_active: list[CompileStats] = []
_lock = threading.Lock()
_registered = False


def _on_duration(event: str, duration: float, **kwargs: Any) -> None:
    name = str(kwargs.get("fun_name", "?"))
    with _lock:
        for stats in _active:
            if event == _COMPILE:
                stats.compiles[name] += 1
                stats.compile_seconds[name] += duration
            elif event in (_TRACE, _LOWER):
                stats.trace_seconds[name] += duration


def _on_event(event: str, **kwargs: Any) -> None:
    with _lock:
        for stats in _active:
            if event == _HIT:
                stats.cache_hits += 1
            elif event == _MISS:
                stats.cache_misses += 1


def _register() -> None:
    global _registered
    if not _registered:
        import jax

        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        jax.monitoring.register_event_listener(_on_event)
        _registered = True


@contextmanager
def watch_compiles() -> Iterator[CompileStats]:
    """Collect the compilations made inside the block."""
    _register()
    stats = CompileStats()
    with _lock:
        _active.append(stats)
    try:
        yield stats
    finally:
        with _lock:
            _active.remove(stats)
