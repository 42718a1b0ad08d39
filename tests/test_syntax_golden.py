"""The reader against `tests/testdata/syntax/*.flow`: expected diagnostics on their lines.

See `tests/golden.py` for the notation. Every file must also round-trip.
"""

from __future__ import annotations

import pytest

from conftest import TESTDATA
from flowmetal.lang.syntax import Kind, print_tree, read, tokens

import golden

FILES = sorted((TESTDATA / "syntax").glob("*.flow"))


def _lines_inside_broken_text(tree) -> set[int]:
    """Lines whose line break lies inside a multi-line token: expectations go above them."""
    above = set()
    source = tree.source
    for tok in tokens(tree.items):
        if tok.kind in (Kind.STRING3, Kind.ERROR) and "\n" in tok.text:
            above.add(tok.span.line)
    return above


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_golden(path, update_golden):
    text = path.read_text(encoding="utf-8")
    stripped, expected = golden.parse(text)
    tree = read(stripped, path.name)
    assert print_tree(tree.items) == stripped
    found = golden.actual(tree.diagnostics)
    if update_golden:
        path.write_text(golden.render(stripped, found, _lines_inside_broken_text(tree)), encoding="utf-8")
        return
    assert found == expected


def test_there_are_golden_files():
    assert len(FILES) >= 5
