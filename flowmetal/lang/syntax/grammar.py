"""Loading the grammar: `grammar/flowmetal.peg`, the one definition of the syntax.

The file ships inside the installed package as `flowmetal/grammar/flowmetal.peg`
(see pyproject.toml); in a source checkout it is read from `grammar/` at the
top of the tree. Either way there is one file and no copy that could drift.

Fusion
------
After parsimonious builds the grammar, the loader fuses every expression made
only of terminals into a single regex terminal, bottom up:

    sequence  a b c    ->  (?>a)(?>b)(?>c)
    choice    a / b    ->  (?>a|b)
    repeat    a* a+ a? ->  (?>a)*+  (?>a)++  (?>a)?+
    literal   "x"      ->  x (escaped)

Atomic groups and possessive repetition are exactly PEG's semantics: a choice
commits to the first alternative that matches, a repetition is greedy and never
gives anything back, and nothing is retried when a later part fails. So the
fused grammar accepts the same texts with the same extents; the parser just
makes one node where it made hundreds. That is what makes a parsimonious reader
fast enough: `flat` and `nested1` to `nested3` in the grammar become single
regexes and the parser only recurses where brackets nest deeper than three. Tests compare the
trees of the fused and the plain grammar.

Fused patterns drop their named groups (only their extent matters, and Python
3.11's `re` mis-tracks captures inside possessive repeats). All terminals are
compiled with the standard library's `re` rather than the third-party `regex`
module parsimonious prefers: since Python 3.11 `re` has atomic groups and
possessive repetition, and it is about twice as fast on these patterns.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from parsimonious.expressions import (
    Compound, Expression, Literal, Lookahead, OneOf, Quantifier, Regex, Sequence,
)
from parsimonious.grammar import Grammar

GRAMMAR_FILE = "flowmetal.peg"


def grammar_path() -> Path:
    package = Path(__file__).resolve().parents[2]  # flowmetal/, above lang/syntax/
    for candidate in (package / "grammar" / GRAMMAR_FILE,          # installed
                      package.parent / "grammar" / GRAMMAR_FILE):  # source checkout
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"the grammar {GRAMMAR_FILE} is missing from the installation")


def _terminal(name: str, pattern: str) -> Regex:
    expr = Regex("", name=name)
    expr.re = re.compile(pattern)
    expr.identity_tuple = (name, expr.re)
    return expr


def _pattern(expr: Regex) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", expr.re.pattern)


def _fuse_members(expr: Compound, members: list[Expression]) -> Regex | None:
    """The one regex equivalent to `expr`, whose members are all terminals now."""
    if not all(isinstance(m, Regex) for m in members):
        return None
    parts = [_pattern(m) for m in members]  # type: ignore[arg-type]
    if isinstance(expr, Sequence):
        pattern = "".join(f"(?>{p})" for p in parts)
    elif isinstance(expr, OneOf):
        pattern = "(?>" + "|".join(parts) + ")"
    elif isinstance(expr, Quantifier):
        high = "" if expr.max == float("inf") else str(int(expr.max))
        pattern = f"(?>{parts[0]}){{{expr.min},{high}}}+"
    elif isinstance(expr, Lookahead):
        pattern = f"(?{'!' if expr.negativity else '='}{parts[0]})"
    else:
        return None
    return _terminal(expr.name, pattern)


def fuse(grammar: Grammar, combine: bool = True) -> Grammar:
    """Fuse every all-terminal expression of `grammar` into one regex, in place.

    With `combine=False` only the terminals are recompiled with `re`: the plain
    grammar, against which tests compare the fused one.
    """
    done: dict[int, Expression] = {}
    in_progress: set[int] = set()

    def visit(expr: Expression) -> Expression:
        key = id(expr)
        if key in done:
            return done[key]
        if key in in_progress:  # a recursive rule: not made of terminals
            return expr
        if isinstance(expr, Regex):
            if expr.re.flags & ~(re.UNICODE | 256):  # 256: the `regex` module's VERSION0
                raise ValueError(f"rule {expr.name!r}: regex flags are not supported")
            result: Expression = _terminal(expr.name, expr.re.pattern)
        elif isinstance(expr, Literal):
            result = _terminal(expr.name, re.escape(expr.literal))
        elif isinstance(expr, Compound):
            in_progress.add(key)
            members = [visit(m) for m in expr.members]
            in_progress.discard(key)
            result = (_fuse_members(expr, members) if combine else None) or expr
            if result is expr:
                expr.members = tuple(members)
        else:
            result = expr
        done[key] = result
        return result

    for name in list(grammar.keys()):
        grammar[name] = visit(grammar[name])
    # Members captured while their rule was still in progress point at the old
    # objects; point them at the fused ones.
    for expr in list(done.values()):
        if isinstance(expr, Compound):
            expr.members = tuple(done.get(id(m), m) for m in expr.members)
    return grammar


@cache
def load(fused: bool = True) -> Grammar:
    """The reader's grammar, built once per process (`fused=False`: without fusion)."""
    grammar = Grammar(grammar_path().read_text(encoding="utf-8"))
    return fuse(grammar, combine=fused)
