"""Positions between Flowmetal (code points) and the protocol (UTF-16 code units).

The only place positions change units. A Flowmetal offset counts code points
in a Python string; an LSP `Position` is a line and a character counted in
UTF-16 code units, so a character outside the Basic Multilingual Plane (an
emoji, `𝄞`) is one column here and two there. Lines are found with the
`Source`'s table of line starts; only the one line concerned is measured.
"""

from __future__ import annotations

from lsprotocol import types

from flowmetal.lang.source import Source, Span


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position(source: Source, offset: int) -> types.Position:
    offset = max(0, min(offset, len(source.text)))
    line, column = source.position(offset)
    start = source.line_starts[line - 1]
    return types.Position(line=line - 1, character=_utf16_len(source.text[start:start + column - 1]))


def range_of(span: Span) -> types.Range:
    return types.Range(start=position(span.source, span.start), end=position(span.source, span.end))


def offset(source: Source, pos: types.Position) -> int:
    """The code-point offset of a protocol position, clamped to its line."""
    starts = source.line_starts
    if pos.line >= len(starts):
        return len(source.text)
    start = starts[pos.line]
    end = starts[pos.line + 1] - 1 if pos.line + 1 < len(starts) else len(source.text)
    units = 0
    i = start
    while i < end and units < pos.character:
        units += 2 if ord(source.text[i]) > 0xFFFF else 1
        i += 1
    return i


def offset_in_text(text: str, pos: types.Position) -> int:
    return offset(Source(text), pos)
