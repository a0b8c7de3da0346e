import shutil

import jax
import numpy as np
import pytest
from experimaestro import experiment
from experimaestro.scheduler.interfaces import JobState

from xpm_train.registry import build
from xpm_train.tasks.checkpoint import load_checkpoint
from xpm_train.tasks.pretrain import Pretrain
from xpm_train.training.result import TrainResult
from xpm_train.validation import ConfigError, validate

from .conftest import reset_scheduler
from .support.tiny import tiny_specs


def tiny_pretrain(**overrides):
    specs = tiny_specs(model={"max_seq_len": 16})
    components = {kind: build(kind, spec) for kind, spec in specs.items()}
    values = {
        "seq_len": 16,
        "batch_size": 8,
        "micro_batch_size": 4,
        "steps": 12,
        "eval_interval": 6,
        "checkpoint_interval": 6,
        "log_interval": 3,
    }
    values.update(overrides)
    return Pretrain.C(**components, **values)


def identifier(config) -> str:
    return config.__xpm__.identifier.all.hex()


def test_meta_parameters_do_not_change_the_job_identity():
    base = identifier(tiny_pretrain())
    assert (
        identifier(
            tiny_pretrain(log_interval=1, checkpoint_interval=2, keep_checkpoints=5, prefetch=4)
        )
        == base
    )
    assert identifier(tiny_pretrain(seed=1)) != base
    assert identifier(tiny_pretrain(steps=13)) != base


def test_token_budget_sets_the_number_of_steps():
    task = tiny_pretrain(steps=None, tokens=8 * 16 * 10 + 1)
    assert task.total_steps() == 11


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seq_len": 32}, "seq_len: 32 exceeds the model's max_seq_len=16"),
        ({"batch_size": 6}, "batch_size: 6 is not divisible by micro_batch_size=4"),
        ({"tokens": 1000}, "give exactly one of steps and tokens"),
        ({"steps": 1}, "lr_warmup_steps=2 is longer than the training"),
    ],
)
def test_inconsistent_parameters_fail_before_submission(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(tiny_pretrain(**overrides))


def test_pretrain_job_output_loads_as_a_model(tmp_path):
    task = tiny_pretrain()
    with experiment(tmp_path / "ws", "pretrain-test", no_environmental_impact=True):
        checkpoint = task.submit()
    job = task.__xpm__.job
    assert job.state == JobState.DONE, job.stderr.read_text() if job.stderr.exists() else ""
    result = TrainResult.read(job.path / "result.json")
    assert result.step == 12 and "eval/loss" in result.metrics

    loaded = load_checkpoint(checkpoint)
    from_folder = load_checkpoint(job.path)
    assert loaded.step == from_folder.step == 12
    tokens = loaded.tokenizer.encode("12+3=")[None, :]
    logits = np.asarray(loaded.model(tokens))
    assert logits.shape == (1, 5, loaded.tokenizer.vocab_size)
    np.testing.assert_array_equal(logits, np.asarray(from_folder.model(tokens)))


def test_interrupted_job_resumes_when_resubmitted(tmp_path):
    """The folder of a job killed after its step-4 checkpoint: resubmitting it resumes there
    and ends with the parameters of the uninterrupted job."""
    settings = {"checkpoint_interval": 4, "keep_checkpoints": 5}
    with experiment(tmp_path / "ws", "resume-test", no_environmental_impact=True):
        checkpoint = tiny_pretrain(**settings).submit()
    expected = load_checkpoint(checkpoint).params
    folder = checkpoint.path.parent
    (folder / "pretrain.done").unlink()
    (folder / "result.json").unlink()
    for step in (8, 12):
        shutil.rmtree(checkpoint.path / str(step))
    reset_scheduler()

    with experiment(tmp_path / "ws", "resume-test", no_environmental_impact=True):
        again = tiny_pretrain(**settings).submit()
    assert again.path == checkpoint.path
    assert (folder / "pretrain.done").exists()
    assert "resuming from checkpoint" in (folder / "pretrain.out").read_text()
    resumed = load_checkpoint(again).params
    jax.tree.map(np.testing.assert_array_equal, expected, resumed)


def test_sampler_keeps_within_the_models_length(tmp_path, capsys):
    from xpm_train.inference.sample import main

    with experiment(tmp_path / "ws", "sample-test", no_environmental_impact=True):
        checkpoint = tiny_pretrain().submit()
    folder = str(checkpoint.path.parent)
    main([folder, "12+3=", "--max-new-tokens", "100"])
    out = capsys.readouterr()
    assert out.out.startswith("12+3=")
    assert (
        "note: --max-new-tokens 100 lowered to 10: the longest prompt has 6 tokens and the "
        "model reads at most 16"
    ) in out.err
    with pytest.raises(SystemExit) as stopped:
        main([folder, "1+" * 10 + "1="])
    assert stopped.value.code == 2
    assert "error: the longest prompt has 23 tokens; the model reads at most 16" in (
        capsys.readouterr().err
    )
