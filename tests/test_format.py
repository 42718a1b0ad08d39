"""The formatter (`flowmetal.ide.format`): golden pairs and properties.

Golden data: each `tests/testdata/format/NAME.in.flow` is formatted and must
give `NAME.out.flow` exactly (for text with syntax errors the formatter leaves
alone, the `.out.flow` is the `.in.flow` unchanged). `pytest --update-golden`
rewrites the `.out.flow` files from what the formatter gives now; review the
diff before committing it.

Properties, on every `.flow` file of the repository and on generated programs:
formatting is idempotent; the formatted text reads to the same forms (the same
non-trivia tokens, the same comments in the same order) with the same syntax
diagnostics; it has no trailing whitespace, no run of blank lines and ends with
one newline. Formatting the examples and the standard packages changes none of
the checker's diagnostics.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, TESTDATA
from flowmetal.ide.format import BLOCKING_CODES, WIDTH, format_text, format_tree
from flowmetal.lang.analysis import check_sources
from flowmetal.lang.syntax import Kind, read, tokens

FORMAT = TESTDATA / "format"
GOLDEN = sorted(FORMAT.glob("*.in.flow"))
REPOSITORY_FILES = sorted({*ROOT.glob("examples/*.flow"), *ROOT.glob("flowmetal/stdlib/*.flow"),
                           *ROOT.glob("tests/testdata/**/*.flow")} - set(FORMAT.glob("*.flow")))
WELL_FORMED = [p for p in REPOSITORY_FILES
               if not any(d.code in BLOCKING_CODES for d in read(p.read_text(encoding="utf-8")).diagnostics)]


def _rel(path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- what formatting must keep -----------------------------------------------------


def meaning(text: str):
    """What formatting may not change: the non-trivia tokens, the comments (trailing spaces aside), the syntax errors."""
    tree = read(text)
    toks = list(tokens(tree.items))
    return ([(t.kind, t.text) for t in toks if t.kind not in (Kind.WS, Kind.COMMENT)],
            [t.text.rstrip() for t in toks if t.kind is Kind.COMMENT],
            [(d.code, d.message) for d in tree.diagnostics])


def _string3_ranges(text: str) -> list[tuple[int, int]]:  # where lines may run long
    return [(t.start, t.end) for t in tokens(read(text).items) if t.kind is Kind.STRING3]


def check_formatting(text: str) -> str | None:
    """Format `text` and check every property; the formatted text (None when left alone)."""
    formatted = format_text(text)
    if formatted is None:
        assert any(d.code in BLOCKING_CODES for d in read(text).diagnostics)
        return None
    assert meaning(formatted) == meaning(text)
    assert format_text(formatted) == formatted, "formatting is not idempotent"
    if not read(text).forms and not any(t.kind is Kind.COMMENT for t in tokens(read(text).items)):
        assert formatted == ""
        return formatted
    assert formatted.endswith("\n") and not formatted.endswith("\n\n")
    # Whitespace between tokens is one space, or a line break (at most one blank line) and
    # an indentation of spaces, maybe after a comma; comments end without whitespace.
    # (Triple-quoted strings keep whatever they hold.)
    for tok in tokens(read(formatted).items):
        if tok.kind is Kind.WS:
            assert re.fullmatch(r",?(?: |\n\n? *)?", tok.text), f"whitespace {tok.text!r} at {tok.start}"
        elif tok.kind is Kind.COMMENT:
            assert tok.text == tok.text.rstrip()
    return formatted


# -- golden pairs ----------------------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN, ids=[p.name.removesuffix(".in.flow") for p in GOLDEN])
def test_golden(path, update_golden):
    text = path.read_text(encoding="utf-8")
    out = path.with_name(path.name.removesuffix(".in.flow") + ".out.flow")
    formatted = check_formatting(text)
    got = text if formatted is None else formatted
    if update_golden:
        out.write_text(got, encoding="utf-8")
        return
    assert got == out.read_text(encoding="utf-8")
    if formatted is not None:
        assert check_formatting(got) == got  # the expected output is itself canonical


def test_there_are_golden_pairs():
    assert len(GOLDEN) >= 10
    for path in GOLDEN:
        assert path.with_name(path.name.removesuffix(".in.flow") + ".out.flow").exists(), path


def test_broken_text_is_left_alone():
    for text in ["(defn f [x]\n  (g x)\n", "(f x))\n", '(f "abc\n', "(f 1abc)\n", '(f """x\n']:
        assert format_text(text) is None
        tree = read(text)
        assert format_tree(tree) == text


def test_recoverable_syntax_errors_are_formatted_and_kept():
    text = "(def  m {:a 1\n   :b})\n(f   x]\n(g \"\\q\")\n"
    formatted = check_formatting(text)
    assert formatted == "(def m {:a 1 :b})\n(f x]\n(g \"\\q\")\n"
    assert [d.code for d in read(formatted).diagnostics] == ["FM107", "FM103", "FM105"]


def test_format_tree_matches_format_text():
    for path in WELL_FORMED:
        text = path.read_text(encoding="utf-8")
        assert format_tree(read(text, path.name)) == format_text(text)


def test_empty_and_blank_text():
    assert format_text("") == ""
    assert format_text("  \n\n ,, \n") == ""
    assert format_text("\n\n;; only a comment   \n\n") == ";; only a comment\n"


def test_line_endings_and_tabs():
    assert format_text("(f\r\n\tx)\r\n") == "(f x)\n"
    assert format_text("(defn f [x]\r\n  ; why\r\n  x)\r\n") == "(defn f [x]\n  ; why\n  x)\n"


