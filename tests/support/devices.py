"""Running a script with several simulated CPU devices (XLA's host platform device count), in
a subprocess: the device count is fixed when JAX starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]


def run_on_two_devices(script: str, *args: str) -> Any:
    """The JSON the script prints after ``RESULT`` (the test fails on a non-zero exit)."""
    return run_on_devices(2, script, *args)


def run_on_devices(count: int, script: str, *args: str) -> Any:
    """:func:`run_on_two_devices` with ``count`` devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT")[-1])
