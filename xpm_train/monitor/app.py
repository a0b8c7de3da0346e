"""``xpm-train monitor WORKDIR``: the xpm-train jobs of a workdir and their training curves.

The left side lists every xpm-train job of the latest run of the workdir's experiments (or,
``a``, of every run experimaestro keeps): its stage (or the stage it evaluates) and grid
point from the experiment's tags, state, progress and the job's own progress line; the right
side plots the highlighted job's loss (training and held-out) and one more panel of its
metrics (``m`` cycles through learning rate, gradient norm and the stage's key metrics).
Everything is re-read every ``interval`` seconds; a running job's curves grow as its
``metrics.jsonl`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from xpm_train.monitor.workspace import (
    ExperimentEntry,
    JobEntry,
    MetricsCache,
    Workspace,
    job_details,
)
from xpm_train.reporting.plots import job_panels, metric_series

#: Column keys and titles of the jobs table.
COLUMNS = (
    ("stage", "Stage"),
    ("point", "Grid point"),
    ("state", "State"),
    ("progress", "Progress"),
    ("description", "Last progress line"),
    ("experiment", "Experiment"),
    ("run", "Run"),
    ("job", "Job"),
)
STATE_LABELS = {"done": "done", "running": "running", "error": "failed", "waiting": "waiting"}


def progress_text(job: JobEntry) -> str:
    if job.progress is None:
        return ""
    return f"{job.progress * 100:3.0f}%"


class MonitorApp(App[None]):
    """Jobs of an experimaestro workdir with the training curves of the highlighted one."""

    TITLE = "xpm-train monitor"
    CSS = """
    #left { width: 50%; }
    #jobs { height: 2fr; }
    #job-info { height: 1fr; border: round $primary; padding: 0 1; }
    #curves { width: 1fr; }
    PlotextPlot { height: 1fr; }
    """
    BINDINGS: ClassVar = [
        Binding("q", "quit", "Quit"),
        Binding("r", "reload", "Refresh"),
        Binding("m", "next_panel", "Next metrics"),
        Binding("a", "toggle_runs", "All runs"),
    ]

    def __init__(
        self,
        workdir: Path,
        experiment: str | None = None,
        interval: float = 2.0,
        all_runs: bool = False,
    ):
        super().__init__()
        self.workspace = Workspace(workdir)
        self.only = experiment
        self.all_runs = all_runs
        """Whether earlier runs of the experiments are listed too"""
        self.interval = interval
        self.sub_title = str(self.workspace.workdir)
        self.experiments: list[ExperimentEntry] = []
        self.jobs: dict[str, JobEntry] = {}
        self.selected: str | None = None
        self.records: list[dict[str, Any]] = []
        self.panel = 0
        self.plotted: dict[str, list[str]] = {}
        """Plot id -> labels of the plotted series (what the plots show, for tests)"""
        self.loads = 0
        """Number of completed reloads of the workdir"""
        self.metrics = MetricsCache()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="left"):
                yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
                yield Static("Loading the workdir...", id="job-info")
            with Vertical(id="curves"):
                yield PlotextPlot(id="loss-plot")
                yield PlotextPlot(id="metrics-plot")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#jobs", DataTable)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        self.action_reload()
        self.set_interval(self.interval, self.action_reload)

    def action_reload(self) -> None:
        self.load_workspace()

    def action_toggle_runs(self) -> None:
        self.all_runs = not self.all_runs
        self.notify("every run of each experiment" if self.all_runs else "latest runs only")
        self.load_workspace()

    @work(thread=True, exclusive=True, group="reload")
    def load_workspace(self) -> None:
        experiments = self.workspace.experiments(self.only, True, self.all_runs)
        self.call_from_thread(self.show_experiments, experiments)

    def show_experiments(self, experiments: list[ExperimentEntry]) -> None:
        """Update the table in place (rows keep their position and the cursor its job)."""
        self.experiments = experiments
        table = self.query_one("#jobs", DataTable)
        jobs = {job.key: job for entry in experiments for job in entry.jobs}
        if list(jobs) != list(self.jobs):
            table.clear()
            for key, job in jobs.items():
                table.add_row(*self._cells(job), key=key)
        else:
            for key, job in jobs.items():
                for (column, _), value in zip(COLUMNS, self._cells(job), strict=True):
                    table.update_cell(key, column, value, update_width=True)
        self.jobs = jobs
        if not jobs:
            info = f"No xpm-train job in {self.workspace.workdir}"
            self.query_one("#job-info", Static).update(info)
        elif self.selected not in jobs:
            self.select(next(iter(jobs)))
        else:
            self.show_job(refresh_only=True)
        self.loads += 1

    def _cells(self, job: JobEntry) -> tuple[str, ...]:
        state = STATE_LABELS.get(job.state, job.state)
        return (
            job.stage,
            job.point,
            state,
            progress_text(job),
            job.description,
            job.experiment,
            job.run,
            job.job_id[:8],
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and event.row_key.value in self.jobs:
            self.select(event.row_key.value)

    def select(self, key: str) -> None:
        """Show the curves of the job ``key`` (``JobEntry.key``)."""
        if key != self.selected:
            self.selected = key
            self.panel = 0
            self.show_job()

    def action_next_panel(self) -> None:
        self.panel += 1
        self.show_job()

    def show_job(self, refresh_only: bool = False) -> None:
        """Show the selected job's details and curves; with ``refresh_only``, replot only
        when its metrics changed."""
        job = self.jobs.get(self.selected or "")
        if job is None:
            return
        records, changed = self.metrics.records(job.metrics_path)
        info = job_details(job)
        if job.description:
            info = f"{info}\nprogress: {progress_text(job).strip()}, {job.description}"
        if records:
            info += f"\n{len(records)} metric records, last step {records[-1].get('step')}"
        self.query_one("#job-info", Static).update(info)
        if refresh_only and not changed:
            return
        self.records = records
        panels = job_panels(records)
        loss = next((p for p in panels if p[0] == "loss"), ("loss", []))
        others = [p for p in panels if p[0] != "loss"]
        stage = [p for p in others if p[0] == "stage metrics"]
        others = stage + [p for p in others if p[0] != "stage metrics"]
        title = f"{job.stage} {job.job_id[:8]}"
        self._plot("loss-plot", f"{title}: {loss[0]}", loss[1])
        if others:
            name, keys = others[self.panel % len(others)]
            self._plot("metrics-plot", f"{title}: {name} (m: next)", keys)
        else:
            self._plot("metrics-plot", "no metrics.jsonl: not a training job", [])

    def _plot(self, plot_id: str, title: str, keys: list[str]) -> None:
        widget = self.query_one(f"#{plot_id}", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("step")
        labels = []
        for key in keys:
            steps, values = metric_series(self.records, key)
            if steps:
                marker = "dot" if key.startswith("eval/") else "braille"
                plt.plot(steps, values, label=key, marker=marker)
                labels.append(key)
        self.plotted[plot_id] = labels
        widget.refresh()
