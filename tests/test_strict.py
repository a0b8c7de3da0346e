"""Strict checking of a merged configuration against @configuration classes."""

from typing import Literal

import attrs
from experimaestro.experiments import ConfigurationBase, configuration

from xpm_train.planning.sources import Sources
from xpm_train.planning.strict import component, validate_configuration


@configuration()
class Section:
    beta: float = 0.1
    steps: int = 10
    direction: Literal["forward", "reverse"] = "forward"
    schedule: dict = component("schedule", "cosine")


@configuration()
class Schema(ConfigurationBase):
    stage: Section = attrs.field(factory=Section)


def errors_of(values: dict, origin: str = "main.yaml") -> list[str]:
    sources = Sources()
    sources.merge({"id": "x", **values}, origin)
    return validate_configuration(Schema, sources)


def test_a_valid_configuration_has_no_error():
    assert (
        errors_of({"stage": {"beta": 1, "steps": 3, "schedule": {"name": "wsd", "lr": 0.1}}}) == []
    )


def test_unknown_keys_name_the_closest_and_the_origin():
    sources = Sources()
    sources.merge({"id": "x", "stage": {"bta": 0.5}}, "full.yaml")
    sources.merge({"stag": {"beta": 1}}, "-c stag.beta=1")
    errors = validate_configuration(Schema, sources)
    assert errors[0].startswith(
        "stage.bta: unknown key (from full.yaml); did you mean 'stage.beta'? "
        "The keys of stage are: beta, steps, direction, schedule."
    )
    assert errors[1].startswith("stag: unknown key (from -c stag.beta=1); did you mean 'stage'?")


def test_values_of_the_wrong_type():
    assert errors_of({"stage": {"steps": "many"}}) == [
        "stage.steps: expected int, got 'many' (from main.yaml)"
    ]
    assert errors_of({"stage": {"steps": 1.5}}) == [
        "stage.steps: expected int, got 1.5 (from main.yaml)"
    ]
    assert errors_of({"stage": {"direction": "up"}}) == [
        "stage.direction: expected one of 'forward', 'reverse', got 'up' (from main.yaml)"
    ]
    assert errors_of({"stage": 3}) == ["stage: expected a mapping of keys, got 3 (from main.yaml)"]


def test_component_specs_are_checked_against_the_registry():
    assert errors_of({"stage": {"schedule": {"name": "cosin"}}}) == [
        "stage.schedule.name: unknown schedule 'cosin'; available: cosine, wsd, wsds "
        "(from main.yaml)"
    ]
    sources = Sources()
    sources.merge({"id": "x", "stage": {"schedule": {"name": "cosine", "lr": 1}}}, "full.yaml")
    sources.merge({"stage": {"schedule": {"lrr": 2}}}, "-c stage.schedule.lrr=2")
    assert validate_configuration(Schema, sources) == [
        "stage.schedule.lrr: unknown parameter (did you mean 'lr'?) of schedule 'cosine'; "
        "its parameters are: lr, lr_min_ratio, lr_warmup_steps (from -c stage.schedule.lrr=2)"
    ]
