"""The canonical layout of Flowmetal text: `format_text(text)` and `format_tree(tree)`.

One layout, chosen by the formatter and not by the author, so that a diff shows
changes of meaning and never changes of taste. It works on the reader's
lossless tree, so it cannot lose anything the author wrote: the same forms in
the same order, every atom's text byte for byte, every comment.

What is kept
------------
- Every atom exactly as written: symbols, numbers, keywords and strings,
  including triple-quoted strings that span lines (their inner lines keep their
  own indentation, since it is part of the string).
- Every comment, in order. A comment at the end of a line stays at the end of
  the line of the form it follows (`x ; why`); a comment on a line of its own
  stays on a line of its own, indented like the forms around it (one that
  stood right after an opening bracket stays right after it). Trailing
  whitespace is trimmed from comments.
- Blank lines between forms that start on lines of their own (top-level forms,
  definitions in a package, body forms, items of a broken vector...), at most
  one in a row. Blank lines where the layout joins forms on one line go.
- A comma written right after a form, on the same line (`[num : int?, scale
  : time-unit?]`): the author's grouping. Commas are whitespace to the
  reader, so every other comma (at the start of a line, after a comment, a
  second one in a row) is dropped.

What is decided
---------------
Lines are at most 80 columns where the atoms allow it (a long string or
comment is never cut). A form that fits on the rest of its line is written on
one line, items separated by one space, unless it holds a comment or a
multi-line string, or is a definition with a body. Otherwise it is broken,
Lisp-style (like cljfmt or zprint with their defaults):

- *Body forms* keep their head and their first special arguments on the first
  line and put the body on the following lines, indented by two:
  `(defpackage NAME`, `(defn NAME [PARAMS] : RET` (likewise `defendpoint`),
  `(fn [PARAMS] : RET`, `(def NAME : TYPE`, `(defenum NAME`,
  `(defrecord NAME [FIELDS]`, `(deftype NAME TYPE`, `(let [BINDINGS]`,
  `(if TEST` (and `if-not`, `when`), `(match X`, `(cond`, `(do`. The `: RET`
  of a function goes to the next line (indented by two) when its parameter
  vector was broken or it does not fit. `cond` takes its body two by two, a
  test and its value on one line. `defpackage`, `defn`, `defendpoint`,
  `defenum`, `defrecord` and `deftype` always put their body (docstring
  included) on lines of their own; the expression forms (`(if c a b)`,
  `(fn [x] (* x 2))`, ...) stand on one line when they fit.
- *Calls* put their first argument on the head's line and align the others
  under it, unless every argument on a line of its own, indented by two, takes
  fewer lines (a head longer than 20 characters hangs its arguments only when
  that saves two lines). A keyword argument stays with its value (`:data s`).
- *Vectors and maps* put one item per line, aligned one column after the
  bracket. Maps put one key and its value per line; `let` binding vectors one
  `name value` (or `name : TYPE value`) per line; parameter and field vectors
  one `name : TYPE :default EXPR` group per line. Anywhere, a lone `:` stays
  with the type it annotates and a keyword with the value after it. Lists whose
  head is not a symbol (data, patterns) are laid out like vectors.
- Within such a group, a later item stays on the line when it fits there,
  goes to the next line (indented two past the group) when it fits only there,
  and otherwise hangs broken on the line, unless breaking it on the next line
  takes fewer lines.
- Closing brackets gather on the last line. The one exception: a comment that
  follows the last form of a sequence moves out behind the closing brackets
  (`(f x)) ; why`); when another comment already stands there, the inner one
  keeps its place and its sequence's closer goes on the next line, under its
  opener. After a comment line, too, the closer goes on the next line,
  under its opener.
- No trailing whitespace; lines end with `\\n` (carriage returns in the
  whitespace go, tabs become spaces); the text ends with exactly one newline
  (text with no forms and no comments becomes empty).

Choices between two layouts compare the lines each takes and how far they run
past column 80, so they look ahead; sequences of more than 300 tokens, and
sequences already past the margin, are judged by widths alone to keep the time
linear. No decision depends on the whitespace of the input (blank lines
included), so formatting formatted text gives the same text.

Text the reader could not read completely (an unclosed or stray bracket, an
unterminated string, an invalid token: FM101, FM102, FM104, FM106) is not
touched: `format_text` returns None and `format_tree` returns the text as it
is. Other syntax errors (a mismatched closer, an odd map, an invalid escape)
do not hide the structure, so such text is formatted and keeps its errors.

The formatter reads the tree once into a small layout tree (atoms as strings,
each sequence with its one-line width computed bottom-up) and then writes it
in one pass, top-down.
"""

