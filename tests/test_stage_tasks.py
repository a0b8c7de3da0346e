"""Planning-time checks of the KL and DPO tasks (no job is run)."""

from pathlib import Path

import pytest

from xpm_train.registry import build
from xpm_train.tasks.checkpoint import Checkpoint
from xpm_train.tasks.dpo import DPO
from xpm_train.tasks.kl_stage import KLStage
from xpm_train.validation import ConfigError, validate


def checkpoint(vocab_model: str = "transformer") -> Checkpoint:
    return Checkpoint.C(
        model=build("model", {"name": vocab_model, "max_seq_len": 32}),
        tokenizer=build("tokenizer", {"name": "bytes"}),
        path=Path("/nonexistent/checkpoints"),
        step=10,
    )


def common(**overrides):
    values = {
        "init": checkpoint(),
        "optimizer": build("optimizer", {"name": "adamw"}),
        "schedule": build("schedule", {"name": "wsds", "lr_warmup_steps": 1}),
        "seq_len": 16,
        "batch_size": 8,
        "micro_batch_size": 8,
        "steps": 20,
    }
    values.update(overrides)
    return values


def kl_stage(**overrides) -> KLStage:
    return KLStage.C(
        dataset=build("dataset", {"name": "arithmetic", "n_examples": 100}), **common(**overrides)
    )


def dpo(**overrides) -> DPO:
    preferences = build(
        "preferences",
        {
            "name": "arithmetic",
            "facts": build("dataset", {"name": "arithmetic", "n_examples": 100}),
        },
    )
    return DPO.C(preferences=preferences, **common(**overrides))


def test_valid_stages_pass_and_train_the_init_model():
    for task in (kl_stage(), dpo()):
        validate(task)
        assert task.model_and_tokenizer() == (task.init.model, task.init.tokenizer)
        assert task.reference_checkpoint() is task.init


@pytest.mark.parametrize(
    ("make", "overrides", "message"),
    [
        (kl_stage, {"direction": "sideways"}, "direction: 'sideways' is not one of forward"),
        (kl_stage, {"beta": -1.0}, "beta: -1.0 must be >= 0"),
        (kl_stage, {"seq_len": 64}, "seq_len: 64 exceeds the model's max_seq_len=32"),
        (dpo, {"beta": 0.0}, "beta: 0.0 must be > 0"),
        (dpo, {"label_smoothing": 0.5}, "label_smoothing: 0.5 must be in \\[0, 0.5\\)"),
        (dpo, {"steps": 0}, "steps: the run has 0 steps"),
    ],
)
def test_bad_parameters_fail_before_submission(make, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make(**overrides))
