import json

import pytest

from xpm_train.data.datasets import (
    ArithmeticDataset,
    DatasetError,
    JsonlText,
    ReversalDataset,
    TextFiles,
)


def test_arithmetic_facts_are_correct_distinct_and_deterministic():
    dataset = ArithmeticDataset.C(n_examples=200, max_operand=20, operations=["+", "-", "*"])
    problems = dataset.instance().problems()
    assert problems == dataset.instance().problems()
    assert len(set(problems)) == 200
    for prompt, answer in problems:
        assert prompt.endswith("=")
        assert eval(prompt[:-1]) == int(answer)
    other_seed = ArithmeticDataset.C(n_examples=200, max_operand=20, seed=1).instance()
    assert other_seed.problems() != problems


def test_arithmetic_rejects_more_facts_than_exist():
    dataset = ArithmeticDataset.C(n_examples=500, max_operand=20).instance()
    with pytest.raises(DatasetError, match="n_examples=500 must be between 1 and 441"):
        dataset.__validate__()


def test_arithmetic_operand_range():
    dataset = ArithmeticDataset.C(n_examples=50, min_operand=100, max_operand=199).instance()
    for prompt, _ in dataset.problems():
        assert all(100 <= int(x) <= 199 for x in prompt[:-1].split("+"))
    with pytest.raises(DatasetError, match="must satisfy 0 <= min_operand <= max_operand"):
        ArithmeticDataset.C(min_operand=10, max_operand=5).instance().__validate__()


def test_text_files_from_file_glob_and_directory(tmp_path):
    (tmp_path / "a.txt").write_text("first paragraph\n\nsecond paragraph\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("line one\nline two\n")
    single = TextFiles.C(path=str(tmp_path / "a.txt")).instance()
    assert single.documents() == ["first paragraph", "second paragraph\n"]
    pattern = TextFiles.C(path=str(tmp_path / "*.txt"), unit="file").instance()
    assert len(pattern.documents()) == 1
    directory = TextFiles.C(path=str(tmp_path), unit="line").instance()
    assert directory.documents() == ["first paragraph", "second paragraph", "line one", "line two"]


def test_text_files_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="matches no file"):
        TextFiles.C(path=str(tmp_path / "nope*.txt")).instance().__validate__()


def test_jsonl_reads_field_and_reports_bad_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "hello"}) + "\n\n" + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DatasetError, match=r"data.jsonl:3: record has no string field 'text'"):
        JsonlText.C(path=str(path)).instance().documents()
    with pytest.raises(DatasetError, match=r"data.jsonl:1: record has no string field 'body'"):
        JsonlText.C(path=str(path), text_field="body").instance().__validate__()  # at planning
    path.write_text(json.dumps({"text": "hello"}) + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"data.jsonl:2: malformed JSON line"):
        JsonlText.C(path=str(path)).instance().documents()
    path.write_text(json.dumps({"text": "hello"}) + "\n")
    assert JsonlText.C(path=str(path)).instance().documents() == ["hello"]


def test_reversal_problems_are_distinct_reversed_words():
    dataset = ReversalDataset.C(n_examples=100, min_length=2, max_length=4, seed=3).instance()
    problems = dataset.problems()
    assert problems == dataset.problems() and len({p for p, _ in problems}) == 100
    for prompt, answer in problems:
        assert prompt.endswith(">") and answer == prompt[:-1][::-1]
        assert 2 <= len(answer) <= 4
    with pytest.raises(DatasetError, match="must be between 1 and"):
        ReversalDataset.C(n_examples=10**6, max_length=3).instance().__validate__()
