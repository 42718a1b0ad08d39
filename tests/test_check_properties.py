"""The checker never raises: on any text the reader accepts or recovers from, on
mutations of real programs, and on generated well-bracketed nonsense."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, TESTDATA
from flowmetal.lang.analysis import check_sources

import golden

PROGRAMS = [golden.parse(p.read_text(encoding="utf-8"))[0]
            for p in [*sorted((ROOT / "examples").glob("*.flow")), TESTDATA / "seed" / "seed.flow",
                      *sorted((ROOT / "flowmetal" / "stdlib").glob("*.flow"))]]

WORDS = st.sampled_from(["defpackage", "p", "require", ":refer", ":as", "defn", "defendpoint", "def", "defenum",
                         "defrecord", "deftype", "fn", "let", "if", "if-not", "when", "cond", ":else", "do", "and",
                         "or", "not", "match", "_", "x", "y", "f!", "int?", "str?", "list?", "map?", "fn?",
                         "union?", "a", ":", ":default", "+m+", "r", "1", "2.5", '"s"', "nil", "true", "+",
                         "count", "get", "map", "flowmetal.time", "sleep!", "duration", "make-duration",
                         "+seconds+", "t/sleep!"])


def nonsense():
    return st.recursive(WORDS, lambda children: st.tuples(st.sampled_from(["()", "[]", "{}"]),
                                                          st.lists(children, max_size=5)).map(
        lambda parts: parts[0][0] + " ".join(parts[1]) + parts[0][1]), max_leaves=30)


def assert_sane(text):
    for diag in check_sources({"p.flow": text}):
        assert 0 <= diag.span.start <= diag.span.end <= len(text)
        assert diag.message and diag.code.startswith("FM")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nonsense(), min_size=1, max_size=4))
def test_generated_forms_never_make_the_checker_raise(forms):
    assert_sane("(defpackage p\n  " + "\n  ".join(forms) + ")\n")
    assert_sane("\n".join(forms))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PROGRAMS), st.data())
def test_mutated_programs_never_make_the_checker_raise(text, data):
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(text)), st.integers(0, 8),
                                         st.sampled_from(["", "(", ")", "]", '"', "x", " 1", ":", "+a+", "(f)"])),
                               min_size=1, max_size=5))
    for at, length, new in sorted(edits, reverse=True):
        text = text[:at] + new + text[at + length:]
    assert_sane(text)
