"""The ``xpm-train`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def monitor(arguments: argparse.Namespace) -> int:
    from xpm_train.monitor.app import MonitorApp

    try:
        app = MonitorApp(
            arguments.workdir, arguments.experiment, arguments.interval, arguments.all_runs
        )
    except FileNotFoundError as error:
        print(f"xpm-train monitor: {error}", file=sys.stderr)
        return 2
    app.run()
    return 0


def stages(arguments: argparse.Namespace) -> int:
    """``xpm-train stages``: the registered stage kinds and components."""
    from xpm_train.graph.configure import stages_listing

    print(stages_listing(), end="")
    return 0


def configure(arguments: argparse.Namespace) -> int:
    """``xpm-train configure KIND...``: YAML at the defaults; exit 2 on an unknown kind."""
    from xpm_train.graph.configure import configure as configured

    try:
        text = configured(arguments.kinds, arguments.name)
    except ValueError as error:
        print(f"xpm-train configure: {error}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


def export(arguments: argparse.Namespace) -> int:
    """``xpm-train export SOURCE OUT_DIR``: exit 2 with one line on a refused export."""
    from xpm_train.export.model import export_model

    try:
        folder = export_model(arguments.source, arguments.out_dir, arguments.step)
    except (ValueError, FileNotFoundError) as error:
        print(f"xpm-train export: {error}", file=sys.stderr)
        return 2
    print(f"wrote a Hugging Face model to {folder}")
    return 0


def results(arguments: argparse.Namespace) -> int:
    """``xpm-train results WORKDIR``: every evaluation of the workdir in one table."""
    from xpm_train.reporting.results import collect, table

    if not (arguments.workdir / "experiments").is_dir():
        print(
            f"xpm-train results: {arguments.workdir} is not an experimaestro workdir (no "
            "experiments/ folder); give the --workdir of run-experiment",
            file=sys.stderr,
        )
        return 2
    rows = collect(arguments.workdir, arguments.experiment)
    if not rows:
        print(f"no finished evaluation in {arguments.workdir}", file=sys.stderr)
        return 1
    print(table(rows, "csv" if arguments.csv else "markdown"), end="")
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
        "--all-runs",
        action="store_true",
        help="list the jobs of every run of each experiment, not only the latest (key a)",
    )
    watch.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default 2)"
    )
    watch.set_defaults(handler=monitor)
    listing = commands.add_parser(
        "stages",
        help="the registered stage kinds and components",
        description="List the stage kinds (doc, upstream stages, key metrics) and every "
        "component kind with its registered names.",
    )
    listing.set_defaults(handler=stages)
    section = commands.add_parser(
        "configure",
        help="a YAML stage section with every parameter at its default",
        description="Print a `stages:` section for each stage KIND with every parameter (its "
        "default, type and doc), ready to paste into an experiment file; for a component kind "
        "(e.g. schedule), the spec of one of its components.",
    )
    section.add_argument(
        "kinds", nargs="+", metavar="KIND", help="stage kind(s) or a component kind"
    )
    section.add_argument(
        "--name",
        help="the stage's name in `stages:` (default: its kind); for a component kind, the "
        "registered name (default: the first)",
    )
    section.set_defaults(handler=configure)
    written = commands.add_parser(
        "export",
        help="write a trained model as a Hugging Face folder",
        description="Write the final checkpoint of a training job (or a Hugging Face folder) "
        "as config.json, model.safetensors and tokenizer files that transformers loads "
        "(docs/hf.md).",
    )
    written.add_argument("source", type=Path, help="a training job's folder or an HF folder")
    written.add_argument("out_dir", type=Path, help="the new folder (must not exist or be empty)")
    written.add_argument("--step", type=int, help="another checkpoint of the job than the final")
    written.set_defaults(handler=export)
    compared = commands.add_parser(
        "results",
        help="every evaluation of a workdir in one table (Markdown or CSV)",
        description="One row per experiment run, evaluated checkpoint and held-out dataset: "
        "the stage, its step, held-out loss and exact-match accuracy, and the training "
        "parameters that differ between runs of the same stage.",
    )
    compared.add_argument("workdir", type=Path, help="the experimaestro workdir (--workdir)")
    compared.add_argument("--experiment", help="only this experiment id")
    compared.add_argument("--csv", action="store_true", help="CSV instead of Markdown")
    compared.set_defaults(handler=results)
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
