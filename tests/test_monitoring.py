"""Watching training, on one real tiny experiment run through the CLI (pretrain logging to an
offline wandb run, with a fake API key in the environment): progress events, job logs, curves,
wandb, experimaestro's TUI and ``xpm-train monitor``, driven headlessly."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from xpm_train.training.metrics import read_metrics

from .cli import job_folders, run_cli, run_experiment
from .conftest import PROJECT
from .support.wandb_file import offline_runs, read_wandb_file

FAKE_KEY = "f" * 8 + "0123456789abcdef" * 2
STEP_LINE = re.compile(
    r"^step (\d+)/40 loss \d+\.\d{4} lr \d\.\d\de-\d\d grad_norm \d+\.\d{3} "
    r"tok/s \d+ eta \d+m\d\ds$"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipeline, done once for this module; pretrain logs to wandb (offline)."""
    root = tmp_path_factory.mktemp("monitoring")
    workdir, home = root / "ws", root / "home"
    result = run_cli(
        PROJECT / "yaml" / "tiny.yaml",
        workdir,
        home,
        "-c",
        "stages.pretrain.logger={name: wandb, tags: [ci]}",
        env={"WANDB_MODE": "offline", "WANDB_API_KEY": FAKE_KEY},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {task: folders[0] for task, folders in job_folders(workdir).items()}
    evaluations = job_folders(workdir)["evaluate"]
    return {"root": root, "workdir": workdir, "home": home, **jobs, "evaluate": evaluations[0]}


def progress_events(folder: Path) -> list[dict]:
    events = []
    for path in sorted((folder / ".experimaestro" / "events").glob("event-*.jsonl")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["event_type"] == "JobProgressEvent" and event["level"] == 0:
                events.append(event)
    return events


def test_every_job_reports_progress_up_to_one(run):
    for task, folders in job_folders(run["workdir"]).items():
        for folder in folders:
            events = progress_events(folder)
            fractions = [e["progress"] for e in events]
            assert fractions and fractions[-1] == 1.0, (task, events)
            assert fractions == sorted(fractions), (task, fractions)
    steps = [e["desc"] for e in progress_events(run["pretrain"]) if e["desc"]]
    assert [d.split(" loss ")[0] for d in steps[:4]] == [f"step {s}/40" for s in (10, 20, 30, 40)]
    assert re.fullmatch(r"step 10/40 loss \d+\.\d{4} tok/s \d+ eta \d+m\d\ds", steps[0])
    descs = [e["desc"] for e in progress_events(run["evaluate"])]
    assert "pretrain: held-out loss (1/2)" in descs and "done: 2 datasets" in descs
    assert "done: 3 stages" in [e["desc"] for e in progress_events(run["report"])]


def test_job_log_has_a_line_per_interval_and_a_summary(run):
    out = (run["pretrain"] / "pretrain.out").read_text().splitlines()
    steps = [int(m.group(1)) for line in out if (m := STEP_LINE.match(line))]
    assert steps == [10, 20, 30, 40], out
    summary = "\n".join(out[out.index(next(x for x in out if x.startswith("pretrain done"))) :])
    result = json.loads((run["pretrain"] / "result.json").read_text())
    assert re.match(r"pretrain done: 40 steps in \d+\.\ds \([\d,]+ tokens/s at the end\)", summary)
    assert f"final metrics: loss {result['metrics']['loss']:.4g}, eval/loss" in summary
    assert f"final checkpoint: {run['pretrain'] / 'checkpoints' / '40'}" in summary
    assert "in the job folder: metrics.jsonl, result.json (every final metric), curves.png" in (
        summary
    )
    assert "wandb: offline run " in summary and "wandb sync " in summary
    assert "wandb" not in (run["klstage"] / "klstage.out").read_text()


def test_training_jobs_write_curves_and_the_report_embeds_them(run):
    report = run["report"] / "report.md"
    text = report.read_text()
    for task, stage in (("pretrain", "pretrain"), ("klstage", "kl"), ("dpo", "dpo")):
        curves = run[task] / "curves.png"
        assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        embedded = report.parent / f"curves_{stage}.png"
        assert embedded.read_bytes() == curves.read_bytes()
        assert f"![{stage} curves](curves_{stage}.png)" in text


def test_the_wandb_run_holds_the_logged_metrics(run):
    folder = run["pretrain"]
    files = offline_runs(folder)
    assert len(files) == 1
    log = read_wandb_file(files[0])
    assert log.run_id.startswith(folder.name[:16])
    assert (log.group, log.name, log.job_type, log.tags) == (
        "xpm-train-tiny",
        "pretrain (ci)",
        "pretrain",
        ["pretrain", "ci"],
    )
    assert log.config["steps"] == 40 and log.config["model"]["d_model"] == 32
    assert log.config["xpm_job"]["id"] == folder.name
    assert "logger" not in log.config
    by_step: dict[int, dict] = {}
    for row in log.history:
        by_step.setdefault(row["_step"], {}).update(row)
    records = read_metrics(folder / "metrics.jsonl")
    assert sorted(by_step) == sorted({r["step"] for r in records})
    for record in records:
        for key, value in record.items():
            if key not in ("kind", "step"):
                assert by_step[record["step"]][key] == pytest.approx(value), key
    assert log.summary["step"] == 40 and log.exit_code == 0
    assert not (run["klstage"] / "wandb").exists()


def test_no_api_key_is_written_anywhere(run):
    leaks = [
        path
        for path in run["root"].rglob("*")
        if path.is_file() and FAKE_KEY.encode() in path.read_bytes()
    ]
    assert leaks == []
    params = json.loads((run["pretrain"] / "params.json").read_text())
    logger = next(o for o in params["objects"] if o["typename"].endswith("WandbLogger"))
    assert set(logger["fields"]) <= {"project", "entity", "mode", "group", "display_name", "tags"}


def test_turning_the_logger_off_reuses_the_done_jobs(run):
    again = run_experiment(run["workdir"], run["home"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running (log" not in again.stderr + again.stdout  # no job started


def run_ids(workdir: Path) -> set[str]:
    """The runs of the tiny experiment (the module's run, then the test rerunning it)."""
    folders = (workdir / "experiments/xpm-train-tiny").iterdir()
    return {p.name for p in folders if p.is_dir() and not p.is_symlink()}


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the UI did not get there in time")


def test_experimaestro_tui_lists_our_jobs_done_with_the_host(run):
    from experimaestro.tui import ExperimentTUI

    status = json.loads(
        (run["workdir"] / "experiments/xpm-train-tiny/current/status.json").read_text()
    )
    assert status["hostname"] == socket.gethostname()

    async def scenario() -> tuple[list, list, list]:
        app = ExperimentTUI(workdir=run["workdir"], watch=False)
        async with app.run_test(size=(160, 40)) as pilot:
            experiments = app.query_one("#experiments-table", DataTable)
            await wait_for(pilot, lambda: experiments.row_count > 0)
            columns = [str(c.label).split(" ")[0] for c in experiments.columns.values()]
            rows = [experiments.get_row_at(i) for i in range(experiments.row_count)]
            experiments.focus()
            await pilot.press("enter")
            jobs = app.query_one("#jobs-table", DataTable)
            await wait_for(pilot, lambda: jobs.row_count == 7)
            listed = [jobs.get_row_at(i) for i in range(jobs.row_count)]
            await pilot.press("escape")
            experiments.focus()
            await pilot.press("d")  # the experiment's runs, each with its jobs
            runs = app.query_one("#runs-table", DataTable)
            await wait_for(pilot, lambda: runs.row_count > 0)
            return columns, rows, listed, [runs.get_row_at(i) for i in range(runs.row_count)]

    columns, rows, jobs, runs = asyncio.run(scenario())
    (row,) = rows
    assert row[columns.index("ID")] == "xpm-train-tiny"
    assert row[columns.index("Host")] == socket.gethostname()
    assert "Done" in str(row[columns.index("Status")])
    tasks = sorted((str(job[1]).rsplit(".", 1)[-1], str(job[3])) for job in jobs)
    assert tasks == [
        ("dpo", "stage=dpo"),
        ("evaluate", "evaluates=dpo"),
        ("evaluate", "evaluates=kl"),
        ("evaluate", "evaluates=pretrain"),
        ("klstage", "stage=kl"),
        ("pretrain", "stage=pretrain"),
        ("report", "-"),
    ]
    assert all(str(job[2]) == "✅" for job in jobs)
    assert sorted(str(r[0]) for r in runs) == sorted(run_ids(run["workdir"]))


def test_experimaestro_jobs_commands_select_jobs_by_their_tags(run):
    """docs/monitoring.md: ``--filter`` on the tags the experiment gives each job."""
    listed = subprocess.run(
        [sys.executable, "-m", "experimaestro", "jobs", "--workdir", str(run["workdir"]), "list"]
        + ["--experiment", "xpm-train-tiny", "--tags", "--filter", 'evaluates = "dpo"'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    (line,) = [line for line in listed.stdout.splitlines() if line.strip()]
    assert line.startswith("DONE    xpm_train.tasks.evaluate.evaluate/")
    assert line.endswith(" evaluates=dpo")


def test_monitor_lists_jobs_and_plots_the_curves_as_they_grow(run):
    from xpm_train.monitor.app import COLUMNS, MonitorApp

    names = [key for key, _ in COLUMNS]

    metrics = run["pretrain"] / "metrics.jsonl"
    original = metrics.read_text()

    async def scenario() -> None:
        app = MonitorApp(run["workdir"], interval=60)
        async with app.run_test(size=(160, 45)) as pilot:
            await wait_for(pilot, lambda: app.loads > 0)
            table = app.query_one("#jobs", DataTable)
            rows = [
                dict(zip(names, table.get_row_at(i), strict=True)) for i in range(table.row_count)
            ]
            assert sorted(r["stage"] for r in rows) == [
                "dpo",
                "evaluate dpo",
                "evaluate kl",
                "evaluate pretrain",
                "kl",
                "pretrain",
                "report",
            ]
            latest = (run["workdir"] / "experiments/xpm-train-tiny/current").resolve().name
            assert {(r["experiment"], r["run"], r["state"], r["progress"]) for r in rows} == {
                ("xpm-train-tiny", latest, "done", "100%")
            }
            runs = run_ids(run["workdir"])
            await pilot.press("a")  # every run of the experiment: the first run's jobs too
            await wait_for(pilot, lambda: table.row_count == 7 * len(runs))
            run_column = names.index("run")
            assert {table.get_row_at(i)[run_column] for i in range(table.row_count)} == runs
            await pilot.press("a")
            await wait_for(pilot, lambda: table.row_count == 7)
            key = next(k for k, job in app.jobs.items() if job.stage == "pretrain")
            app.select(key)
            assert app.records == read_metrics(metrics)
            assert app.plotted == {"loss-plot": ["loss", "eval/loss"], "metrics-plot": ["lr"]}
            await pilot.press("m")
            assert app.plotted["metrics-plot"] == ["grad_norm"]
            app.select(next(k for k, job in app.jobs.items() if job.stage == "dpo"))
            assert "rewards/accuracies" in app.plotted["metrics-plot"]

            app.select(key)
            with metrics.open("a") as out:
                out.write(json.dumps({"kind": "train", "step": 50, "loss": 0.5, "lr": 0.001}))
                out.write("\n")
            app.action_reload()
            await wait_for(pilot, lambda: len(app.records) == len(read_metrics(metrics)))
            assert app.records[-1]["step"] == 50

    try:
        asyncio.run(scenario())
    finally:
        metrics.write_text(original)
