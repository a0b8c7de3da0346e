"""End to end: the real `experimaestro run-experiment` CLI on our YAML files, in a subprocess."""

import yaml

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
    assert "Held-out `pretrain`" in text and "Held-out `kl`" in text and "| dpo | 10 |" in text
    assert (report.parent / "training_curves.png").stat().st_size > 1000

    logs = [folder / f"{task}.out" for task, folders in jobs.items() for folder in folders]
    stamps = {log: log.stat().st_mtime_ns for log in logs}
    again = run_experiment(workdir, home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running (log" not in again.stderr + again.stdout  # no job started
    assert job_folders(workdir) == jobs

    changed = run_experiment(workdir, home, "-c", "stages.dpo.beta=0.2")
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
    assert (changed.stderr + changed.stdout).count(": running (log ") == 3


def test_full_experiment_plans_the_whole_pipeline(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    plan = run_experiment(
        workdir, home, "--run-mode", "dry_run", "-c", "stages.pretrain.steps=1200", yaml="full.yaml"
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


def plan_of(stdout: str) -> list[dict]:
    return yaml.safe_load(stdout.split(" jobs):\n", 1)[1].split("\nGrid (")[0].split("\nJobs: ")[0])


def test_two_kl_stages_from_one_pretrain_side_by_side(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    plan = run_experiment(
        workdir,
        home,
        "--run-mode",
        "dry_run",
        "-c",
        "stages.kl.beta=0.0",
        "-c",
        "stages.kl5={kind: kl, init: pretrain, beta: 5.0, dataset: {name: arithmetic, "
        "n_examples: 300, min_operand: 21, max_operand: 40, seed: 1}, seq_len: 32, "
        "batch_size: 8, micro_batch_size: 8, steps: 10, "
        "schedule: {name: cosine, lr_warmup_steps: 2}}",
        "-c",
        "stages.dpo=null",
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = plan_of(plan.stdout)
    kinds = [job["job"].split("/")[0].rsplit(".", 1)[-1] for job in jobs]
    assert kinds.count("pretrain") == 1 and kinds.count("klstage") == 2
    kls = [job for job in jobs if "klstage" in job["job"]]
    assert sorted(job["parameters"]["beta"] for job in kls) == [0.0, 5.0]
    pretrain = next(job["job"] for job in jobs if ".pretrain/" in job["job"])
    assert all(job["depends on"] == [pretrain] for job in kls)
    report = next(job for job in jobs if "report" in job["job"])
    assert sorted(report["parameters"]["evaluations"]) == ["kl", "kl5", "pretrain"]
    assert "Jobs: 7 (7 new, 0 cached)" in plan.stdout


def test_a_sweep_runs_its_grid_and_an_extension_runs_only_the_new_points(tmp_path):
    workdir, home = tmp_path / "ws", tmp_path / "home"
    home.mkdir()
    plan = run_experiment(workdir, home, "--run-mode", "dry_run", yaml="sweep.yaml")
    assert "Grid (4 points):\n  pretrain.schedule.lr: 0.003, 0.01\n  dpo.beta: 0.1, 0.5" in (
        plan.stdout
    ), plan.stdout[-2000:]
    assert "Jobs: 13 (13 new, 0 cached)" in plan.stdout
    first = run_experiment(workdir, home, yaml="sweep.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = job_folders(workdir)
    assert {task: len(folders) for task, folders in jobs.items()} == {
        "pretrain": 2,
        "dpo": 4,
        "evaluate": 6,
        "report": 1,
    }
    report = (jobs["report"][0] / "report.md").read_text()
    assert "| stage | pretrain.schedule.lr | dpo.beta | eval/rewards/accuracies" in report
    assert report.count("| dpo | 0.0") == 4 and report.count("| pretrain | 0.0") == 2
    assert (jobs["report"][0] / "sweep_dpo.beta.png").stat().st_size > 1000

    wider = "stages.pretrain.schedule.lr={sweep: [3.0e-3, 1.0e-2, 3.0e-2]}"
    plan = run_experiment(workdir, home, "--run-mode", "dry_run", "-c", wider, yaml="sweep.yaml")
    assert "Jobs: 19 (7 new, 12 cached)" in plan.stdout, plan.stdout[-2000:]
    extended = run_experiment(workdir, home, "-c", wider, yaml="sweep.yaml")
    assert extended.returncode == 0, extended.stderr[-3000:]
    after = job_folders(workdir)
    new = {task: len(set(after[task]) - set(jobs[task])) for task in after}
    assert new == {"pretrain": 1, "dpo": 2, "evaluate": 3, "report": 1}
    assert (extended.stderr + extended.stdout).count(": running (log ") == 7
