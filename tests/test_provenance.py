"""Jobs made by other code: recorded in each job folder, listed at planning, run again on
request (``code_changes: rerun``), through the real CLI."""

from __future__ import annotations

import json

from xpm_train.provenance import NUMERICS_VERSION, current_code, differences
from xpm_train.tasks.pretrain import Pretrain

from .cli import job_folders, run_cli
from .conftest import PROJECT

PRETRAIN_ONLY = f"""
imports: [{PROJECT}/yaml/tiny.yaml]
dirty_git: ignore
stages: {{kl: null, dpo: null}}
"""


def test_jobs_record_their_code_and_other_code_is_listed_or_rerun(tmp_path):
    yaml = tmp_path / "pretrain.yaml"
    yaml.write_text(PRETRAIN_ONLY)
    first = run_cli(yaml, tmp_path / "ws", tmp_path / "home")
    assert first.returncode == 0, first.stderr[-3000:]
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    record = json.loads((folder / "code.json").read_text())
    (attempt,) = record["attempts"]
    assert attempt["numerics"] == NUMERICS_VERSION
    assert attempt["sources"] == current_code()["sources"]
    assert set(attempt["experiment_git"]) == {"commit", "dirty"}

    # The job as an older xpm-train would have made it.
    attempt.update(xpm_train="0.0.9", sources="0123456789abcdef")
    (folder / "code.json").write_text(json.dumps(record))
    again = run_cli(yaml, tmp_path / "ws", tmp_path / "home")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Jobs: 3 (0 new, 3 cached)" in again.stdout
    assert "1 job(s) were made by other code and are reused" in again.stdout
    assert f"  pretrain/{folder.name[:8]}: xpm-train 0.0.9 -> " in again.stdout
    assert "sources 0123456789abcdef -> " in again.stdout
    assert "set `code_changes: rerun`" in again.stdout

    rerun = run_cli(yaml, tmp_path / "ws", tmp_path / "home", "-c", "code_changes=rerun")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Jobs: 3 (3 new, 0 cached)" in rerun.stdout
    assert len(job_folders(tmp_path / "ws")["pretrain"]) == 2
    cached = run_cli(yaml, tmp_path / "ws", tmp_path / "home", "-c", "code_changes=rerun")
    assert "Jobs: 3 (0 new, 3 cached)" in cached.stdout  # same sources: the same jobs


def test_numerics_version_is_part_of_every_jobs_identity():
    arguments = Pretrain.__getxpmtype__().arguments
    assert arguments["numerics_version"].constant
    assert Pretrain.C().numerics_version == NUMERICS_VERSION


def test_only_version_and_sources_count_as_other_code():
    now = current_code()
    assert differences(now, now) == []
    other_commit = {**now, "experiment_git": {"commit": "f" * 40, "dirty": True}}
    assert differences(other_commit, now) == []
    assert differences({**now, "sources": "x"}, now) == [f"sources x -> {now['sources']}"]


DATA_YAML = f"""
imports: [{PROJECT}/yaml/tiny.yaml]
dirty_git: ignore
stages:
  pretrain: {{dataset: {{name: text_files, path: data/notes.txt, unit: line}}, steps: 10}}
  kl: null
  dpo: null
"""


def test_relative_data_paths_and_edited_data(tmp_path):
    """A relative path is relative to where the experiment runs (checked at planning, read by
    the job from its own folder); editing the file gives new jobs."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    notes = project / "data" / "notes.txt"
    notes.write_text("".join(f"{i}+{i}={2 * i}\n" for i in range(200)))
    yaml = project / "data.yaml"
    yaml.write_text(DATA_YAML)
    run = run_cli(yaml, tmp_path / "ws", tmp_path / "home", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    (folder,) = job_folders(tmp_path / "ws")["pretrain"]
    assert str(notes) in (folder / "params.json").read_text()  # absolute in the job

    again = run_cli(yaml, tmp_path / "ws", tmp_path / "home", cwd=project)
    assert "Jobs: 3 (0 new, 3 cached)" in again.stdout, again.stdout[-2000:]
    notes.write_text(notes.read_text() + "7+7=14\n")
    edited = run_cli(yaml, tmp_path / "ws", tmp_path / "home", cwd=project)
    assert edited.returncode == 0, edited.stderr[-3000:]
    assert "Jobs: 3 (3 new, 0 cached)" in edited.stdout
    assert len(job_folders(tmp_path / "ws")["pretrain"]) == 2

    elsewhere = run_cli(yaml, tmp_path / "ws", tmp_path / "home", cwd=tmp_path)
    assert elsewhere.returncode == 2
    assert "data/notes.txt' matches no file" in elsewhere.stderr
