"""Kept for tests/test_slurm_time_limit.py only: the helpers now live in ``tests/support/tiny.py``.

Delete this file once that test imports ``from .support.tiny import ...``.
"""

from .support.tiny import run_paths, tiny_settings, tiny_stage

__all__ = ["run_paths", "tiny_settings", "tiny_stage"]