from __future__ import annotations

import gc
import sys

from flowmetal.lang.syntax.reader import read
from flowmetal.lang.syntax.tree import Kind, Seq, Token, Tree, print_tree

__all__ = ["BLOCKING_CODES", "WIDTH", "format_text", "format_tree"]

WIDTH = 80
"""The line width the layout aims for."""

BLOCKING_CODES = frozenset({"FM101", "FM102", "FM104", "FM106"})
"""Syntax errors after which the text is left alone: the tree does not say what was meant."""

_INF = 1 << 40  # the width of what cannot stand on one line
_TRIAL_SIZE = 300  # sequences of more tokens than this are not laid out two ways to compare
_LONG_HEAD = 20  # a call's head longer than this prefers its arguments on lines of their own

# Body forms: how many arguments after the head stay on the head's line.
_SPECIALS = {
    "defpackage": 1, "defenum": 1, "def": 1, "deftype": 2, "defrecord": 2,
    "defn": 2, "defendpoint": 2, "fn": 1, "let": 1,
    "if": 1, "if-not": 1, "when": 1, "match": 1, "cond": 0, "do": 0,
}
# Forms whose specials may be followed by `: TYPE` on the head's line too.
_TYPED = frozenset({"defn", "defendpoint", "fn", "def"})
# Definitions whose body always goes on lines of its own.
_ALWAYS_BROKEN = frozenset({"defpackage", "defn", "defendpoint", "defenum", "defrecord", "deftype"})
# Which argument (counting the head as 0) is a parameter or binding vector.
_PARAMS_AT = {"defn": 2, "defendpoint": 2, "defrecord": 2, "fn": 1}
_BINDINGS_AT = {"let": 1}

_WS, _COMMENT = Kind.WS, Kind.COMMENT

# The roles a vector can have, which decide how its items group.
_PARAMS, _BINDINGS = 1, 2
# Layouts of a list.
_DATA, _CALL, _BODY = 0, 1, 2


def format_text(text: str) -> str | None:
    """The canonical layout of `text`, or None when it has syntax errors the formatter leaves alone."""
    tree = read(text)
    if any(diag.code in BLOCKING_CODES for diag in tree.diagnostics):
        return None
    return format_tree(tree)


def format_tree(tree: Tree) -> str:
    """The canonical layout of a tree's text (its text unchanged when it could not be read whole)."""
    depth = _depth(tree.items)
    if depth < 0 or any(diag.code in BLOCKING_CODES for diag in tree.diagnostics):
        return print_tree(tree.items)
    limit = sys.getrecursionlimit()
    need = 4 * depth + 200
    if need > limit:
        sys.setrecursionlimit(need)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # many small objects, none freed until the end: collections would only cost time
    try:
        builder = _Builder()
        top = builder.elements(tree.items)
        builder.convert(top, [i for i, el in enumerate(top) if el.node is not None], {})
        writer = _Writer({})
        writer.file(top)
        return "".join(writer.out)
    finally:
        if gc_was_enabled:
            gc.enable()
        if need > limit:
            sys.setrecursionlimit(limit)


