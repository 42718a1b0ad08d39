"""The full analysis against `tests/testdata/check/`: expected diagnostics on their lines.

Each `tests/testdata/check/*.flow` file is one program. Each subdirectory
`tests/testdata/check/NAME/` is one program too, made of all its `*.flow` files
checked together; each file holds the expectations of its own lines. The
diagnostics are those of `flowmetal.lang.analysis.check_sources`: reader, forms,
names, types, matches and unused things. See `tests/golden.py` for the notation.

`pytest --update-golden` rewrites the expectations from what the analysis
reports now; review the diff before committing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TESTDATA
from flowmetal.lang.analysis import check_sources
from flowmetal.lang.syntax import Kind, read, tokens

import golden

CHECK = TESTDATA / "check"
SINGLE = sorted(CHECK.glob("*.flow"))
MULTI = sorted(p for p in CHECK.iterdir() if p.is_dir() and any(p.glob("*.flow"))) if CHECK.is_dir() else []
CASES = [[p] for p in SINGLE] + [sorted(d.glob("*.flow")) for d in MULTI]
IDS = [p.name for p in SINGLE] + [d.name + "/" for d in MULTI]


def _name(path: Path) -> str:
    """The file's name in the program: its path under `tests/testdata/check`."""
    return path.relative_to(CHECK).as_posix()


def _lines_inside_broken_text(text: str, name: str) -> set[int]:
    """Lines whose line break lies inside a multi-line token: expectations go above them."""
    above = set()
    for tok in tokens(read(text, name).items):
        if tok.kind in (Kind.STRING3, Kind.ERROR) and "\n" in tok.text:
            above.add(tok.span.line)
    return above


@pytest.mark.parametrize("paths", CASES, ids=IDS)
def test_golden(paths: list[Path], update_golden: bool) -> None:
    stripped: dict[str, str] = {}
    expected: dict[str, list[golden.Expected]] = {}
    for path in paths:
        name = _name(path)
        stripped[name], expected[name] = golden.parse(path.read_text(encoding="utf-8"))
    diagnostics = check_sources(stripped)
    for diag in diagnostics:
        assert diag.span.source.name in stripped, f"a diagnostic outside the program's files: {diag}"
    found = {name: golden.actual([diag for diag in diagnostics if diag.span.source.name == name])
             for name in stripped}
    if update_golden:
        for path in paths:
            name = _name(path)
            above = _lines_inside_broken_text(stripped[name], name)
            path.write_text(golden.render(stripped[name], found[name], above), encoding="utf-8")
        return
    problems = []
    for name in stripped:
        missing = [e for e in expected[name] if e not in found[name]]
        unexpected = [e for e in found[name] if e not in expected[name]]
        problems += [f"{name}: expected, not reported: {_show(e)}" for e in missing]
        problems += [f"{name}: reported, not expected: {_show(e)}" for e in unexpected]
    assert not problems, "\n".join(problems)
    assert found == expected  # the same, counting repeats


def _show(e: golden.Expected) -> str:
    return f"{e.line}:{e.column} (width {e.width}) {e.severity} {e.code}: {e.message}"


def test_there_are_golden_files() -> None:
    assert len(SINGLE) >= 10
    assert MULTI, "at least one program of several files"
    for directory in MULTI:
        assert len(list(directory.glob("*.flow"))) >= 2, f"{directory.name}/ holds one file: put it beside the others"
