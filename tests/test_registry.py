import pytest

from xpm_train.optim.schedules import Cosine
from xpm_train.registry import ComponentError, build, registered, validate_spec


def test_builtin_components_are_registered():
    assert set(registered("dataset")) >= {"arithmetic", "text_files", "jsonl"}
    assert set(registered("schedule")) == {"cosine", "wsd", "wsds"}
    schedule = build("schedule", {"name": "cosine", "lr": 0.5})
    assert isinstance(schedule, Cosine) and schedule.lr == 0.5


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(
        ComponentError,
        match=r"pretrain.schedule.name: unknown schedule 'cosin'; "
        r"available: cosine, wsd, wsds",
    ):
        build("schedule", {"name": "cosin"}, where="pretrain.schedule")
    with pytest.raises(ComponentError, match="unknown optimizer None"):
        build("optimizer", {"lr": 1})


def test_unknown_parameter_suggests_the_closest():
    with pytest.raises(
        ComponentError,
        match=r"kl.schedule.lrr: unknown parameter \(did you mean 'lr'\?\) of schedule "
        r"'cosine'; its parameters are: lr, lr_min_ratio, lr_warmup_steps",
    ):
        build("schedule", {"name": "cosine", "lrr": 1e-3}, where="kl.schedule")


def test_wrong_type_names_the_parameter():
    with pytest.raises(ComponentError, match="schedule.lr: 'fast' is not a valid float"):
        build("schedule", {"name": "cosine", "lr": "fast"})
    with pytest.raises(ComponentError, match=r"d.operations: '\+' is not a valid Array\(str\)"):
        build("dataset", {"name": "arithmetic", "operations": "+"}, where="d")


def test_validate_spec_lists_every_problem():
    errors = validate_spec("schedule", {"name": "wsd", "lr": "x", "steps": 3}, "kl.schedule")
    assert errors[0] == "kl.schedule.lr: 'x' is not a valid float"
    assert errors[1].startswith("kl.schedule.steps: unknown parameter of schedule 'wsd'")
