"""pyright checks ``SomeConfig.C(...)`` calls with the experimaestro stubs in typings/.

One pyright run (the project's ``[tool.pyright]`` settings) over tests/typing/good_calls.py (no
diagnostic), tests/typing/bad_calls.py (exactly the errors its ``# expected:`` comments give,
line by line) and a generated file revealing the constructor pyright sees for each Config class
of xpm_train, compared with experimaestro's own list of arguments. See docs/typing.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from experimaestro import Config
from experimaestro.core.objects import ConfigMixin
from experimaestro.generators import Generator

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLES = PROJECT / "tests" / "typing"
GOOD = EXAMPLES / "good_calls.py"
BAD = EXAMPLES / "bad_calls.py"
EXPECTED = re.compile(r"#\s*expected:\s*(.+?)\s*$")
REVEALED = re.compile(r'^Type of "_c(\d+)\.__init__" is "(.*)"$', re.DOTALL)
PYRIGHT = [sys.executable, "-m", "pyright"]
# No look-up of pyright's latest release on PyPI (the only network use of its wrapper).
PYRIGHT_ENV = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}


def project_configs() -> list[type[Config]]:
    """The Config classes of xpm_train that an experiment constructs: those without subclasses
    (abstract bases such as ModelConfig may declare plain attributes for their subclasses)."""
    for path in sorted((PROJECT / "xpm_train").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "Param[" in source or "Meta[" in source:
            parts = path.relative_to(PROJECT).with_suffix("").parts
            importlib.import_module(".".join(p for p in parts if p != "__init__"))

    def ours(classes: list[type]) -> list[type]:
        return [cls for cls in classes if cls.__module__.startswith("xpm_train.")]

    def subclasses(cls: type) -> list[type]:
        found = [s for s in cls.__subclasses__() if not issubclass(s, ConfigMixin)]
        return found + [t for s in found for t in subclasses(s)]

    # Top-level classes only: the generated file imports them by name.
    leaves = {
        cls
        for cls in ours(subclasses(Config))
        if not ours(subclasses(cls)) and "." not in cls.__qualname__
    }
    return sorted(leaves, key=lambda cls: (cls.__module__, cls.__qualname__))


def experimaestro_arguments(cls: type[Config]) -> dict[str, bool]:
    """Name -> has a default, for the arguments experimaestro lets ``cls.C(...)`` set (not the
    generated paths nor the constants, which are read-only)."""
    return {
        name: not argument.required
        for name, argument in cls.__getxpmtype__().arguments.items()
        if not isinstance(argument.generator, Generator) and not argument.constant
    }


def signature_parameters(signature: str) -> dict[str, bool]:
    """Name -> has a default, for the keyword parameters of a signature printed by pyright,
    ``(self: X, *, a: int = 1, b: dict[str, int]) -> None``."""
    body = signature[signature.index("(") + 1 : signature.rindex(") ->")]
    parts, depth, quote, current = [], 0, "", ""
    for char in body:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return {
        part.split(":")[0]: " = " in part
        for part in parts
        if part not in ("", "*", "/") and not part.startswith("self")
    }


def run_pyright(files: list[Path]) -> dict[Path, list[dict[str, Any]]]:
    """pyright's diagnostics for ``files``, by file (lines numbered from 1)."""
    command = [*PYRIGHT, "--outputjson", "--pythonpath", sys.executable, *map(str, files)]
    done = subprocess.run(
        command, cwd=PROJECT, env=PYRIGHT_ENV, capture_output=True, text=True, timeout=300
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no JSON report (exit {done.returncode}):\n{done.stderr}")
    by_file: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    for diagnostic in report["generalDiagnostics"]:
        diagnostic["line"] = diagnostic["range"]["start"]["line"] + 1
        by_file[Path(diagnostic["file"]).resolve()].append(diagnostic)
    return by_file


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One pyright run over the examples and a file revealing each Config's constructor."""
    try:
        version = subprocess.run(
            [*PYRIGHT, "--version"], env=PYRIGHT_ENV, capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"pyright cannot run: {error}")
    if version.returncode != 0:
        pytest.skip(
            "pyright cannot run (pip install -e '.[dev]' installs it): "
            + (version.stderr or version.stdout).strip()[-500:]
        )
    configs = project_configs()
    probe = tmp_path_factory.mktemp("typing") / "constructors.py"
    lines = [f"from {c.__module__} import {c.__qualname__} as _c{i}" for i, c in enumerate(configs)]
    lines += [f"reveal_type(_c{i}.__init__)" for i in range(len(configs))]
    probe.write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples = doc_examples(probe.parent)
    by_file = run_pyright([GOOD, BAD, probe, *examples])
    return {
        "configs": configs,
        "probe": by_file[probe.resolve()],
        "by_file": by_file,
        "examples": examples,
    }


#: The first line of a documentation block that is an excerpt, not a program to check.
EXCERPT = "# excerpt"


def doc_examples(folder: Path) -> dict[Path, str]:
    """Every Python block of README.md and docs/ (excerpts left out), each written to its own
    file in ``folder``: file -> where the block is."""
    examples = {}
    for page in [PROJECT / "README.md", *sorted((PROJECT / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            if match.group(1).startswith(EXCERPT):
                continue
            line = text[: match.start()].count("\n") + 2
            name = f"{page.relative_to(PROJECT)}:{line}"
            path = folder / (re.sub(r"\W+", "_", name) + ".py")
            path.write_text(match.group(1), encoding="utf-8")
            examples[path] = name
    return examples


def describe(diagnostics: list[dict[str, Any]]) -> str:
    return "\n".join(f"  line {d['line']}: {d['severity']}: {d['message']}" for d in diagnostics)


def test_good_calls_have_no_diagnostic(checked: dict[str, Any]) -> None:
    diagnostics = checked["by_file"][GOOD.resolve()]
    assert not diagnostics, f"pyright on {GOOD.name}:\n{describe(diagnostics)}"


def test_good_calls_are_accepted_by_experimaestro(monkeypatch: pytest.MonkeyPatch) -> None:
    """What pyright accepts, experimaestro accepts: the calls build and set every required
    argument."""
    spec = importlib.util.spec_from_file_location("typing_good_calls", GOOD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # experimaestro looks its classes up
    spec.loader.exec_module(module)
    for config in module.build_all():
        for name, argument in config.__xpmtype__.arguments.items():
            missing = argument.required and config.__xpm__.values.get(name) is None
            assert not missing, f"{type(config).__qualname__}: {name} is required"


def test_bad_calls_report_exactly_the_expected_errors(checked: dict[str, Any]) -> None:
    expected = {
        number: match.group(1)
        for number, line in enumerate(BAD.read_text(encoding="utf-8").splitlines(), start=1)
        if (match := EXPECTED.search(line))
    }
    assert expected, f"no '# expected:' comment in {BAD.name}"
    reported: dict[int, list[str]] = defaultdict(list)
    for diagnostic in checked["by_file"][BAD.resolve()]:
        reported[diagnostic["line"]].append(f"{diagnostic['severity']}: {diagnostic['message']}")
    problems = []
    for number in sorted(expected.keys() | reported.keys()):
        messages, wanted = reported.get(number, []), expected.get(number)
        if wanted is None:
            problems.append(f"line {number}: unexpected {messages}")
        elif len(messages) != 1 or not messages[0].startswith("error: "):
            problems.append(f"line {number}: expected one error with {wanted!r}, got {messages}")
        elif wanted not in messages[0]:
            problems.append(f"line {number}: {wanted!r} is not in {messages[0]!r}")
    assert not problems, "pyright on bad_calls.py:\n" + "\n".join(problems)


def test_constructors_match_experimaestro_arguments(checked: dict[str, Any]) -> None:
    """For each Config class of xpm_train, pyright's ``C(...)`` takes the arguments that
    experimaestro takes, and makes none optional that experimaestro requires."""
    configs: list[type[Config]] = checked["configs"]
    revealed: dict[type[Config], dict[str, bool]] = {}
    for diagnostic in checked["probe"]:
        match = REVEALED.match(diagnostic["message"])
        assert match, f"unexpected pyright diagnostic: {diagnostic['message']}"
        revealed[configs[int(match.group(1))]] = signature_parameters(match.group(2))
    assert set(revealed) == set(configs)
    problems, spurious = [], []
    for cls, parameters in revealed.items():
        arguments = experimaestro_arguments(cls)
        name = f"{cls.__module__}.{cls.__qualname__}"
        if set(parameters) != set(arguments):
            problems.append(
                f"{name}: only for pyright {sorted(set(parameters) - set(arguments))}, "
                f"only for experimaestro {sorted(set(arguments) - set(parameters))}"
            )
        for key in set(parameters) & set(arguments):
            if parameters[key] and not arguments[key]:
                problems.append(f"{name}.{key}: required by experimaestro, not by pyright")
            elif arguments[key] and not parameters[key]:
                spurious.append(f"{cls.__qualname__}.{key}")
    assert not problems, "pyright and experimaestro disagree:\n" + "\n".join(problems)
    if spurious:
        warnings.warn(
            "pyright requires these arguments, which experimaestro does not (a Param[X | None] "
            "without default; `= field(default=None)` is the same for experimaestro and tells "
            "pyright): " + ", ".join(sorted(spurious)),
            stacklevel=1,
        )


def test_python_examples_of_the_docs_type_check(checked: dict[str, Any]) -> None:
    """The documentation's programs pass pyright as a user's experiment code would."""
    assert len(checked["examples"]) >= 5
    problems = [
        f"{name}:{d['line'] - 1}: {d['message']}"
        for path, name in checked["examples"].items()
        for d in checked["by_file"][path.resolve()]
        if d["severity"] == "error"
    ]
    assert not problems, "pyright on the docs' Python blocks:\n" + "\n".join(problems)
