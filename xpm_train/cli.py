"""The ``xpm-train`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def monitor(arguments: argparse.Namespace) -> int:
    from xpm_train.monitor.app import MonitorApp

    try:
        app = MonitorApp(arguments.workdir, arguments.experiment, arguments.interval)
    except FileNotFoundError as error:
        print(f"xpm-train monitor: {error}", file=sys.stderr)
        return 2
    app.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpm-train", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    watch = commands.add_parser(
        "monitor",
        help="the jobs of a workdir and their training curves (a terminal UI)",
        description="List the xpm-train jobs of an experimaestro workdir (state, progress) "
        "and plot the highlighted job's training curves, refreshed as they grow.",
    )
    watch.add_argument("workdir", type=Path, help="the experimaestro workdir (--workdir)")
    watch.add_argument("--experiment", help="only this experiment id")
    watch.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"
    )
    watch.set_defaults(handler=monitor)
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
