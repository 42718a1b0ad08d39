"""Diagnostics for people and for programs.

`human` prints what compilers print: `file:line:col: severity: code: message`,
the source line, and a caret under the span (to the end of the line when the
span runs on), then each note the same way. `as_json` gives the records that
`flowmetal check --format json` prints (SPEC section 6): 1-based lines and
columns counted in code points, `end_column` just past the span's last
character. Text from the program is shown with its control characters
escaped (`flowmetal.cli.terminal`), so a source file cannot drive the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowmetal.cli.terminal import shown
from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.source import Span


def _excerpt(span: Span) -> list[str]:
    line = span.line
    text = span.source.line_text(line)
    start = span.column - 1
    end = span.end_column - 1 if span.end_line == line else len(text)
    end = max(start + 1, min(end, len(text)))
    # Control characters are shown escaped (`shown`), and the caret is placed under what is
    # shown. Tabs are kept in the margin so the caret lines up in any terminal.
    before, under = shown(text[:start]), shown(text[start:end])
    margin = "".join(c if c == "\t" else " " for c in before)
    gutter = f"{line:>5} | "
    return [f"{gutter}{shown(text)}", f"{' ' * (len(gutter) - 2)}| {margin}{'^' * max(1, len(under))}"]


def human(diag: Diagnostic, names: dict[str, str] | None = None) -> str:
    """A diagnostic for people; `names` maps a source's name to the path to show for it (a
    run's files are named as they are stored, the user gave a path)."""
    span = diag.span
    names = names or {}
    lines = [shown(f"{names.get(span.source.name, span.source.name)}:{span.line}:{span.column}: "
                   f"{diag.severity}: {diag.code}: {diag.message}")]
    lines += _excerpt(span)
    for note in diag.notes:
        n = note.span
        lines.append(shown(f"{names.get(n.source.name, n.source.name)}:{n.line}:{n.column}: note: {note.message}"))
        if n.start < len(n.source.text):
            lines += _excerpt(n)
    if diag.fix is not None:
        lines.append(shown(f"      = fix: {diag.fix.message}"))
    return "\n".join(lines)


def as_json(diag: Diagnostic) -> dict:
    span = diag.span
    return {
        "file": span.source.name,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "severity": str(diag.severity),
        "code": diag.code,
        "message": diag.message,
    }


def summary(diagnostics: Iterable[Diagnostic], files: int) -> str:
    counts: dict[str, int] = {}
    for diag in diagnostics:
        counts[str(diag.severity)] = counts.get(str(diag.severity), 0) + 1
    def plural(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 or word == "info" else f"{n} {word}s"

    parts = [plural(counts[k], k) for k in ("error", "warning", "info", "hint") if counts.get(k)]
    checked = plural(files, "file")
    return f"{', '.join(parts)} in {checked}" if parts else f"no problems in {checked}"
