"""Rules of the checker over many programs, beside the golden files that show each case:
empty literals typed by their use, `get` keys checked, and one missing closer making one
diagnostic wherever it is."""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from flowmetal.lang.analysis import check_sources
from flowmetal.lang.signatures import BUILTINS
from flowmetal.lang.syntax import Kind, read, tokens

sys.path.insert(0, str(ROOT / "bench"))
import programs  # noqa: E402

# A literal of each type, and which types each fits.
LITERALS = {"int?": "1", "float?": "2.5", "str?": '"s"', "keyword?": ":k", "bool?": "true"}
FITS = {("int?", "number?"), ("float?", "number?")}
TYPES = [*LITERALS, "number?"]


def fits(found: str, expected: str) -> bool:
    return found == expected or (found, expected) in FITS


def errors(text: str) -> list:
    return [diag for diag in check_sources({"p.flow": text}) if diag.is_error]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list(LITERALS)), min_size=1, max_size=4), st.sampled_from(TYPES),
       st.sampled_from(["(conj [] {items})", "(reduce conj [] [{items}])", "(let [xs []] (conj xs {items}))",
                        "(concat [] [{items}])"]))
def test_a_list_built_from_empty_has_the_type_of_its_items(items, declared, shape):
    expression = shape.format(items=" ".join(LITERALS[t] for t in items))
    text = f"(defpackage p (defn f [] : (list? {declared}) {expression}))"
    found = errors(text)
    assert bool(found) == (not all(fits(t, declared) for t in items)), (text, found)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(LITERALS)), st.sampled_from(TYPES), st.booleans())
def test_get_finds_only_keys_of_the_maps_key_type(key, key_type, with_default):
    default = " 0" if with_default else ""
    text = f"(defpackage p (defn f [m : (map? {key_type} int?)] (get m {LITERALS[key]}{default})))"
    found = errors(text)
    assert bool(found) == (not fits(key, key_type)), (text, found)
    assert all("argument `key` of `get`" in diag.message for diag in found)


def _clean_programs() -> dict[str, str]:
    texts = {"generated": programs.flowmetal(60)}
    for path in sorted((ROOT / "examples").glob("*.flow")) + sorted((ROOT / "flowmetal" / "stdlib").glob("*.flow")):
        texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def test_one_missing_closer_anywhere_is_one_diagnostic():
    """Delete any one closing bracket of a clean, laid-out program: the reader finds the
    bracket it leaves open, and nothing else is reported (no follow-on type errors, no
    "never used", nothing about the definitions after it)."""
    cases = 0
    for name, text in _clean_programs().items():
        before = {(diag.code, diag.message) for diag in check_sources({name: text})}
        for tok in tokens(read(text, name).items):
            if tok.kind is not Kind.CLOSE:
                continue
            broken = text[:tok.start] + text[tok.end:]
            new = [diag for diag in check_sources({name: broken}) if (diag.code, diag.message) not in before]
            where = f"{name}: without the `{tok.text}` of line {tok.span.line}, column {tok.span.column}"
            assert [diag.code for diag in new] == ["FM101"], f"{where}: {[(d.code, d.message) for d in new]}"
            assert new[0].span.start <= tok.start, where  # the bracket left open is before the gap
            cases += 1
    assert cases > 200


def test_built_in_predicates_read_well():
    assert BUILTINS["int?"].doc.startswith("Whether `x` is a value of type `int?`")
