"""The lossless syntax tree the reader returns.

Two kinds of node: a `Token` (an atom, a bracket, trivia or a piece of broken
text) and a `Seq` (a list, vector or map: its opening bracket, every item
inside including trivia, and its closing bracket, which is missing when the
text never closed it). Nothing is dropped: concatenating the text of a tree's
nodes gives back the source byte for byte, whitespace, commas, comments and
broken text included. The formatter and the language server build on that.

Nodes hold absolute offsets into their `Source` and a reference to it, so any
node can say where it is (`node.span.line`, `node.span.column`) without the
tree being walked again. The tree says nothing about meaning: `defn` is just a
symbol here; the resolver gives it meaning.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.source import Source, Span


class Kind(enum.StrEnum):
    # Kinds are hashed in every set and dict lookup of every layer: use str's C hash
    # rather than Enum's Python-level one (equal values, several times faster).
    __hash__ = str.__hash__

    # Trivia.
    WS = "ws"
    COMMENT = "comment"
    # Atoms.
    SYMBOL = "symbol"
    KEYWORD = "keyword"
    COLON = "colon"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    STRING3 = "string3"
    NIL = "nil"
    TRUE = "true"
    FALSE = "false"
    # Brackets.
    OPEN = "open"
    CLOSE = "close"
    # Text the reader could not make a token of (reported by a diagnostic).
    ERROR = "error"
    # Sequences.
    LIST = "list"
    VECTOR = "vector"
    MAP = "map"


TRIVIA = frozenset({Kind.WS, Kind.COMMENT})
ATOMS = frozenset({Kind.SYMBOL, Kind.KEYWORD, Kind.COLON, Kind.INT, Kind.FLOAT,
                   Kind.STRING, Kind.STRING3, Kind.NIL, Kind.TRUE, Kind.FALSE})
SEQ_OF_OPENER = {"(": Kind.LIST, "[": Kind.VECTOR, "{": Kind.MAP}
CLOSER_OF = {Kind.LIST: ")", Kind.VECTOR: "]", Kind.MAP: "}"}


class Token:
    """An atom, a bracket, trivia, or broken text, exactly as written.

    `start` and `end` are offsets into the source as it is now: they are stored
    with the source's generation and translated through any edit made since
    (see `flowmetal.lang.source`).
    """

    __slots__ = ("kind", "source", "_start", "_end", "gen", "text")

    def __init__(self, kind: Kind, source: Source, start: int, end: int, text: str) -> None:
        self.kind = kind
        self.source = source
        self._start = start
        self._end = end
        self.gen = source.generation
        self.text = text

    @property
    def start(self) -> int:
        if self.gen == self.source.generation:
            return self._start
        return self.source.translate(self._start, self.gen)

    @property
    def end(self) -> int:
        if self.gen == self.source.generation:
            return self._end
        return self.source.translate(self._end, self.gen)

    @property
    def span(self) -> Span:
        return Span(self.source, self._start, self._end, self.gen)

    @property
    def is_trivia(self) -> bool:
        return self.kind in TRIVIA

    def __repr__(self) -> str:
        return f"Token({self.kind.value}, {self.text!r}@{self.start})"


class Seq:
    """A list `( )`, vector `[ ]` or map `{ }`.

    `items` holds everything between the brackets, trivia included; `forms`
    only the meaningful nodes. `close` is None when the text never closed it.
    """

    __slots__ = ("kind", "source", "open", "items", "close", "_end_node")

    def __init__(self, kind: Kind, open: Token, items: list[Node], close: Token | None) -> None:
        self.kind = kind
        self.source = open.source
        self.open = open
        self.items = items
        self.close = close
        self._end_node = close if close is not None else (items[-1] if items else open)

    @property
    def start(self) -> int:
        return self.open.start

    @property
    def end(self) -> int:
        return self._end_node.end

    @property
    def span(self) -> Span:
        return Span(self.source, self.start, self.end)

    @property
    def forms(self) -> list[Node]:
        return [n for n in self.items if n.kind not in TRIVIA]

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    @property
    def is_trivia(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Seq({self.kind.value}, {len(self.items)} items@{self.start})"


Node = Token | Seq


@dataclass(slots=True)
class Tree:
    """What reading one source gives: its top-level nodes and every syntax problem."""

    source: Source
    items: list[Node]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def forms(self) -> list[Node]:
        return [n for n in self.items if n.kind not in TRIVIA]

    def walk(self) -> Iterator[Node]:
        return walk(self.items)


def walk(items: list[Node]) -> Iterator[Node]:
    """Every node in document order, a sequence before its items; brackets are not yielded.

    Iterative, so that no nesting depth can exhaust the Python stack.
    """
    stack: list[Iterator[Node]] = [iter(items)]
    while stack:
        for node in stack[-1]:
            yield node
            if type(node) is Seq:
                stack.append(iter(node.items))
                break
        else:
            stack.pop()


def tokens(items: list[Node]) -> Iterator[Token]:
    """Every token in document order, closing brackets included."""
    stack: list[tuple[Iterator[Node], Token | None]] = [(iter(items), None)]
    while stack:
        it, close = stack[-1]
        for node in it:
            if type(node) is Seq:
                yield node.open
                stack.append((iter(node.items), node.close))
                break
            yield node
        else:
            stack.pop()
            if close is not None:
                yield close


def print_tree(items: list[Node]) -> str:
    """The exact text the nodes were read from."""
    return "".join(t.text for t in tokens(items))
