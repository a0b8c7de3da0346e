"""The merged configuration with the origin of every key (xpm_train.planning.sources)."""

from pathlib import Path

import pytest

from xpm_train.planning.sources import SourceError, Sources, parse_override


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_merge_order_and_origins(tmp_path):
    write(tmp_path / "base.yaml", "a: {x: 1, y: 1, z: 1}\nb: base\n")
    pre = write(tmp_path / "pre.yaml", "a: {x: 0, w: 0}\nb: pre\n")
    main = write(tmp_path / "main.yaml", "imports: [base.yaml]\na: {y: 2}\n")
    post = write(tmp_path / "post.yaml", "a: {z: 3}\n")
    sources = Sources.load(main, (str(pre),), (str(post),), ("a.x=4",))
    assert sources.values["a"] == {"x": 4, "w": 0, "y": 2, "z": 3}
    assert sources.values["b"] == "base"
    assert sources.origin("a.x") == "-c a.x=4"
    assert sources.origin("a.w") == str(pre)
    assert sources.origin("a.y") == str(main)
    assert sources.origin("a.z") == str(post)
    assert sources.origin("b") == str(tmp_path / "base.yaml")
    assert sources.origin("a.unknown.deeper") == sources.origin("a")
    assert sources.origin("nowhere") == "the experiment's defaults"


def test_overrides_are_read_as_yaml():
    assert parse_override("dpo.beta=0.2") == (["dpo", "beta"], 0.2)
    assert parse_override("steps=10") == (["steps"], 10)
    assert parse_override("flag=true") == (["flag"], True)
    assert parse_override("d.operations=[+, -]") == (["d", "operations"], ["+", "-"])
    assert parse_override("m={name: x, n: 2}") == (["m"], {"name": "x", "n": 2})
    assert parse_override("title=a=b") == (["title"], "a=b")
    assert parse_override("title=") == (["title"], "")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("dpo.beta", "an override is written key.subkey=value"),
        ("dpo..beta=1", "an override is written key.subkey=value"),
        ("x=[1, 2", "the value is not valid YAML"),
    ],
)
def test_bad_overrides(item, message):
    with pytest.raises(SourceError, match=message):
        parse_override(item)


def test_bad_files(tmp_path):
    with pytest.raises(SourceError, match="no such YAML file"):
        Sources.load(tmp_path / "missing.yaml")
    with pytest.raises(SourceError, match="bad.yaml: invalid YAML"):
        Sources.load(write(tmp_path / "bad.yaml", "a: [1, 2\n"))
    with pytest.raises(SourceError, match="list.yaml: the file must hold a mapping"):
        Sources.load(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    main = write(tmp_path / "main.yaml", "imports: [nope.yaml]\n")
    with pytest.raises(SourceError, match="nope.yaml: no such YAML file"):
        Sources.load(main)


def test_a_component_whose_name_changes_starts_afresh(tmp_path):
    base = write(tmp_path / "base.yaml", "data: {name: arithmetic, n_examples: 10, seed: 1}\n")
    main = write(tmp_path / "main.yaml", "imports: [base.yaml]\ndata: {seed: 2}\n")
    assert Sources.load(main).values["data"] == {"name": "arithmetic", "n_examples": 10, "seed": 2}
    sources = Sources.load(main, overrides=("data={name: jsonl, path: x.jsonl}",))
    assert sources.values["data"] == {"name": "jsonl", "path": "x.jsonl"}
    assert sources.origin("data.n_examples") == sources.origin("data")
    assert str(base) not in {sources.origin("data.name"), sources.origin("data.path")}
