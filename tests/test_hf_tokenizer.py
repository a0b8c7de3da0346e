"""Hugging Face tokenizers (parity with transformers' AutoTokenizer), the trained byte-level
BPE, and the export of tokenizers to Hugging Face files. Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from experimaestro import experiment
from experimaestro.xpmutils import DirectoryContext
from transformers import AutoTokenizer

from xpm_train.data.datasets import TextFiles
from xpm_train.data.hf_tokenizer import HFTokenizer, TrainedBPE
from xpm_train.data.packing import encode_documents
from xpm_train.data.tokenizers import ByteTokenizer, Tokenizer, encode_prompt
from xpm_train.export.tokenizer import save_tokenizer
from xpm_train.tasks.bpe import TrainBPE
from xpm_train.validation import validate

from .support.hf import arithmetic_texts, train_tokenizer

MIXED = [
    "12+34=46",
    "héllo wörld ✓ 日本",
    "a  b   c\t\td\n\ne  ",
    "  leading and trailing spaces  ",
    "\n\n\ttabs\tand\nnewlines\n",
    "special </s> <s>x<pad>y <|endoftext|>z<|pad|>",
    "",
]
#: Texts without special token strings: decoding gives them back.
PLAIN = [text for text in MIXED if "<" not in text]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CORPUS = "\n".join(
    ["the quick brown fox jumps over the lazy dog"] * 30
    + ["héllo wörld ✓ 日本 and some more words"] * 20
    + [f"{a}+{a}={2 * a}" for a in range(60)]
)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf")
    train_tokenizer(arithmetic_texts()).save_pretrained(folder)
    return folder


def copy_folder(source: Path, target: Path, **config: Any) -> Path:
    """A copy of a tokenizer folder whose tokenizer_config.json is updated with ``config``
    (a None value removes the key)."""
    target.mkdir()
    (target / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())
    settings = json.loads((source / "tokenizer_config.json").read_text())
    settings.update(config)
    settings = {key: value for key, value in settings.items() if value is not None}
    (target / "tokenizer_config.json").write_text(json.dumps(settings))
    return target


def auto_ids(folder: Path, text: str, **kwargs: Any) -> list[int]:
    return AutoTokenizer.from_pretrained(folder)(text, **kwargs)["input_ids"]


def assert_parity(tokenizer: Tokenizer, folder: Path, **kwargs: Any) -> None:
    auto = AutoTokenizer.from_pretrained(folder)
    for text in MIXED:
        ids = tokenizer.encode(text)
        assert ids.dtype == np.int32
        assert ids.tolist() == auto(text, **kwargs)["input_ids"], text
    assert (auto.eos_token_id, auto.pad_token_id) == (tokenizer.eos_id, tokenizer.pad_id)
    assert auto.bos_token_id == tokenizer.bos_id


def train_bpe(folder: Path, vocab_size: int = 320) -> Path:
    """Run a TrainBPE job's ``execute`` with its output in ``folder``; the tokenizer.json."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "corpus.txt").write_text(CORPUS)
    dataset = TextFiles.C(path=str(folder / "data" / "corpus.txt"), unit="line")
    task = TrainBPE.C(dataset=dataset, vocab_size=vocab_size, min_frequency=2)
    task.instance(DirectoryContext(folder / "job")).execute()
    return folder / "job" / "tokenizer.json"


@pytest.mark.parametrize("file", [False, True])
def test_encode_and_special_ids_match_autotokenizer(hf_folder: Path, file: bool):
    path = hf_folder / "tokenizer.json" if file else hf_folder
    tokenizer = HFTokenizer.C(path=str(path)).instance()
    validate(tokenizer)
    assert_parity(tokenizer, hf_folder, add_special_tokens=False)
    assert tokenizer.vocab_size == len(AutoTokenizer.from_pretrained(hf_folder)) == 300
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (0, 1, 2)


def test_decode_round_trip_drops_special_tokens(hf_folder: Path):
    tokenizer = HFTokenizer.C(path=str(hf_folder)).instance()
    for text in PLAIN:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    ids = [tokenizer.bos_id, *tokenizer.encode("1+2=3"), tokenizer.eos_id, tokenizer.pad_id]
    assert tokenizer.decode(np.array(ids)) == "1+2=3"


