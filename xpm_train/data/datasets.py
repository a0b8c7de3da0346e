"""Text datasets: each yields documents (strings); packing and splitting happen downstream."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
from experimaestro import Config, Param, field

from xpm_train.data.files import LocalFiles
from xpm_train.registry import register
from xpm_train.validation import validate

ARITHMETIC_OPERATIONS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


class DatasetError(ValueError):
    """A dataset is missing, empty or malformed."""


class TextDataset(Config):
    """Base class: a deterministic list of text documents."""

    def documents(self) -> list[str]:
        raise NotImplementedError

    def __validate__(self) -> None:
        """Cheap checks run at planning time (files exist, parameters in range)."""


@register("dataset", "arithmetic")
class ArithmeticDataset(TextDataset):
    """Generated arithmetic facts such as ``17+25=42``, one fact per document.

    Facts are distinct and drawn without replacement, so a held-out split contains facts the
    model never saw; exact-match accuracy of the answer after ``=`` measures what it learned.
    """

    n_examples: Param[int] = field(default=4000)
    """Number of distinct facts"""
    max_operand: Param[int] = field(default=99)
    """Operands are drawn from min_operand..max_operand"""
    min_operand: Param[int] = field(default=0)
    operations: Param[list[str]] = field(default=["+"])
    """Operations among + - *"""
    seed: Param[int] = field(default=0)

    def __validate__(self) -> None:
        unknown = sorted(set(self.operations) - set(ARITHMETIC_OPERATIONS))
        if unknown or not self.operations:
            raise DatasetError(
                f"arithmetic dataset: operations {self.operations} must be a non-empty subset of "
                f"{sorted(ARITHMETIC_OPERATIONS)}"
            )
        if not 0 <= self.min_operand <= self.max_operand:
            raise DatasetError(
                f"arithmetic dataset: min_operand={self.min_operand} and max_operand="
                f"{self.max_operand} must satisfy 0 <= min_operand <= max_operand"
            )
        side = self.max_operand - self.min_operand + 1
        total = side * side * len(self.operations)
        if not 0 < self.n_examples <= total:
            raise DatasetError(
                f"arithmetic dataset: n_examples={self.n_examples} must be between 1 and {total} "
                f"(the number of distinct facts with operands in [{self.min_operand}, "
                f"{self.max_operand}] and "
                f"{len(self.operations)} operation(s))"
            )

    def problems(self) -> list[tuple[str, str]]:
        """The (prompt, answer) pairs, e.g. ``("17+25=", "42")``."""
        validate(self)
        side = self.max_operand - self.min_operand + 1
        total = side * side * len(self.operations)
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(total, size=self.n_examples, replace=False)
        pairs = []
        for index in chosen.tolist():
            op = self.operations[index // (side * side)]
            a, b = (self.min_operand + x for x in divmod(index % (side * side), side))
            pairs.append((f"{a}{op}{b}=", str(ARITHMETIC_OPERATIONS[op](a, b))))
        return pairs

    def documents(self) -> list[str]:
        return [prompt + answer for prompt, answer in self.problems()]


@register("dataset", "reversal")
class ReversalDataset(TextDataset):
    """Generated string reversals such as ``spam>maps``, one per document: a task that shares
    no symbol with arithmetic, for continued training on a different distribution."""

    n_examples: Param[int] = field(default=4000)
    """Number of distinct words"""
    min_length: Param[int] = field(default=3)
    max_length: Param[int] = field(default=8)
    alphabet: Param[str] = field(default="abcdefghijklmnopqrstuvwxyz")
    seed: Param[int] = field(default=0)

    def __validate__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise DatasetError(
                f"reversal dataset: min_length={self.min_length} and max_length="
                f"{self.max_length} must satisfy 1 <= min_length <= max_length"
            )
        if len(set(self.alphabet)) < 2 or ">" in self.alphabet:
            raise DatasetError(
                f"reversal dataset: alphabet {self.alphabet!r} needs 2 distinct symbols, no '>'"
            )
        possible = sum(
            len(set(self.alphabet)) ** n for n in range(self.min_length, self.max_length + 1)
        )
        if not 0 < self.n_examples <= possible // 2:
            raise DatasetError(
                f"reversal dataset: n_examples={self.n_examples} must be between 1 and "
                f"{possible // 2} (half the distinct words of these lengths)"
            )

    def problems(self) -> list[tuple[str, str]]:
        """The (prompt, answer) pairs, e.g. ``("spam>", "maps")``."""
        validate(self)
        rng = np.random.default_rng(self.seed)
        symbols = sorted(set(self.alphabet))
        words: dict[str, None] = {}
        while len(words) < self.n_examples:
            length = int(rng.integers(self.min_length, self.max_length + 1))
            words["".join(rng.choice(symbols, length))] = None
        return [(f"{word}>", word[::-1]) for word in words]

    def documents(self) -> list[str]:
        return [prompt + answer for prompt, answer in self.problems()]


def _split_text(text: str, unit: str) -> list[str]:
    if unit == "file":
        parts = [text]
    elif unit == "paragraph":
        parts = text.split("\n\n")
    else:
        parts = text.split("\n")
    return [part for part in parts if part.strip()]


@register("dataset", "text_files")
class TextFiles(LocalFiles, TextDataset):
    """Local text files: one file, a glob pattern, or a directory (all files below it)."""

    path: Param[str]
    """A file, a glob pattern (``data/*.txt``) or a directory (relative: to the directory
    where the experiment is run)"""
    unit: Param[str] = field(default="paragraph")
    """What makes one document: ``file``, ``paragraph`` (blank-line separated) or ``line``"""

    def __validate__(self) -> None:
        if self.unit not in ("file", "paragraph", "line"):
            raise DatasetError(
                f"text_files dataset: unit {self.unit!r} is not one of file, paragraph, line"
            )
        files = self.files()
        if readable_at_planning(*files):
            self.documents()

    def files(self) -> list[Path]:
        path = Path(self.path).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files = [path]
        else:
            files = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in files if p.is_file()]
        if not files:
            raise DatasetError(
                f"text_files dataset: path {self.path!r} matches no file; give an existing file, "
                "a directory or a glob pattern such as 'data/*.txt'"
            )
        return files

    def data_files(self) -> list[Path]:
        return self.files()

    def documents(self) -> list[str]:
        docs = [doc for file in self.files() for doc in _split_text(read_text(file), self.unit)]
        if not docs:
            raise DatasetError(f"text_files dataset: {self.path!r} contains no text")
        return docs


#: Data files up to this total size are read and validated at planning time (``check``);
#: larger ones only in the job, so that planning stays fast.
PLANNING_READ_LIMIT = 64 * 2**20


def read_text(path: Path) -> str:
    """The UTF-8 text of a data file; another encoding or an unreadable file is an error
    naming the file (and the first byte that is not UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path} cannot be read ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{path} is not UTF-8 text: byte {error.start} is 0x{data[error.start]:02x}; "
            "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def readable_at_planning(*paths: Path) -> bool:
    return sum(path.stat().st_size for path in paths) <= PLANNING_READ_LIMIT


def read_jsonl(path: Path, fields: tuple[str, ...], kind: str) -> list[tuple[str, ...]]:
    """The string ``fields`` of each record of a JSON-lines file; a malformed line or a
    record without one of the fields is an error naming the file and the line."""
    if not path.is_file():
        raise DatasetError(f"{kind}: file {str(path)!r} does not exist")
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}:{number}: malformed JSON line ({error})") from None
        missing = [
            key
            for key in fields
            if not isinstance(record, dict) or not isinstance(record.get(key), str)
        ]
        if missing:
            needed = ", ".join(repr(key) for key in fields)
            raise DatasetError(
                f"{path}:{number}: record has no string field {missing[0]!r} "
                f"(a {kind} record needs {needed})"
            )
        rows.append(tuple(record[key] for key in fields))
    if not rows:
        raise DatasetError(f"{kind}: {path} holds no record")
    return rows


@register("dataset", "jsonl")
class JsonlText(LocalFiles, TextDataset):
    """A JSON-lines file whose records hold the text in one field."""

    text_field: Param[str] = field(default="text")

    def __validate__(self) -> None:
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DatasetError(f"jsonl dataset: file {self.path!r} does not exist")
        if readable_at_planning(path):
            self.documents()

    def documents(self) -> list[str]:
        rows = read_jsonl(Path(self.path).expanduser(), (self.text_field,), "jsonl dataset")
        return [text for (text,) in rows]
