import json

import pytest

from xpm_train.data.datasets import ArithmeticDataset, DatasetError
from xpm_train.data.packing import split_documents
from xpm_train.data.preferences import ArithmeticPreferences, JsonlPreferences


def test_arithmetic_preferences_use_training_facts_only():
    facts = ArithmeticDataset.C(n_examples=200, max_operand=30)
    pairs = ArithmeticPreferences.C(facts=facts, eval_fraction=0.1, split_seed=3).instance().pairs()
    _, held_out = split_documents(facts.instance().problems(), 0.1, 3)
    assert len(pairs) == 180
    assert not {pair.prompt for pair in pairs} & {prompt for prompt, _ in held_out}
    for pair in pairs:
        assert eval(pair.prompt[:-1]) == int(pair.chosen)
        assert 1 <= abs(int(pair.rejected) - int(pair.chosen)) <= 9


def test_jsonl_preferences_and_missing_field(tmp_path):
    path = tmp_path / "prefs.jsonl"
    good = {"prompt": "Q", "chosen": "yes", "rejected": "no"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"prompt": "Q", "rejected": "no"}) + "\n")
    with pytest.raises(DatasetError, match=r"prefs.jsonl:2: record has no string field 'chosen'"):
        JsonlPreferences.C(path=str(path)).instance().pairs()
    path.write_text(json.dumps(good) + "\n")
    (pair,) = JsonlPreferences.C(path=str(path)).instance().pairs()
    assert (pair.prompt, pair.chosen, pair.rejected) == ("Q", "yes", "no")
    with pytest.raises(DatasetError, match="does not exist"):
        JsonlPreferences.C(path=str(tmp_path / "none.jsonl")).instance().__validate__()
