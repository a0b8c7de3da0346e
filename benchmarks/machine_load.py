"""How busy other processes keep the machine's CPUs (Linux ``/proc/stat``), to report the load
conditions of a measurement and to wait for a quiet machine before one."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    wall: float
    busy: float
    """CPU seconds spent by the whole machine (all processes)"""
    mine: float
    """CPU seconds spent by this process and its finished children"""


def snapshot() -> Snapshot:
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / _HZ
    except OSError:
        busy = float("nan")
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return Snapshot(time.perf_counter(), busy, mine)


def others_share(before: Snapshot, after: Snapshot) -> float:
    """Fraction of all CPUs used by other processes between two snapshots (0 to 1)."""
    wall = max(after.wall - before.wall, 1e-9)
    others = (after.busy - before.busy) - (after.mine - before.mine)
    return max(0.0, others) / (wall * (os.cpu_count() or 1))


def wait_for_quiet(limit: float, timeout: float, window: float = 0.5) -> float:
    """Wait until other processes use less than ``limit`` of the CPUs over ``window`` seconds
    (at most ``timeout`` seconds); returns the last share measured."""
    deadline = time.monotonic() + timeout
    while True:
        before = snapshot()
        time.sleep(window)
        share = others_share(before, snapshot())
        if share != share or share < limit or time.monotonic() > deadline:  # nan: no /proc
            return share