def test_documents_and_prompts_start_with_bos_when_there_is_one(hf_folder: Path):
    tokenizer = HFTokenizer.C(path=str(hf_folder)).instance()
    body = tokenizer.encode("1+2=").tolist()
    assert encode_prompt(tokenizer, "1+2=").tolist() == [tokenizer.bos_id, *body]
    (document,) = encode_documents(["1+2="], tokenizer)
    assert document.tolist() == [tokenizer.bos_id, *body, tokenizer.eos_id]
    assert document.dtype == np.int32
    byte = ByteTokenizer.C().instance()
    assert byte.bos_id is None
    assert encode_prompt(byte, "ab").tolist() == [256, 97, 98]
    assert encode_documents(["ab"], byte)[0].tolist() == [97, 98, 256]


def test_special_ids_from_config_json_and_pad_falls_back_to_eos(hf_folder: Path, tmp_path: Path):
    folder = copy_folder(hf_folder, tmp_path / "m", bos_token=None, eos_token=None, pad_token=None)
    (folder / "config.json").write_text(json.dumps({"eos_token_id": 1}))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": [0, 5]}))
    tokenizer = HFTokenizer.C(path=str(folder)).instance()
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (0, 1, 1)
    # the loaded files are cached per modification time: a new config is read again
    (folder / "config.json").write_text(json.dumps({"eos_token_id": 2, "pad_token_id": 3}))
    assert (tokenizer.eos_id, tokenizer.pad_id) == (2, 3)


