"""Spans, positions and the tree's shape, on small inputs written out here."""

from __future__ import annotations

from flowmetal.lang.source import Source
from flowmetal.lang.syntax import Kind, Seq, Token, print_tree, read, tokens, walk


def test_positions_are_one_based_code_points():
    source = Source("(a\n  é𝄞 b)\r\nc")
    assert source.position(0) == (1, 1)
    assert source.position(3) == (2, 1)
    # é and 𝄞 (outside the BMP: two UTF-16 units, one code point here) are one column each.
    assert source.position(source.text.index("b")) == (2, 6)
    assert source.position(len(source.text)) == (3, 2)
    assert source.offset(2, 6) == source.text.index("b")
    assert source.line_text(2) == "  é𝄞 b)"  # no \r


def test_every_node_knows_its_span():
    tree = read("(defpackage p\n  (defn f [x : int?] x))", "p.flow")
    defn = tree.forms[0].forms[2]
    assert isinstance(defn, Seq) and defn.kind is Kind.LIST
    assert (defn.span.line, defn.span.column, defn.span.end_line, defn.span.end_column) == (2, 3, 2, 24)
    params = defn.forms[2]
    assert params.kind is Kind.VECTOR
    assert [f.text for f in params.forms] == ["x", ":", "int?"]
    assert [f.kind for f in params.forms] == [Kind.SYMBOL, Kind.COLON, Kind.SYMBOL]
    assert params.forms[2].span.column == 16
    assert defn.span.source.name == "p.flow"


def test_token_kinds():
    text = '42 -7 1.5e3 "s" """t""" :k : sym nil true false ; c\n'
    kinds = [t.kind for t in tokens(read(text).items) if not t.is_trivia]
    assert kinds == [Kind.INT, Kind.INT, Kind.FLOAT, Kind.STRING, Kind.STRING3, Kind.KEYWORD,
                     Kind.COLON, Kind.SYMBOL, Kind.NIL, Kind.TRUE, Kind.FALSE]
    comments = [t for t in tokens(read(text).items) if t.kind is Kind.COMMENT]
    assert [c.text for c in comments] == ["; c"]


def test_commas_are_whitespace():
    tree = read("[1, 2,3]")
    vector = tree.forms[0]
    assert [f.text for f in vector.forms] == ["1", "2", "3"]
    assert [t.text for t in vector.items if t.kind is Kind.WS] == [", ", ","]


def test_a_byte_order_mark_opening_the_text_is_whitespace_and_nowhere_else():
    tree = read("\ufeff(a b)")
    assert tree.diagnostics == [] and print_tree(tree.items) == "\ufeff(a b)"
    assert [n.kind for n in tree.items] == [Kind.WS, Kind.LIST]
    broken = read("\ufeff(a b))")  # the reader's recovery path keeps it too
    assert [d.code for d in broken.diagnostics] == ["FM102"]
    inside = read("(a \ufeffb)")
    assert [d.code for d in inside.diagnostics] == ["FM106"]


def test_trivia_is_kept_and_printing_gives_the_text_back():
    text = "  ; leading\n(a ,, b ; trailing\n  [c {d e}])\n\n"
    tree = read(text)
    assert print_tree(tree.items) == text
    assert [n.kind for n in tree.items] == [Kind.WS, Kind.COMMENT, Kind.WS, Kind.LIST, Kind.WS]


def test_walk_visits_every_node_in_document_order():
    tree = read("(a [b (c)] d)")
    names = [n.text for n in walk(tree.items) if isinstance(n, Token) and n.kind is Kind.SYMBOL]
    assert names == ["a", "b", "c", "d"]
    seqs = [n.kind for n in walk(tree.items) if isinstance(n, Seq)]
    assert seqs == [Kind.LIST, Kind.VECTOR, Kind.LIST]


def test_an_unclosed_sequence_has_no_closer_and_ends_at_its_last_item():
    tree = read("(a (b c")
    outer = tree.forms[0]
    assert outer.close is None and outer.forms[1].close is None
    assert outer.end == len("(a (b c")


def test_a_broken_form_does_not_hide_the_definitions_around_it():
    text = "(def a 1)\n(def b (oops\n(def c 3)\n(def d #bad)\n(def e 5)\n"
    tree = read(text)
    names = [f.forms[1].text for f in tree.forms if isinstance(f, Seq)]
    assert names == ["a", "b", "c", "d", "e"]
    # `(def b` and `(oops` are both left open.
    assert [(d.code, d.span.line) for d in tree.diagnostics] == [("FM101", 2), ("FM101", 2), ("FM106", 4)]


def test_diagnostics_carry_notes_and_fixes():
    tree = read("(a b]")
    (diag,) = tree.diagnostics
    assert diag.code == "FM103"
    assert diag.notes[0].span.start == 0
    assert diag.fix is not None
    (edit,) = diag.fix.edits
    assert (edit.span.start, edit.span.end, edit.new_text) == (4, 5, ")")


def test_the_seed_example_reads_with_no_syntax_error():
    from conftest import TESTDATA
    tree = read((TESTDATA / "seed" / "seed.flow").read_text(encoding="utf-8"), "seed.flow")
    assert tree.diagnostics == []
    packages = [f.forms[1].text for f in tree.forms]
    assert packages == ["flowmetal.time", "com.twitter.wilson"]
