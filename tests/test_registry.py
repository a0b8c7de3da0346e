import pytest

from xpm_train.optim.schedules import Cosine
from xpm_train.registry import ComponentError, build, registered


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
        match=r"'lrr' \(did you mean 'lr'\?\) for schedule "
        r"'cosine'; its parameters are: lr, lr_min_ratio, lr_warmup_steps",
    ):
        build("schedule", {"name": "cosine", "lrr": 1e-3})


def test_wrong_type_names_the_parameter():
    with pytest.raises(ComponentError, match="Invalid value for parameter 'lr'"):
        build("schedule", {"name": "cosine", "lr": "fast"})