@pytest.mark.parametrize("where", ["tokenizer_config", "jinja"])
def test_chat_template_is_applied_to_prompts(hf_folder: Path, tmp_path: Path, where: str):
    folder = copy_folder(
        hf_folder, tmp_path / "chat", chat_template=TEMPLATE if where != "jinja" else None
    )
    if where == "jinja":
        (folder / "chat_template.jinja").write_text(TEMPLATE)
    tokenizer = HFTokenizer.C(path=str(folder), chat_template=True).instance()
    validate(tokenizer)
    auto = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "user", "content": "1+2="}]
    rendered = auto.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == "<s><|user|>\n1+2=</s>\n<|assistant|>\n"
    ids = tokenizer.encode_prompt("1+2=").tolist()
    assert ids == auto(rendered, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_id and ids[1] != tokenizer.bos_id  # not doubled
    assert tokenizer.decode(ids) == "<|user|>\n1+2=\n<|assistant|>\n"
    without = HFTokenizer.C(path=str(folder)).instance()
    assert without.encode_prompt("1+2=").tolist() == [0, *without.encode("1+2=").tolist()]


def test_template_without_bos_gets_the_document_start(hf_folder: Path, tmp_path: Path):
    folder = copy_folder(hf_folder, tmp_path / "chat", chat_template="[{{ messages[0].content }}]")
    tokenizer = HFTokenizer.C(path=str(folder), chat_template=True).instance()
    assert tokenizer.encode_prompt("x").tolist() == [0, *tokenizer.encode("[x]").tolist()]


def test_validation_errors_name_the_path_and_the_fix(hf_folder: Path, tmp_path: Path):
    def error(path: Path, **values: Any) -> str:
        with pytest.raises(ValueError) as caught:
            validate(HFTokenizer.C(path=str(path), **values))
        return str(caught.value)

    missing = error(tmp_path / "nowhere")
    assert "nowhere' does not exist" in missing and "nothing is downloaded" in missing
    (tmp_path / "empty").mkdir()
    assert "empty' has no tokenizer.json" in error(tmp_path / "empty")
    message = error(hf_folder, chat_template=True)
    assert str(hf_folder) in message and "has no chat template" in message
    assert "set chat_template: false" in message
    bad = copy_folder(hf_folder, tmp_path / "bad_template", chat_template="{% if %}")
    assert "is not valid jinja" in error(bad, chat_template=True)
    no_eos = copy_folder(hf_folder, tmp_path / "no_eos", eos_token=None)
    assert "names no end-of-sequence token" in error(no_eos)
    unknown = copy_folder(hf_folder, tmp_path / "unknown", eos_token="<eos>")
    assert "eos_token '<eos>'" in error(unknown) and "not in the vocabulary" in error(unknown)
    broken = copy_folder(hf_folder, tmp_path / "broken")
    (broken / "tokenizer_config.json").write_text("{not json")
    assert "is not readable JSON" in error(broken)
    (broken / "tokenizer.json").write_text("{not json")
    assert "tokenizer.json' is not readable JSON" in error(broken)


def test_train_bpe_writes_a_deterministic_tokenizer_autotokenizer_reads(tmp_path: Path):
    first, second = train_bpe(tmp_path / "a"), train_bpe(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    tokenizer = TrainedBPE.C(path=first, vocab_size=320).instance()
    assert tokenizer.vocab_size == 320
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (None, 0, 1)
    trained = tokenizer.files().tokenizer
    assert trained.get_vocab_size(with_added_tokens=True) == 320
    assert trained.id_to_token(0) == "<|endoftext|>" and trained.id_to_token(1) == "<|pad|>"
    assert len(tokenizer.encode("the quick brown fox")) < 8  # merges were learned
    assert_parity(tokenizer, first.parent, add_special_tokens=False)
    for text in PLAIN:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert encode_prompt(tokenizer, "ab").tolist() == [0, *tokenizer.encode("ab").tolist()]


def test_train_bpe_output_and_validation(tmp_path: Path):
    (tmp_path / "corpus.txt").write_text(CORPUS)
    dataset = TextFiles.C(path=str(tmp_path / "corpus.txt"), unit="line")
    task = TrainBPE.C(dataset=dataset, vocab_size=300)
    planned = task.planned_output()
    assert isinstance(planned, TrainedBPE) and planned.vocab_size == 300
    with experiment(tmp_path / "ws", "bpe-test", no_environmental_impact=True):
        output = task.submit()
    assert output.path.name == "tokenizer.json" and output.path.is_file()
    assert output.vocab_size == 300 and output.eos_id == 0
    with pytest.raises(ValueError, match=r"vocab_size: 100 is below 258.*min_frequency: 0"):
        validate(TrainBPE.C(dataset=dataset, vocab_size=100, min_frequency=0))


def test_export_byte_tokenizer(tmp_path: Path):
    tokenizer = ByteTokenizer.C().instance()
    save_tokenizer(tokenizer, tmp_path / "bytes")
    assert_parity(tokenizer, tmp_path / "bytes")  # no special token added by default
    assert len(AutoTokenizer.from_pretrained(tmp_path / "bytes")) == tokenizer.vocab_size
    for text in PLAIN:
        assert AutoTokenizer.from_pretrained(tmp_path / "bytes").decode(
            tokenizer.encode(text)
        ) == tokenizer.decode(tokenizer.encode(text))


def test_export_hf_and_trained_tokenizers(hf_folder: Path, tmp_path: Path):
    chat = copy_folder(hf_folder, tmp_path / "chat", chat_template=TEMPLATE)
    for tokenizer in (
        HFTokenizer.C(path=str(chat), chat_template=True).instance(),
        TrainedBPE.C(path=train_bpe(tmp_path / "bpe"), vocab_size=320).instance(),
    ):
        folder = tmp_path / f"export-{type(tokenizer).__name__}"
        save_tokenizer(tokenizer, folder)
        assert_parity(tokenizer, folder, add_special_tokens=False)
        again = HFTokenizer.C(path=str(folder), chat_template=tokenizer.uses_chat_template())
        assert [again.encode_prompt(t).tolist() for t in MIXED] == [
            tokenizer.encode_prompt(t).tolist() for t in MIXED
        ]
        assert json.loads((folder / "special_tokens_map.json").read_text())["eos_token"]
    with pytest.raises(ValueError, match="cannot export a tokenizer of class Tokenizer"):
        save_tokenizer(Tokenizer.C().instance(), tmp_path / "unknown")
