"""End to end: the real `experimaestro run-experiment` CLI on our YAML files, in a subprocess."""

from xpm_train.training.metrics import read_metrics

from .cli import job_folders, run_experiment


def test_tiny_pipeline_runs_then_reruns_only_what_changed(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    first = run_experiment(workdir, home)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "ENVIRONMENTAL IMPACT TRACKING DISABLED" not in first.stderr
    jobs = job_folders(workdir)
    assert {task: len(folders) for task, folders in jobs.items()} == {
        "pretrain": 1,
        "klstage": 1,
        "dpo": 1,
        "evaluate": 3,
        "report": 1,
    }
    for task, folders in jobs.items():
        for folder in folders:
            assert (folder / f"{task}.done").exists(), (folder / f"{task}.err").read_text()[-3000:]
    pretrain = jobs["pretrain"][0]
    losses = [r["loss"] for r in read_metrics(pretrain / "metrics.jsonl", "train")]
    assert losses[-1] < 0.9 * losses[0]
    assert "pretrain done: 40 steps" in (pretrain / "pretrain.out").read_text()
    report = jobs["report"][0] / "report.md"
    assert f"Report: {report}" in first.stdout
    text = report.read_text()
    assert "Held-out `stage1_data`" in text and "| dpo | 10 |" in text
    assert (report.parent / "training_curves.png").stat().st_size > 1000

    logs = [folder / f"{task}.out" for task, folders in jobs.items() for folder in folders]
    stamps = {log: log.stat().st_mtime_ns for log in logs}
    again = run_experiment(workdir, home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Process started" not in again.stderr + again.stdout
    assert job_folders(workdir) == jobs

    changed = run_experiment(workdir, home, "-c", "dpo.beta=0.2")
    assert changed.returncode == 0, changed.stderr[-3000:]
    after = job_folders(workdir)
    new = {task: sorted(set(after[task]) - set(jobs[task])) for task in after}
    assert {task: len(folders) for task, folders in new.items()} == {
        "pretrain": 0,
        "klstage": 0,
        "dpo": 1,
        "evaluate": 1,
        "report": 1,
    }
    assert all(log.stat().st_mtime_ns == stamp for log, stamp in stamps.items())
    assert (changed.stderr + changed.stdout).count("Process started") == 3


def test_full_experiment_plans_the_whole_pipeline(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    plan = run_experiment(
        workdir, home, "--run-mode", "dry_run", "-c", "pretrain.steps=1200", yaml="full.yaml"
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    for task in (
        "pretrain.pretrain",
        "kl_stage.klstage",
        "dpo.dpo",
        "evaluate.evaluate",
        "report.report",
    ):
        assert f"Simulating xpm_train.tasks.{task}/" in plan.stdout + plan.stderr
    assert not (workdir / "jobs").exists()
