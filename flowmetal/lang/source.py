"""Source texts and spans.

A `Source` is one file's text with its name. A `Span` is a half-open range of
offsets into one source. Offsets index the Python string, so they count code
points; lines and columns for people are 1-based and also count code points
(the language server converts to UTF-16 at its edge, nowhere else).

Line numbers are found by bisecting a table of line starts built once per
source, so a span costs nothing until someone asks where it is.

Edits. An editor changes a source a little at a time, and re-reading a whole
10,000-line file on each keystroke would be wasteful, so a `Source` can be
edited in place (`edit`), and positions taken before an edit stay right after
it: every offset is recorded with the source's *generation* at the time, and
is translated through the edits made since when it is read. Nodes of the
syntax tree and spans do this, so the forms an edit did not touch are kept as
they are, and only the edited form is read again. Translation costs one
comparison for positions of the current generation, and a walk over the edits
since otherwise; after `COMPACT_AFTER` edits the owner of the source is
expected to read it afresh (`needs_compaction`).
"""

from __future__ import annotations

import bisect
from functools import cached_property


COMPACT_AFTER = 200


class Source:
    """The text of one file (or one editor buffer) and the name it is known by."""

    __slots__ = ("name", "text", "generation", "edits", "__dict__")

    def __init__(self, text: str, name: str = "<input>") -> None:
        self.text = text
        self.name = name
        self.generation = 0
        # (generation it made, start, old end, new end): the edits, oldest first.
        self.edits: list[tuple[int, int, int, int]] = []

    def edit(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] with `new_text`, moving every later position along."""
        self.text = self.text[:start] + new_text + self.text[end:]
        self.generation += 1
        self.edits.append((self.generation, start, end, start + len(new_text)))
        self.__dict__.pop("line_starts", None)

    @property
    def needs_compaction(self) -> bool:
        return len(self.edits) > COMPACT_AFTER

    def translate(self, offset: int, generation: int) -> int:
        """Where an offset taken at `generation` is now. A position inside a replaced
        range moves to the replacement's end (its old meaning is gone)."""
        for gen, start, old_end, new_end in self.edits:
            if gen <= generation:
                continue
            if offset >= old_end:
                offset += new_end - old_end
            elif offset > start:
                offset = new_end
        return offset

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


class Span:
    """A half-open range [start, end) of offsets into a source, kept right across edits."""

    __slots__ = ("source", "_start", "_end", "_gen")

    def __init__(self, source: Source, start: int, end: int, generation: int | None = None) -> None:
        self.source = source
        self._start = start
        self._end = end
        self._gen = source.generation if generation is None else generation

    @property
    def start(self) -> int:
        if self._gen == self.source.generation:
            return self._start
        return self.source.translate(self._start, self._gen)

    @property
    def end(self) -> int:
        if self._gen == self.source.generation:
            return self._end
        return self.source.translate(self._end, self._gen)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Span) and other.source is self.source
                and other.start == self.start and other.end == self.end)

    def __hash__(self) -> int:
        return hash((id(self.source), self.start, self.end))

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
