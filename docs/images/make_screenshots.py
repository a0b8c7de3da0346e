"""The screenshots of docs/monitoring.md, taken from a real run.

    python docs/images/make_screenshots.py [--workdir /tmp/xpm-screens] [--yaml full.yaml] [-c k=v]

Runs ``yaml/full.yaml`` (every training stage logging to an offline wandb run) in a fresh
workdir; while the pretraining job runs, drives experimaestro's TUI and ``xpm-train monitor``
headlessly (Textual's ``run_test``) and saves SVG screenshots; when the run is done, saves the
monitor on the DPO job. SVGs become PNGs with ``rsvg-convert`` (librsvg, which falls back to
other fonts for emoji) or, without it, ``cairosvg``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from textual.widgets import DataTable

from xpm_train.monitor.app import MonitorApp
from xpm_train.monitor.workspace import Workspace

PROJECT = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent
SIZE = (150, 40)


async def settle(pilot, condition, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if condition():
            break
        await pilot.pause(0.1)
    await pilot.pause(1.0)  # column widths follow the rows a refresh later


async def experimaestro_views(workdir: Path, out: Path, stem: str) -> list[Path]:
    """The experiment's job list, then the details of its running (or first) job."""
    from experimaestro.tui import ExperimentTUI

    app = ExperimentTUI(workdir=workdir, watch=False)
    shots = []
    async with app.run_test(size=SIZE) as pilot:
        experiments = app.query_one("#experiments-table", DataTable)
        await settle(pilot, lambda: experiments.row_count > 0)
        experiments.focus()
        await pilot.press("enter")
        jobs = app.query_one("#jobs-table", DataTable)
        await settle(pilot, lambda: jobs.row_count > 0)
        shots.append(out / f"{stem}-jobs.svg")
        app.save_screenshot(str(shots[-1]))
        jobs.focus()
        await pilot.press("enter")
        await pilot.pause(1.0)
        app.query_one("#job-detail-content").scroll_end(animate=False)
        await pilot.pause(0.3)
        shots.append(out / f"{stem}-job.svg")
        app.save_screenshot(str(shots[-1]))
    return shots


async def monitor_view(workdir: Path, out: Path, stage: str, name: str) -> Path:
    app = MonitorApp(workdir, interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.loads > 0)
        app.select(next(key for key, job in app.jobs.items() if job.stage == stage))
        table = app.query_one("#jobs", DataTable)
        table.move_cursor(row=list(app.jobs).index(app.selected))
        await pilot.pause(0.5)
        app.save_screenshot(str(out / name))
    return out / name


def to_png(svg: Path) -> Path:
    png = svg.with_suffix(".png")
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True)
    else:
        import cairosvg

        cairosvg.svg2png(url=str(svg), write_to=str(png))
    svg.unlink()
    return png


def pretrain_progress(workspace: Workspace) -> float:
    for experiment in workspace.experiments(refresh=True):
        for job in experiment.jobs:
            if job.stage == "pretrain" and job.state == "running":
                return job.progress or 0.0
            if job.stage == "pretrain" and job.state == "done":
                return 1.0
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xpm-screens"))
    parser.add_argument("--yaml", default="full.yaml", help="an experiment file of yaml/")
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNGs go")
    parser.add_argument("-c", dest="overrides", action="append", default=[])
    arguments = parser.parse_args()
    workdir, out = arguments.workdir.resolve(), arguments.out.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    command = [sys.executable, "-m", "experimaestro", "run-experiment", "--workdir", str(workdir)]
    for stage in ("pretrain", "kl", "dpo"):
        command += ["-c", f"stages.{stage}.logger={{name: wandb}}"]
    for override in arguments.overrides:
        command += ["-c", override]
    driver = subprocess.Popen(
        [*command, str(PROJECT / "yaml" / arguments.yaml)],
        cwd=PROJECT,
        env={**os.environ, "WANDB_MODE": "offline"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not (workdir / "experiments").is_dir():
            if driver.poll() is not None:
                raise SystemExit(f"the experiment did not start (status {driver.returncode})")
            time.sleep(1)
        workspace = Workspace(workdir)
        while pretrain_progress(workspace) < 0.45:
            if driver.poll() is not None:
                raise SystemExit(f"the experiment ended early (status {driver.returncode})")
            time.sleep(2)
        shots = asyncio.run(experimaestro_views(workdir, out, "experimaestro-tui"))
        shots.append(asyncio.run(monitor_view(workdir, out, "pretrain", "monitor-running.svg")))
        if driver.wait() != 0:
            raise SystemExit(f"the experiment failed (status {driver.returncode})")
        shots.append(asyncio.run(monitor_view(workdir, out, "dpo", "monitor-dpo.svg")))
    finally:
        if driver.poll() is None:
            driver.terminate()
    for shot in shots:
        print(to_png(shot))


if __name__ == "__main__":
    main()
