"""Runs in the experiment driver before the experiment module is loaded.

1. Planning (``--show``, ``--run-mode dry_run``, and the submission part of a normal run) only
   builds configurations: jax, flax, optax, orbax and wandb are replaced by experimaestro's
   ``mock_modules`` stand-ins, so the driver never imports them (about 1.2 s saved at every
   start, see docs/planning.md). Job processes do not run this file: they import the real
   libraries. Set ``XPM_TRAIN_NO_MOCKS=1`` to import the real libraries in the driver too.
2. experimaestro 2.7.0 pauses 3 s at every start when CodeCarbon is not installed; carbon
   tracking cannot run then anyway, so only the warning (and its pause) is turned off.
"""

import os
import sys

from experimaestro.carbon import is_available
from experimaestro.experiments import mock_modules
from experimaestro.settings import get_settings

#: Libraries that only job processes need.
HEAVY_MODULES = ["jax", "flax", "optax", "orbax", "wandb"]

mocks_off = os.environ.get("XPM_TRAIN_NO_MOCKS", "") not in ("", "0")
# In a process that already imported one of them for real (in-process runs), mock nothing.
if not mocks_off and not any(name in sys.modules for name in HEAVY_MODULES):
    mock_modules(HEAVY_MODULES)

if not is_available():
    get_settings().carbon.warn_if_unavailable = False

# Strict configuration: unknown keys, ill-typed values and unknown components fail here,
# before anything is submitted (see docs/yaml.md).
from xpm_train.planning.hook import strict_configuration  # noqa: E402

strict_configuration()