def _depth(items: list) -> int:
    """How deep sequences nest, or -1 when there is broken text or an unclosed sequence."""
    deepest = 0
    stack = [(items, 1)]
    error = Kind.ERROR
    while stack:
        nodes, level = stack.pop()
        for node in nodes:
            if type(node) is Seq:
                if node.close is None:
                    return -1
                if level > deepest:
                    deepest = level
                stack.append((node.items, level + 1))
            elif node.kind is error:
                return -1
    return deepest


# -- the layout tree ---------------------------------------------------------------


class _El:
    """One item of a sequence: a form (`node`) or, when `node` is None, a comment line.

    `comment` is the comment at the end of the form's line (for a comment line:
    its text), `comma` whether a comma follows the form, `blank` whether a
    blank line stood before the item, `w` the form's one-line width.
    """

    __slots__ = ("node", "comment", "comma", "blank", "w")

    def __init__(self, node, comment: str | None, blank: bool) -> None:
        self.node = node
        self.comment = comment
        self.comma = False
        self.blank = blank
        self.w = 0

    @property
    def tc(self) -> str | None:
        """The comment written after this form when it is not the last of its sequence."""
        if self.comment is not None:
            return self.comment
        node = self.node
        return node.hoisted if type(node) is _Box else None


class _Box:
    """A sequence of the layout tree.

    `w0` is its one-line width, `w1` the same when the comment that ends it
    cannot move out behind its closer (`_INF` when it cannot stand on one line).
    `hoisted` is the comment that ends it and is written after its closer by
    whoever holds it.
    """

    __slots__ = ("open", "close", "kind", "role", "els", "layout", "head", "nspec", "ret_colon",
                 "hoisted", "w0", "w1", "size")

    def __init__(self, open_: str, close: str, kind: Kind) -> None:
        self.open = open_
        self.close = close
        self.kind = kind
        self.role = 0  # _PARAMS or _BINDINGS for such a vector
        self.els: list[_El] = []
        self.layout = _DATA
        self.head = ""
        self.nspec = 0
        self.ret_colon = -1  # index in els of the `:` of a `: RET` on the head's line
        self.hoisted: str | None = None
        self.w0 = self.w1 = _INF
        self.size = 1  # tokens in it, nested ones included


