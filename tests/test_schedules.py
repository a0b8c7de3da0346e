import pytest

from xpm_train.optim.schedules import Cosine, WarmupStableDecay, WarmupStableDecayStable


def test_cosine_values_at_known_steps():
    schedule = Cosine.C(lr=1.0, lr_min_ratio=0.1, lr_warmup_steps=10).instance()
    values = [schedule.value(step, 110) for step in (0, 5, 10, 60, 110, 200)]
    assert values == pytest.approx([0.0, 0.5, 1.0, 0.55, 0.1, 0.1], abs=1e-6)


def test_wsd_values_at_known_steps():
    schedule = WarmupStableDecay.C(
        lr=2.0, lr_min_ratio=0.0, lr_warmup_steps=10, decay_fraction=0.5
    ).instance()
    values = [schedule.value(step, 100) for step in (0, 5, 10, 30, 50, 75, 100)]
    assert values == pytest.approx([0.0, 1.0, 2.0, 2.0, 2.0, 1.0, 0.0], abs=1e-6)


def test_warmup_longer_than_training_is_rejected():
    with pytest.raises(ValueError, match="lr_warmup_steps=200 is longer than the training"):
        Cosine.C(lr_warmup_steps=200).instance().validate_steps(100)
    with pytest.raises(ValueError, match="exceed the 100 training steps"):
        WarmupStableDecay.C(lr_warmup_steps=60, decay_fraction=0.5).instance().validate_steps(100)


def test_wsds_values_at_known_steps():
    schedule = WarmupStableDecayStable.C(
        lr=1.0, lr_min_ratio=0.1, lr_warmup_steps=10, decay_fraction=0.2, tail_fraction=0.5
    ).instance()
    steps = (0, 10, 29, 30, 40, 50, 75, 100)
    values = [schedule.value(step, 100) for step in steps]
    assert values == pytest.approx([0.0, 1.0, 1.0, 1.0, 0.55, 0.1, 0.1, 0.1], abs=1e-6)
    with pytest.raises(ValueError, match="exceed the 100 training steps"):
        WarmupStableDecayStable.C(lr_warmup_steps=40, decay_fraction=0.2).instance().validate_steps(
            100
        )
