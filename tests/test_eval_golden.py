"""The interpreter against `tests/testdata/eval/`: programs and the values they give.

Each `tests/testdata/eval/*.flow` file is one program of one or more packages.
Every `(defn NAME [] ...)` in it that is followed, on the line after the one
its closing bracket stands on, by an expectation comment is one case:

    (defn mixed-sum-is-float [] (+ 1 2.5))
    ;=> 3.5

    (defn divide-by-zero [] (divide 1 0))
    ;=> fault: division by zero

`;=> LITERAL` is the value the function gives, printed as a Flowmetal literal
(`flowmetal.runtime.literal`); `;=> fault: TEXT` says the run fails with a
runtime fault (`flowmetal.runtime.Fault`) whose message contains TEXT, in any
case. Each case evaluates the function `PACKAGE/NAME` of the whole file's
text, with the standard packages available and the durable endpoints run in
memory, and is reported as `FILE::NAME`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowmetal.lang.analysis import check_sources
from flowmetal.lang.forms import lower
from flowmetal.lang.syntax import read

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests" / "testdata" / "eval"

if (ROOT / "flowmetal" / "runtime").exists():
    import flowmetal.runtime as runtime  # a broken interpreter must fail here, not skip
else:
    runtime = pytest.importorskip("flowmetal.runtime", reason="the interpreter (flowmetal/runtime/) is not there yet")

FILES = sorted(EVAL.glob("*.flow"))
EXPECTATION = re.compile(r"^\s*;=>\s?(?P<text>.*?)\s*$")
FAULT = re.compile(r"^fault:\s*(?P<text>.+)$")


@dataclass(frozen=True)
class Case:
    path: Path
    package: str
    name: str
    line: int            # of the expectation, 1-based
    expected: str        # the literal, or the text of the fault's message
    fault: bool

    @property
    def id(self) -> str:
        return f"{self.path.name}::{self.name}"

    @property
    def entry(self) -> str:
        return f"{self.package}/{self.name}"


def expectation_lines(text: str) -> dict[int, str]:
    """Every `;=>` comment of the text, by its 1-based line."""
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = EXPECTATION.match(line)
        if m:
            found[number] = m.group("text")
    return found


def collect(path: Path) -> list[Case]:
    text = path.read_text(encoding="utf-8")
    lines = expectation_lines(text)
    module = lower(read(text, path.name))
    cases = []
    for package in module.packages:
        for definition in package.definitions:
            if definition.form != "defn" or definition.params:
                continue
            line = definition.node.span.end_line + 1
            if line not in lines:
                continue
            written = lines[line]
            fault = FAULT.match(written)
            cases.append(Case(path, package.name, definition.name, line,
                              fault.group("text") if fault else written, fault is not None))
    return cases


CASES = [case for path in FILES for case in collect(path)]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_eval(case: Case) -> None:
    text = case.path.read_text(encoding="utf-8")
    where = f"{case.path.name}:{case.line}: {case.entry}"
    if case.fault:
        with pytest.raises(runtime.Fault) as info:
            value = runtime.evaluate(text, case.entry)
            pytest.fail(f"{where}: expected a fault containing {case.expected!r}, "
                        f"got the value {runtime.literal(value)}")
        message = info.value.message
        assert case.expected.lower() in message.lower(), \
            f"{where}: expected a fault containing {case.expected!r}, got the fault {message!r}"
        return
    try:
        value = runtime.evaluate(text, case.entry)
    except runtime.Fault as fault:
        pytest.fail(f"{where}: expected {case.expected}, got the fault {fault.message!r}\n{fault}")
    assert runtime.literal(value) == case.expected, where


def test_every_expectation_belongs_to_a_case() -> None:
    """An expectation not right under a zero-parameter `defn` would be silently ignored."""
    stray = []
    for path in FILES:
        used = {case.line for case in CASES if case.path == path}
        stray += [f"{path.name}:{line}" for line in expectation_lines(path.read_text(encoding="utf-8"))
                  if line not in used]
    assert not stray, "expectations under no zero-parameter defn: " + ", ".join(stray)


def test_names_are_unique_per_file() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_the_corpus_checks_without_errors() -> None:
    """Every program is well typed: what the interpreter meets is what the checker accepts."""
    for path in FILES:
        errors = [diag for diag in check_sources({path.name: path.read_text(encoding="utf-8")}) if diag.is_error]
        assert not errors, f"{path.name}: " + "; ".join(
            f"{diag.span.line}:{diag.span.column}: {diag.code}: {diag.message}" for diag in errors)


def test_expected_values_are_literals_the_reader_takes() -> None:
    """Printed values are Flowmetal literals: each expectation reads as one form, without
    a syntax error (functions, `#<fn NAME>`, have no literal and are left out)."""
    unreadable = []
    for case in CASES:
        if case.fault or "#<fn " in case.expected:
            continue
        tree = read(case.expected, case.id)
        if tree.diagnostics or len(tree.forms) != 1:
            unreadable.append(f"{case.id}: {case.expected}")
    assert not unreadable, "\n".join(unreadable)


def test_the_corpus_is_large() -> None:
    assert len(FILES) >= 8
    assert len(CASES) >= 120
    assert sum(case.fault for case in CASES) >= 10