class _Builder:
    """The lossless tree to the layout tree: elements, comments, commas, blank lines, widths."""

    def elements(self, items: list) -> list[_El]:
        els: list[_El] = []
        prev: _El | None = None  # the last item, when it is a form
        newlines = 0  # line breaks since the last item
        ws, comment, el_type = _WS, _COMMENT, _El
        for item in items:
            kind = item.kind
            if kind is ws:
                text = item.text
                if "," in text and prev is not None and not newlines and not prev.comma:
                    cut = text.find("\n")
                    if "," in (text if cut < 0 else text[:cut]):
                        prev.comma = True
                if "\n" in text:
                    newlines += text.count("\n")
            elif kind is comment:
                text = item.text.rstrip()
                if prev is not None and not newlines:
                    prev.comment = text
                else:
                    els.append(el_type(None, text, newlines >= 2))
                prev = None
                newlines = 0
            else:
                prev = el_type(item, None, newlines >= 2)
                els.append(prev)
                newlines = 0
        return els

    def box(self, seq: Seq, role: int) -> _Box:
        box = _Box(seq.open.text, seq.close.text, seq.kind)
        box.role = role
        els = box.els = self.elements(seq.items)
        forms = [i for i, el in enumerate(els) if el.node is not None]
        roles: dict[int, int] = {}
        if seq.kind is Kind.LIST and forms:
            first = els[forms[0]].node
            if type(first) is Token and first.kind is Kind.SYMBOL:
                head = box.head = first.text
                nspec = _SPECIALS.get(head)
                if nspec is None:
                    box.layout = _CALL
                else:
                    box.layout = _BODY
                    if head in _TYPED and len(forms) > nspec + 2:
                        colon = els[forms[nspec + 1]].node
                        if type(colon) is Token and colon.kind is Kind.COLON:
                            box.ret_colon = forms[nspec + 1]
                            nspec += 2
                    box.nspec = min(nspec, len(forms) - 1)
                    at = _PARAMS_AT.get(head)
                    if at is not None and at < len(forms):
                        roles[forms[at]] = _PARAMS
                    at = _BINDINGS_AT.get(head)
                    if at is not None and at < len(forms):
                        roles[forms[at]] = _BINDINGS
        box.size = 1 + self.convert(els, forms, roles)
        self._widths(box, forms)
        return box

    def convert(self, els: list[_El], forms: list[int], roles: dict[int, int]) -> int:
        """Turn the forms' nodes into layout nodes (atoms into their text, sequences into boxes); their size."""
        size = len(forms)
        for i in forms:
            el = els[i]
            node = el.node
            if type(node) is Seq:
                role = roles.get(i, 0) if node.kind is Kind.VECTOR else 0
                sub = el.node = self.box(node, role)
                el.w = sub.w0 + el.comma
                size += sub.size
            else:
                text = el.node = node.text
                el.w = (_INF if "\n" in text else len(text)) + el.comma
        return size

    def _widths(self, box: _Box, forms: list[int]) -> None:
        els = box.els
        if not els:
            box.w0 = box.w1 = 2
            return
        last = els[-1]
        box.hoisted = None if last.node is None else last.tc
        if len(forms) != len(els):  # a comment line
            return
        if box.layout == _BODY and box.head in _ALWAYS_BROKEN and len(forms) > 1 + box.nspec:
            return
        total = 1 + len(els)  # brackets and the spaces between items
        for el in els[:-1]:
            if el.tc is not None:
                return
            total += el.w
        node = last.node
        if type(node) is _Box:
            covered = node.w1 + last.comma
            box.w0 = total + (covered if last.comment is not None else last.w)
            box.w1 = _INF if last.comment is not None else total + covered
        else:
            box.w0 = total + last.w
            box.w1 = _INF if last.comment is not None else box.w0


# -- grouping ------------------------------------------------------------------------


def _is_keyword(node) -> bool:
    return type(node) is str and len(node) > 1 and node[0] == ":"


def _is_marker(node) -> bool:
    """A keyword or the lone `:`: what takes a value rather than being one."""
    return type(node) is str and node[:1] == ":"


def _groups(els: list[_El], idx: list[int], how: object) -> list[list[int]]:
    """Cut the forms at `idx` into the groups that share a line when their sequence is broken.

    `how` is "pairs" (maps, `cond`), "body", "args" (calls and plain vectors),
    `_PARAMS` or `_BINDINGS`.
    """
    nodes = [els[i].node for i in idx]
    n = len(nodes)
    groups: list[list[int]] = []
    i = 0
    while i < n:
        start = i
        if how == "pairs":
            i += 2
        else:
            node = nodes[i]
            i += 1
            if i < n and (node == ":" or (how == "args" and _is_keyword(node))) and not _is_marker(nodes[i]):
                i += 1  # `: TYPE`, `:key value`
            while how != "body" and i + 1 < n and nodes[i] == ":":
                i += 2  # `x : TYPE`
            if how == _PARAMS:
                while i + 1 < n and _is_keyword(nodes[i]) and not _is_marker(nodes[i + 1]):
                    i += 2  # `:default EXPR`
            elif how == _BINDINGS and i < n:
                i += 1  # the bound value
        groups.append(idx[start:i])
    return groups


# -- writing -------------------------------------------------------------------------