def test_deep_nesting():
    depth = 3000
    text = "(" * depth + "x" + ")" * depth + "\n"
    assert format_text(text) == text
    text = "".join(f"(f{i} a " for i in range(400)) + "x" + ")" * 400 + "\n"
    formatted = check_formatting(text)
    assert formatted.count("\n") > 100


# -- the repository's programs ------------------------------------------------------------


@pytest.mark.parametrize("path", REPOSITORY_FILES, ids=[_rel(p) for p in REPOSITORY_FILES])
def test_repository_files(path):
    check_formatting(path.read_text(encoding="utf-8"))


def test_repository_files_are_covered():
    names = {_rel(p) for p in REPOSITORY_FILES}
    assert {"examples/wilson.flow", "tests/testdata/seed/seed.flow",
            "tests/testdata/syntax/valid.flow", "flowmetal/stdlib/flowmetal.time.flow"} <= names


def _diagnostics(sources: dict[str, str]):
    return sorted((d.span.source.name, d.code, str(d.severity), d.message) for d in check_sources(sources))


@pytest.mark.parametrize("folder", ["examples", "flowmetal/stdlib"])
def test_formatted_programs_check_the_same(folder):
    sources = {_rel(p): p.read_text(encoding="utf-8") for p in sorted((ROOT / folder).glob("*.flow"))}
    assert sources
    formatted = {name: format_text(text) for name, text in sources.items()}
    assert _diagnostics(formatted) == _diagnostics(sources)
    if folder == "examples":
        assert [d for d in check_sources(formatted) if d.is_error] == []


def test_formatted_seed_checks_the_same():
    text = (TESTDATA / "seed" / "seed.flow").read_text(encoding="utf-8")
    assert _diagnostics({"seed.flow": format_text(text)}) == _diagnostics({"seed.flow": text})


def test_lines_fit_the_width_when_atoms_allow():
    for path in WELL_FORMED:
        formatted = format_text(path.read_text(encoding="utf-8"))
        inside = _string3_ranges(formatted)
        offset = 0
        for line in formatted.split("\n"):
            if len(line) > WIDTH and not any(s < offset + len(line) and offset < e for s, e in inside):
                assert ";" in line or '"' in line, (path, line)  # only a comment or a string overflows
            offset += len(line) + 1


# -- generated programs ---------------------------------------------------------------------

ATOMS = st.sampled_from([
    "x", "defn", "sleep!", "int?", "+days+", "a/b", "-", "nil", "true", "0", "-12", "3.5", ":key", ":",
    ":default", '""', '"s \\" \\n"', '"""multi\nline ;"""', "_", "a-rather-long-symbol-name-for-wrapping",
    '"a string long enough to need a line of its own, or nearly"',
])
HEADS = st.sampled_from(["defpackage", "defn", "defendpoint", "def", "defenum", "defrecord", "deftype",
                         "fn", "let", "when", "cond", "do", "match", "if", "if-not", "f", "str",
                         "with-a-very-long-function-name"])
TRIVIA = st.sampled_from([" ", " ", " ", "\n", ", ", " ; comment\n", "\n;; own line\n", "\n\n", "\t",
                          "\n\n\n  ", ",\n"])


def _seq(children):
    def build(parts):
        (opener, closer), head, items, end = parts
        body = head + " " if opener == "(" and head else ""
        for trivia, form in items:
            body += trivia + form
        if opener == "{" and len(items) % 2:
            body += " nil"
        return opener + body + end + closer
    return st.tuples(st.sampled_from(["()", "[]", "{}", "()"]), st.one_of(st.just(""), HEADS),
                     st.lists(st.tuples(TRIVIA, children), max_size=6),
                     st.sampled_from(["", "", " ", "\n", " ; before the closer\n"])).map(build)


FORMS = st.recursive(ATOMS, _seq, max_leaves=60)
PROGRAM = st.lists(st.tuples(TRIVIA, FORMS), min_size=1, max_size=5).map(
    lambda parts: "".join(t + f for t, f in parts) + "\n")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAM)
def test_generated_programs(text):
    assert check_formatting(text) is not None


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list('()[]{}"\\;:,. \n\t-+*/<>=!?_0123456789aeznilx\r')), max_size=120))
def test_any_text(text):
    """Any text at all: left alone when broken, otherwise formatted with every property kept."""
    check_formatting(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(WELL_FORMED), st.data())
def test_reindented_repository_files(path, data):
    """Any layout of the same forms formats to the same text."""
    text = path.read_text(encoding="utf-8")
    canonical = format_text(text)
    tree = read(text)
    pieces = []
    for tok in tokens(tree.items):
        if tok.kind is Kind.WS:
            newlines = tok.text.count("\n")
            commas = "," if "," in tok.text.split("\n")[0] else ""
            pad = data.draw(st.sampled_from([" ", "  ", "\t"]))
            pieces.append(commas + ("\n" * min(newlines, 2) + pad if newlines else pad))
        else:
            pieces.append(tok.text)
    assert format_text("".join(pieces)) == canonical


# -- size ------------------------------------------------------------------------------------------


def test_a_large_program():
    """The benchmark's 10,000-line program formats, and its formatted text is canonical.

    (Timing decides no test; on the development machine `format_tree` takes
    about a quarter of a second for it, reading it about as long.)
    """
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import programs
    finally:
        sys.path.pop(0)
    text = programs.flowmetal(10000)
    formatted = format_tree(read(text))
    assert meaning(formatted) == meaning(text)
    assert format_text(formatted) == formatted
