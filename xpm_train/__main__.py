"""``python -m xpm_train monitor WORKDIR``: the ``xpm-train`` command."""

import sys

from xpm_train.cli import main

sys.exit(main())