class _Writer:
    """Writes layout nodes, tracking the column, the lines written and how far they overflow.

    `tail` is how many columns must follow a node on its last line (closers,
    a comma); `covered` says that the comment ending a node cannot move out
    behind its closer. To compare two layouts, each is written by a trial
    writer of its own; in trials the broken sequences inside are remembered by
    (box, column, tail, covered), so each is written once per column it is
    tried at. Outside trials everything is written straight out.
    """

    __slots__ = ("out", "col", "line", "over", "cache", "trial")

    def __init__(self, cache: dict, col: int = 0, trial: bool = False) -> None:
        self.out: list[str] = []
        self.col = col
        self.line = 0
        self.over = 0  # columns past WIDTH, summed over the finished lines
        self.cache = cache
        self.trial = trial  # writing one of several layouts, to compare them

    def put(self, text: str) -> None:
        self.out.append(text)
        self.col += len(text)

    def atom(self, text: str) -> None:
        self.out.append(text)
        if "\n" not in text:
            self.col += len(text)
            return
        lines = text.split("\n")
        for n, part in enumerate(lines[:-1]):
            end = self.col + len(part) if n == 0 else len(part)
            if end > WIDTH:
                self.over += end - WIDTH
        self.line += len(lines) - 1
        self.col = len(lines[-1])

    def nl(self, indent: int, blank: bool = False) -> None:
        if self.col > WIDTH:
            self.over += self.col - WIDTH
        self.out.append(("\n\n" if blank else "\n") + " " * indent)
        self.line += 1  # blank lines are not counted: no layout decision may depend on them
        self.col = indent

    def absorb(self, other: _Writer) -> None:
        self.out.append("".join(other.out))
        self.line += other.line
        self.over += other.over
        self.col = other.col

    def file(self, els: list[_El]) -> None:
        """Top-level items: each on lines of its own, from column 0."""
        for n, el in enumerate(els):
            if n:
                self.nl(0, el.blank)
            if el.node is None:
                self.put(el.comment)
                continue
            self.emit(el.node, el.comma, el.comment is not None)
            if el.comma:
                self.put(",")
            tc = el.tc
            if tc is not None:
                self.put(" " + tc)
        if els:
            self.out.append("\n")

    def emit(self, node, tail: int, covered: bool) -> None:
        if type(node) is str:
            self.atom(node)
            return
        col = self.col
        if col + (node.w1 if covered else node.w0) + tail <= WIDTH:
            self.put(_flat(node))
            return
        key = (node, col, tail, covered)
        done = self.cache.get(key)
        if done is None:
            if not self.trial:  # written once: straight out
                self.broken(node, tail, covered)
                return
            sub = _Writer(self.cache, col, True)
            sub.broken(node, tail, covered)
            done = self.cache[key] = ("".join(sub.out), sub.line, sub.over, sub.col)
        text, lines, over, end = done
        self.out.append(text)
        self.line += lines
        self.over += over
        self.col = end

    def score(self, tail: int) -> tuple[int, int]:
        """(overflow, lines) of what this writer wrote, `tail` more columns following it."""
        return self.over + max(0, self.col + tail - WIDTH), self.line

    def cost(self, node, col: int, tail: int, covered: bool) -> tuple[int, int]:
        """(overflow, lines) of writing `node` at `col`."""
        sub = _Writer(self.cache, col, True)
        sub.emit(node, tail, covered)
        return sub.score(tail)

    def broken(self, box: _Box, tail: int, covered: bool) -> None:
        """Write a sequence that does not fit on the rest of its line."""
        col = self.col
        self.put(box.open)
        els = box.els
        start = 0
        while start < len(els) and els[start].node is None:  # comment lines before the first form
            if start:
                self.nl(col + 1, els[start].blank)
            self.put(els[start].comment)
            start += 1
        if start == len(els):
            if start:
                self.nl(col)
            self.put(box.close)
            return
        if start:
            self.nl(col + 1)
        forms = [i for i in range(start, len(els)) if els[i].node is not None]
        gid = [0] * len(els)
        flow = [True] * len(els)
        layout = box.layout
        if layout == _BODY:
            for i in forms[:1 + box.nspec]:
                flow[i] = False
            if box.ret_colon >= 0:
                flow[box.ret_colon] = True
            how = "pairs" if box.head == "cond" else "body"
            groups = _groups(els, forms[1 + box.nspec:], how)
            _number(groups, gid, flow, els, 1)
            self.items(box, start, gid, flow, col + 2, col + 2, col + 4, tail, covered, col)
        elif layout == _CALL and len(forms) > 1:
            h = forms[0]
            groups = _groups(els, forms[1:], "args")
            _number(groups, gid, flow, els, 0)
            hang = col + 1 + els[h].w + 1
            indent = col + 2
            if els[h].tc is not None or els[h + 1].node is None:
                gid[h] = -1
                self.items(box, start, gid, flow, indent, indent + 2, indent + 2, tail, covered, col)
                return
            hang_flow = flow[:]
            hang_flow[groups[0][0]] = False
            long_head = els[h].w > _LONG_HEAD
            if self.col > WIDTH or box.size > _TRIAL_SIZE:
                # Past the margin (no use trying) or too big to try both ways: judge by widths.
                if long_head or self._misfits(box, groups, hang, tail, covered) > \
                        self._misfits(box, groups, indent, tail, covered):
                    gid[h] = -1
                    self.items(box, start, gid, flow, indent, indent + 2, indent + 2, tail, covered, col)
                else:
                    self.items(box, start, gid, hang_flow, hang, hang + 2, hang + 2, tail, covered, col)
                return
            hanging = _Writer(self.cache, self.col, True)
            hanging.items(box, start, gid, hang_flow, hang, hang + 2, hang + 2, tail, covered, col)
            if not long_head and hanging.score(tail) == (0, len(groups) - 1):
                self.absorb(hanging)  # one line per group: nothing can beat it
                return
            gid[h] = -1
            indented = _Writer(self.cache, self.col, True)
            indented.items(box, start, gid, flow, indent, indent + 2, indent + 2, tail, covered, col)
            over, lines = hanging.score(tail)
            if long_head:  # hangs only when that saves two lines
                better = indented.score(tail) <= (over, lines + 1)
            else:
                better = indented.score(tail) < (over, lines)
            self.absorb(indented if better else hanging)
        else:
            how = "pairs" if box.kind is Kind.MAP else box.role or "args"
            _number(_groups(els, forms, how), gid, flow, els, 0)
            self.items(box, start, gid, flow, col + 1, col + 3, col + 3, tail, covered, col)

    @staticmethod
    def _misfits(box: _Box, groups: list[list[int]], at: int, tail: int, covered: bool) -> int:
        """How many of a call's argument groups would not fit on one line at column `at`."""
        els = box.els
        last = len(els) - 1
        count = 0
        for group in groups:
            width = len(group) - 1
            if group[-1] - group[0] + 1 != len(group):
                width = _INF  # a comment line inside
            for i in group:
                el = els[i]
                if i == last:
                    width += _node_width(el.node, covered or el.comment is not None) + el.comma + 1 + tail
                elif i != group[-1] and el.tc is not None:
                    width = _INF
                else:
                    width += el.w
            if at + width > WIDTH:
                count += 1
        return count

    def items(self, box: _Box, start: int, gid: list[int], flow: list[bool], indent: int,
              cont0: int, cont: int, tail: int, covered: bool, col: int) -> None:
        """Write `box.els[start:]` (the first a form, written where the writer stands) and the closer.

        A form of a new group starts a line at `indent`; a form of the current
        group follows on its line when it fits or when `flow` keeps it there,
        else goes on the next line at `cont` (`cont0` in the first group) when
        it fits there or when that costs fewer lines.
        """
        els = box.els
        last = len(els) - 1
        first_gid = gid[start]
        prev_gid = first_gid
        need_nl = False  # a comment ends the line
        prev_multi = False  # the previous form took several lines
        dangle = False
        first = True
        for i in range(start, last + 1):
            el = els[i]
            node = el.node
            if node is None:
                self.nl(indent, el.blank)
                self.put(el.comment)
                need_nl = True
                continue
            g = gid[i]
            item_tail, item_covered, dangle = _placement(el, i == last, tail, covered)
            if first:
                first = False
            elif g != prev_gid:
                self.nl(indent, el.blank)
            elif need_nl or prev_multi:
                self.nl(cont0 if g == first_gid else cont)
            elif flow[i]:
                here = cont0 if g == first_gid else cont
                self._place(box, gid, i, here, item_tail, item_covered, tail, covered)
            else:
                self.put(" ")
            prev_gid = g
            line = self.line
            self.emit(node, item_tail, item_covered)
            if el.comma:
                self.put(",")
            prev_multi = self.line != line
            need_nl = False
            if i == last:
                if dangle:
                    self.put(" " + el.comment)
            else:
                tc = el.tc
                if tc is not None:
                    self.put(" " + tc)
                    need_nl = True
        if dangle or els[last].node is None:
            self.nl(col)
        self.put(box.close)

    def _place(self, box: _Box, gid: list[int], i: int, here: int, tail: int, covered: bool,
               box_tail: int, box_covered: bool) -> None:
        """Put form `i` of a group after a space, or on the next line at column `here`.

        A marker (`:` or a keyword) moves together with the value after it.
        """
        els = box.els
        node = els[i].node
        width = _node_width(node, covered) + tail
        value = None
        if _is_marker(node) and i + 1 < len(els) and els[i + 1].node is not None and gid[i + 1] == gid[i]:
            value = i + 1  # `: TYPE`, `:key value`: one unit
            v_tail, v_covered, _ = _placement(els[value], value == len(els) - 1, box_tail, box_covered)
            width = len(node) + tail + 1 + _node_width(els[value].node, v_covered) + v_tail
        if self.col + 1 + width <= WIDTH:
            self.put(" ")
            return
        if here + width <= WIDTH:
            self.nl(here)
            return
        if here >= self.col + 1 or self.col > WIDTH:
            self.put(" ")
            return
        # Fits nowhere on one line: hang it broken, unless the next line costs fewer lines.
        if value is None:
            target, lead, t_tail, t_covered = node, 0, tail, covered
        else:
            target = els[value].node
            lead = len(node) + tail + 1
            t_tail, t_covered = v_tail, v_covered
        if type(target) is str or target.size > _TRIAL_SIZE:
            self.put(" ")
            return
        stay = self.cost(target, self.col + 1 + lead, t_tail, t_covered)
        move = self.cost(target, here + lead, t_tail, t_covered)
        if (move[0], move[1] + 1) < stay:
            self.nl(here)
        else:
            self.put(" ")


def _number(groups: list[list[int]], gid: list[int], flow: list[bool], els: list[_El], first: int) -> None:
    """Give each group its number, and keep a value on the line of the marker before it."""
    for g, group in enumerate(groups, start=first):
        prev = None
        for i in group:
            gid[i] = g
            if prev is not None and _is_marker(prev):
                flow[i] = False
            prev = els[i].node


def _placement(el: _El, is_last: bool, tail: int, covered: bool) -> tuple[int, bool, bool]:
    """(what follows the form on its line, whether its ending comment is covered, whether its closer dangles)."""
    if is_last:
        dangle = covered and el.comment is not None
        return el.comma + (0 if dangle else 1 + tail), covered or el.comment is not None, dangle
    return el.comma, el.comment is not None, False


def _node_width(node, covered: bool) -> int:
    if type(node) is str:
        return _INF if "\n" in node else len(node)
    return node.w1 if covered else node.w0


def _flat(box: _Box) -> str:
    parts = [box.open]
    for n, el in enumerate(box.els):
        if n:
            parts.append(" ")
        node = el.node
        parts.append(node if type(node) is str else _flat(node))
        if el.comma:
            parts.append(",")
    parts.append(box.close)
    return "".join(parts)
