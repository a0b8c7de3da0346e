"""Runs in the experiment driver before the experiment module is loaded.

experimaestro 2.7.0 pauses 3 s at every start when CodeCarbon is not installed; carbon
tracking cannot run then anyway, so only the warning (and its pause) is turned off.
"""

from experimaestro.carbon import is_available
from experimaestro.settings import get_settings

if not is_available():
    get_settings().carbon.warn_if_unavailable = False

# Strict configuration: unknown keys, ill-typed values and unknown components fail here,
# before anything is submitted (see docs/yaml.md).
from xpm_train.planning.hook import strict_configuration  # noqa: E402

strict_configuration()
