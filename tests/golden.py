"""Expectations written in `.flow` files, on the lines they concern.

An expectation is a comment line of carets under the text it is about:

    (g "a\\q" x]
    ;;   ^^ error FM105: invalid escape `\\q` in string: ...

The first caret's column is the diagnostic's column on the nearest line above
that is not an expectation; the number of carets is the span's width on that
line (to the line's end when the span runs on). Then come the severity, the
code and the exact message. For columns 1 and 2, where the comment's own
`;;` stands, the column is written after the carets: `;; ^@1 error ...`.
When the line below would sit inside the broken text itself (an unterminated
triple-quoted string swallows what follows), the expectation goes above its
line with `v` instead of `^`.

`pytest --update-golden` rewrites the expectations of every file from what the
reader reports now; review the diff before committing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flowmetal.lang.diagnostics import Diagnostic

EXPECTATION = re.compile(r"^(?P<lead>\s*;;)(?P<pad>\s*)(?P<marks>\^+|v+)(?:@(?P<col>\d+))?\s+(?P<severity>error|warning|info|hint)"
                         r"\s+(?P<code>FM\d+):\s(?P<message>.*)$")


@dataclass(frozen=True, order=True)
class Expected:
    line: int
    column: int
    width: int
    severity: str
    code: str
    message: str


def _is_expectation(line: str) -> bool:
    return EXPECTATION.match(line) is not None


def parse(text: str) -> tuple[str, list[Expected]]:
    """The text without its expectation lines, and the expectations (lines of that text)."""
    lines = text.split("\n")
    kept: list[str] = []
    kept_number: dict[int, int] = {}  # original index -> 1-based line in the stripped text
    for i, line in enumerate(lines):
        if not _is_expectation(line):
            kept.append(line)
            kept_number[i] = len(kept)
    expected = []
    for i, line in enumerate(lines):
        m = EXPECTATION.match(line)
        if not m:
            continue
        step = -1 if m["marks"][0] == "^" else 1
        j = i + step
        while 0 <= j < len(lines) and _is_expectation(lines[j]):
            j += step
        if j not in kept_number:
            raise ValueError(f"expectation on line {i + 1} concerns no line")
        column = int(m["col"]) if m["col"] else len(m["lead"]) + len(m["pad"]) + 1
        expected.append(Expected(kept_number[j], column, len(m["marks"]), m["severity"], m["code"], m["message"]))
    return "\n".join(kept), sorted(expected)


def actual(diagnostics: list[Diagnostic]) -> list[Expected]:
    found = []
    for diag in diagnostics:
        span = diag.span
        line_len = len(span.source.line_text(span.line))
        end = span.end_column if span.end_line == span.line else line_len + 1
        width = max(1, min(end, line_len + 1) - span.column)
        found.append(Expected(span.line, span.column, width, str(diag.severity), diag.code, diag.message))
    return sorted(found)


def render(stripped: str, found: list[Expected], above: set[int] = frozenset()) -> str:
    """`stripped` with an expectation line for each of `found` (lines in `above` get theirs before)."""
    lines = stripped.split("\n")
    after: dict[int, list[str]] = {}
    before: dict[int, list[str]] = {}
    for e in found:
        mark = "v" if e.line in above else "^"
        if e.column >= 3:
            text = f";;{' ' * (e.column - 3)}{mark * e.width} {e.severity} {e.code}: {e.message}"
        else:  # the comment's own `;;` stands where the caret would
            text = f";; {mark * e.width}@{e.column} {e.severity} {e.code}: {e.message}"
        (before if e.line in above else after).setdefault(e.line, []).append(text)
    out = []
    for number, line in enumerate(lines, start=1):
        out += before.get(number, [])
        out.append(line)
        out += after.get(number, [])
    return "\n".join(out)
