"""The ``XPM_TRAIN_*`` environment switches: ``0``, ``false``, ``no`` or ``off`` turn one off."""

from __future__ import annotations

import os

OFF = ("0", "false", "no", "off")


def switch(name: str, default: str = "1") -> str | None:
    """The value of switch ``name`` (``default`` when unset); None when it is turned off."""
    value = os.environ.get(name, default).strip()
    return None if value.lower() in OFF else value


def is_on(name: str) -> bool:
    """Whether switch ``name`` is on (switches are on unless turned off)."""
    return switch(name) is not None
