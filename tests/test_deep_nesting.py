"""Nesting as deep as the reader reads never ends in a traceback (docs/architecture.md).

Programs are generated from *wrappers*, forms with a hole, nested N deep around
a leaf: `(if (> x 0) HOLE 0)`, `(+ 1 HOLE)`, `(let [y 1] HOLE)`, `[HOLE]`...
Up to `deep.MAX_NESTING` (12,000) levels of forms inside a definition, the
program checks clean, and runs to the value the wrappers compute; past it, the
one diagnostic is FM203 at the opening bracket of the first form too deep.
Checking goes through the analysis as `check`, `run` and the language server do;
`flowmetal check` and `flowmetal run` are also run as processes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flowmetal.lang import deep
from flowmetal.lang.analysis import check_sources
from flowmetal.runtime.machine import Machine
from flowmetal.runtime.program import ProgramError, load
from flowmetal.runtime.values import literal


@dataclass(frozen=True)
class Wrapper:
    open: str            # the text before the hole
    close: str           # the text after it
    counted: tuple       # offsets in `open` of the brackets the nesting counts, and their levels (1: its own)
    hole: int = 1        # the level of the bracket the hole stands in


WRAPPERS = {
    "if": Wrapper("(if (> x 0) ", " 0)", ((0, 1), (4, 2))),
    "call": Wrapper("(+ 1 ", ")", ((0, 1),)),
    "let": Wrapper("(let [_y x] ", ")", ((0, 1),)),        # a binding vector is no expression
    "vector": Wrapper("[", "]", ((0, 1),)),
    "map": Wrapper("{:k ", "}", ((0, 1),)),
    "do": Wrapper("(do ", ")", ((0, 1),)),
    "when": Wrapper("(when true ", ")", ((0, 1),)),
    "and": Wrapper("(and true ", ")", ((0, 1),)),
    "cond": Wrapper("(cond (= x 1) ", " :else 0)", ((0, 1), (6, 2))),
    "match": Wrapper("(match x [1 ", "] [_ 0])", ((0, 1),)),   # nor is a clause
    "fn": Wrapper("((fn [] ", "))", ((0, 1), (1, 2)), hole=2),  # the call, then the `fn`
}
INDENT = "    "


def build(names: list[str]) -> tuple[str, int | None]:
    """The program nesting `names` (outermost first) around `x`, and the column (on line 3)
    of the first form nested past `deep.MAX_NESTING`, if any."""
    opens = "".join(WRAPPERS[n].open for n in names)
    closes = "".join(WRAPPERS[n].close for n in reversed(names))
    level, offset, first = 0, len(INDENT), None
    for n in names:
        w = WRAPPERS[n]
        for at, depth in w.counted:
            if first is None and level + depth > deep.MAX_NESTING:
                first = offset + at + 1
        level += w.hole
        offset += len(w.open)
    text = f"(defpackage deep\n  (defn main [x : int?] : any?\n{INDENT}{opens}x{closes}))\n"
    return text, first


def expected_value(names: list[str]) -> str:
    """The literal `(main 1)` gives, from the leaf outwards: `+` adds one, collections wrap."""
    number, out = 1, None
    for n in reversed(names):
        if n == "call":
            assert out is None, "a `+` around a collection is not generated"
            number += 1
        elif n == "vector":
            out = f"[{out if out is not None else number}]"
        elif n == "map":
            out = f"{{:k {out if out is not None else number}}}"
    return out if out is not None else str(number)


def shapes(depth: st.SearchStrategy[int]) -> st.SearchStrategy[list[str]]:
    """Nestings of `depth` wrappers: a few kinds, each repeated in runs (as real code nests),
    every `+` inside the collections (so that it adds numbers)."""
    def expand(parts: list[tuple[str, int]], total: int) -> list[str]:
        names: list[str] = []
        i = 0
        while len(names) < total:
            name, run = parts[i % len(parts)]
            names += [name] * run
            i += 1
        names = names[:total]
        return [n for n in names if n != "call"] + [n for n in names if n == "call"]
    kinds = st.sampled_from(sorted(WRAPPERS))
    return depth.flatmap(lambda total: st.lists(st.tuples(kinds, st.integers(1, 3000)), min_size=1, max_size=4)
                         .map(lambda parts: expand(parts, total)))


def found(text: str) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.column) for d in check_sources({"deep.flow": text})]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shapes(st.one_of(st.integers(1, 300), st.integers(9_500, 12_500))))
@example(["if"] * 10_000)
@example(["if"] * 11_999 + ["do"])   # the test of the last `if` is the first form too deep
@example(["fn"] * 6_001)
def test_any_nesting_checks_and_runs_or_is_refused_with_fm203(names):
    text, first = build(names)
    try:
        program = load({"deep.flow": text})  # checked as `check`, `run` and the editor check it
    except ProgramError as error:
        assert first is not None, error
        assert [(d.code, d.span.line, d.span.column) for d in error.diagnostics] == [("FM203", 3, first)]
        return
    assert first is None
    assert program.workspace.all_diagnostics() == []
    machine = Machine(program)
    machine.start("deep/main", [1])
    assert deep.call(literal, machine.run().value) == expected_value(names)


def test_types_nested_deeper_than_the_deepest_stack_are_one_diagnostic_not_a_traceback(monkeypatch):
    # Each binding wraps the last in a list: the type nests as deep as there are bindings,
    # though the forms nest two levels. The type in the message about the return is printed
    # by a walk deeper than the deep stack's limit (lowered here, to keep the test quick):
    # the definition is reported once, at its name.
    monkeypatch.setattr(deep, "RECURSION_LIMIT", 10_000)
    n = 15_000
    bindings = " ".join(f"a{i} [a{i - 1}]" for i in range(1, n))
    text = f"(defpackage deep\n  (defn main [] : int? (let [a0 1 {bindings}] a{n - 1})))\n"
    found = check_sources({"deep.flow": text})
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("FM203", 2, 9)]
    assert "too deeply nested to check" in found[0].message


ROOT = Path(__file__).resolve().parent.parent


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_check_and_run_of_ten_thousand_nested_forms_as_processes(tmp_path: Path):
    text, _ = build(["if"] * 4_000 + ["let"] * 3_000 + ["vector"] * 3_000)
    (tmp_path / "deep.flow").write_text(text, encoding="utf-8")
    checked = flowmetal("check", "--format", "json", "deep.flow", cwd=tmp_path)
    assert (checked.returncode, json.loads(checked.stdout)) == (0, [])
    ran = flowmetal("run", "deep.flow", "main", "1", cwd=tmp_path)
    assert "Traceback" not in ran.stderr
    assert (ran.returncode, ran.stdout.strip()) == (0, "[" * 3_000 + "1" + "]" * 3_000)


def test_a_form_too_deep_is_fm203_for_check_and_refused_by_run(tmp_path: Path):
    text, _ = build(["call"] * (deep.MAX_NESTING + 1))
    (tmp_path / "deep.flow").write_text(text, encoding="utf-8")
    checked = flowmetal("check", "--format", "json", "deep.flow", cwd=tmp_path)
    found = [(d["code"], d["line"], d["column"]) for d in json.loads(checked.stdout)]
    assert (checked.returncode, found) == (1, [("FM203", 3, 5 + len("(+ 1 ") * deep.MAX_NESTING)])
    ran = flowmetal("run", "deep.flow", "main", "1", cwd=tmp_path)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "FM203" in ran.stderr and "nothing was run" in ran.stderr


def test_a_run_argument_nested_ten_thousand_deep(tmp_path: Path):
    (tmp_path / "id.flow").write_text("(defpackage ident\n  (defn main [v] v))\n", encoding="utf-8")
    argument = "[" * 10_000 + ":k" + "]" * 10_000
    ran = flowmetal("run", "id.flow", "main", argument, cwd=tmp_path)
    assert (ran.returncode, ran.stdout.strip()) == (0, argument), ran.stderr[-2000:]
    assert re.fullmatch(r"flowmetal run: run [0-9a-f]{16}: main\n", ran.stderr)  # its id, and nothing else
