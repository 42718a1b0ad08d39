"""Properties of the reader, checked on generated and mutated text (hypothesis).

- Reading never raises, on any text at all.
- The tree is lossless: its tokens are contiguous and print back the text exactly.
- Every diagnostic's span (and every note's) lies inside the text.
- Well-formed programs read with no diagnostics, and the grammar's fast path and
  the recovery builder make the same tree of them.
- Hundreds of mutations of real programs (brackets and quotes deleted or
  inserted) give diagnostics and no exception; deleting a bracket always gives
  at least one.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, TESTDATA
from flowmetal.lang.source import Source
from flowmetal.lang.syntax import Kind, Seq, print_tree, read, tokens
from flowmetal.lang.syntax.reader import _Reader

import golden

PROGRAMS = {p.name: p.read_text(encoding="utf-8")
            for p in [*sorted((ROOT / "examples").glob("*.flow")), TESTDATA / "seed" / "seed.flow",
                      TESTDATA / "syntax" / "valid.flow"]}


def check_invariants(text: str):
    tree = read(text)
    assert print_tree(tree.items) == text
    pos = 0
    for tok in tokens(tree.items):
        assert tok.start == pos, f"gap or overlap at {pos}"
        assert tok.text == text[tok.start:tok.end]
        pos = tok.end
    assert pos == len(text)
    for diag in tree.diagnostics:
        assert 0 <= diag.span.start <= diag.span.end <= len(text)
        for note in diag.notes:
            assert 0 <= note.span.start <= note.span.end <= len(text)
        assert diag.code.startswith("FM1")
    return tree


def shape(items):
    """A comparable picture of a tree: kinds and spans, nested."""
    out = []
    for node in items:
        if isinstance(node, Seq):
            out.append((node.kind, node.start, node.end, node.close is not None, shape(node.items)))
        else:
            out.append((node.kind, node.start, node.end))
    return out


# -- any text -------------------------------------------------------------------

ALPHABET = st.sampled_from(list('()[]{}"\\;:,. \n\t-+*/<>=!?_#@\'`~&|0123456789aeznilxé\u00a0\r'))


@settings(max_examples=400, deadline=None)
@given(st.text(ALPHABET, max_size=120))
def test_any_text_reads_losslessly(text):
    check_invariants(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_any_unicode_reads_losslessly(text):
    check_invariants(text)


# -- well-formed programs -----------------------------------------------------------

ATOMS = st.sampled_from(["x", "defn", "sleep!", "int?", "+days+", "a/b", "-", "->", "nil", "true", "false",
                         "0", "-12", "3.5", "1.0e-3", ":key", ":", '""', '"s \\" \\n \\u00e9"',
                         '"""multi\nline "q" ;"""', "_"])
TRIVIA = st.sampled_from([" ", "\n", ", ", "  ; comment\n", "\n\n  ", "\t"])


def forms(depth: int = 7):
    def seq(children):
        def build(parts):
            kind, items = parts
            opener, closer = kind
            body = ""
            for trivia, form in items:
                body += trivia + form
            if opener == "{" and len(items) % 2:
                body += " nil"
            return opener + body + closer
        return st.tuples(st.sampled_from(["()", "[]", "{}"]),
                         st.lists(st.tuples(TRIVIA, children), max_size=5)).map(build)
    return st.recursive(ATOMS, seq, max_leaves=40)


PROGRAM = st.lists(st.tuples(TRIVIA, forms()), min_size=1, max_size=6).map(
    lambda parts: "".join(t + f for t, f in parts) + "\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAM)
def test_well_formed_programs_read_clean_and_both_paths_agree(text):
    tree = check_invariants(text)
    assert tree.diagnostics == []
    assert shape(_Reader(Source(text))._build(0, len(text))) == shape(tree.items)


def test_deep_nesting_does_not_exhaust_the_stack():
    depth = 100_000
    text = "(" * depth + "x" + ")" * depth
    tree = check_invariants(text)
    assert tree.diagnostics == []
    node, levels = tree.items[0], 1
    while isinstance(node, Seq) and node.forms and isinstance(node.forms[0], Seq):
        node, levels = node.forms[0], levels + 1
    assert levels == depth


def test_deep_unbalanced_nesting_reports_every_opener():
    tree = check_invariants("[" * 3000)
    assert len(tree.diagnostics) == 3000
    assert {d.code for d in tree.diagnostics} == {"FM101"}


# -- mutations of real programs ----------------------------------------------------

def _brackets_and_quotes(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if c in '()[]{}"']


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(PROGRAMS)), st.data())
def test_mutated_programs_give_diagnostics_not_exceptions(name, data):
    text, _ = golden.parse(PROGRAMS[name])
    places = _brackets_and_quotes(text)
    edits = data.draw(st.lists(st.tuples(st.sampled_from(places), st.sampled_from(["del", *'()[]{}"'])),
                               min_size=1, max_size=4))
    for at, op in sorted(edits, reverse=True):
        text = text[:at] + text[at + 1:] if op == "del" else text[:at] + op + text[at:]
    check_invariants(text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PROGRAMS)), st.data())
def test_deleting_a_bracket_is_always_reported(name, data):
    text, _ = golden.parse(PROGRAMS[name])
    tree = read(text)
    assert tree.diagnostics == []
    brackets = [t.start for t in tokens(tree.items) if t.kind in (Kind.OPEN, Kind.CLOSE)]
    at = data.draw(st.sampled_from(brackets))
    broken = check_invariants(text[:at] + text[at + 1:])
    assert broken.diagnostics, f"deleting {text[at]!r} at {at} went unnoticed"
    assert {d.code for d in broken.diagnostics} <= {"FM101", "FM102", "FM103", "FM107"}


# -- the fused grammar is the grammar --------------------------------------------------

def _accepts(grammar, text):
    try:
        return grammar["file"].parse(text).end
    except Exception as error:  # ParseError: the text is outside the grammar
        assert type(error).__name__ in {"ParseError", "IncompleteParseError"}, error
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(PROGRAM, st.text(ALPHABET, max_size=60)))
def test_fusion_changes_no_text_the_grammar_accepts(text):
    from flowmetal.lang.syntax import grammar
    plain, fused = grammar.load(fused=False), grammar.load(fused=True)
    assert _accepts(plain, text) == _accepts(fused, text)
    assert plain["file"] is not fused["file"] and type(fused["flat"]).__name__ == "Regex"
