"""Source texts and spans.

A `Source` is one file's text with its name. A `Span` is a half-open range of
offsets into one source. Offsets index the Python string, so they count code
points; lines and columns for people are 1-based and also count code points
(the language server converts to UTF-16 at its edge, nowhere else).

Line numbers are found by bisecting a table of line starts built once per
source, so a span costs nothing until someone asks where it is.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property


class Source:
    """The text of one file (or one editor buffer) and the name it is known by."""

    __slots__ = ("name", "text", "__dict__")

    def __init__(self, text: str, name: str = "<input>") -> None:
        self.text = text
        self.name = name

    def __repr__(self) -> str:
        return f"Source({self.name!r}, {len(self.text)} chars)"

    @cached_property
    def line_starts(self) -> list[int]:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of an offset; the end of the text is a valid offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def offset(self, line: int, column: int) -> int:
        """The offset of a 1-based (line, column), clamped to the text."""
        starts = self.line_starts
        if line < 1:
            return 0
        if line > len(starts):
            return len(self.text)
        start = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return min(start + max(column, 1) - 1, end)

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break."""
        starts = self.line_starts
        start = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    def span(self, start: int, end: int) -> Span:
        return Span(self, start, end)


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range [start, end) of offsets into a source."""

    source: Source
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    @property
    def line(self) -> int:
        return self.source.position(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.position(self.start)[1]

    @property
    def end_line(self) -> int:
        return self.source.position(self.end)[0]

    @property
    def end_column(self) -> int:
        """The column just past the span's last character (exclusive, like the offsets)."""
        return self.source.position(self.end)[1]

    def __repr__(self) -> str:
        return f"Span({self.source.name}:{self.line}:{self.column}-{self.end_line}:{self.end_column})"
