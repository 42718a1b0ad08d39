"""The reader: text to a lossless syntax tree and diagnostics. It never raises.

How it works
------------
1. *Fast path.* The whole text is parsed with the grammar (`grammar/flowmetal.peg`
   via parsimonious). The grammar is a superset of the valid syntax (any closer
   closes any opener, maps may be odd), so most well-bracketed text parses; the
   parse tree is converted to `Token`s and `Seq`s, and the problems the superset
   let through are reported while converting: mismatched brackets, odd maps,
   invalid escapes in strings. The grammar's `flat` stretches (atoms and
   innermost brackets, fused into one regex by the loader) are cut into tokens
   by `_build`, the same loop that recovery uses, run over text known to be good.

2. *Recovery.* parsimonious stops at the first error and says little about it,
   so when the parse fails (an unclosed or stray bracket, an unterminated
   string, a character no token starts with) the reader falls back to:

   a. *Split.* A bracket-aware scan with the grammar's own terminals (`token`,
      `open`, `close` and the `broken` rule for unterminated strings and invalid
      text) cuts the text into top-level forms: a form ends where its brackets
      balance. One heuristic keeps a missing closer from swallowing the rest of
      the file: an opening `(` in column 1 while a form is still open starts a
      new top-level form (the way everyone lays out Lisp), and the open form is
      reported unclosed where it began.
   b. *Per form.* Each piece is parsed with the grammar on its own. A piece that
      parses is converted exactly as in the fast path; a piece that does not is
      built token by token by `_build`, a stack machine over the same terminals
      that turns every broken piece of text into an ERROR token with a
      diagnostic and keeps the rest of the form's structure. When the form
      lacks closers, the layout places each missing one (see `_build`), so a
      missing `)` inside a definition leaves the definitions after it whole.

   So one broken form hides neither the errors nor the definitions of the
   others, and every error gets its own diagnostic with a precise span.

Unterminated strings: a `"` string may not span lines, so an unclosed one ends
at its line's end. An unclosed triple-quoted string runs on to the next line that starts with
`(` (the next top-level form) or the end of the text; the brackets it swallowed
are not reported again as unclosed, since the string is the one mistake.

3. *Limits.* parsimonious recurses once per nesting level; text nested deeper
   than the Python stack allows is built by `_build`, which does not recurse.
   The garbage collector is paused while reading: the reader allocates many
   small objects and frees none of them, so collections would only cost time.
"""

from __future__ import annotations

import gc
import re
import unicodedata

from parsimonious.exceptions import ParseError

from flowmetal.lang import diagnostics as d
from flowmetal.lang.diagnostics import Diagnostic, Edit, Fix, Note
from flowmetal.lang.source import Source
from flowmetal.lang.syntax import grammar as _grammar
from flowmetal.lang.syntax.tree import CLOSER_OF, SEQ_OF_OPENER, Kind, Node, Seq, Token, Tree

_G = _grammar.load()
_FILE = _G["file"]
_FLAT = _G["flat"]
_RUN = _G["run"].re
_TOKEN = _G["token"].re
# Every lexeme, good or broken, so that scanning a range covers all of it.
_LEXEME = re.compile("|".join((
    _TOKEN.pattern,
    f"(?P<open>{_G['open'].re.pattern})",
    f"(?P<close>{_G['close'].re.pattern})",
    _G["broken"].re.pattern,
)))

# The kind of token each group of _LEXEME makes, by group number (None for the
# groups that are no plain token: brackets and broken text).
_KIND_AT: list[Kind | None] = [None] * (_LEXEME.groups + 1)
for _name in _TOKEN.groupindex:
    _KIND_AT[_LEXEME.groupindex[_name]] = Kind(_name)
_LITERAL_SYMBOLS = {"nil": Kind.NIL, "true": Kind.TRUE, "false": Kind.FALSE}
_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\nt])|\\(u[0-9a-fA-F]{0,3}|.?)')


def _surrogate(m: re.Match | None) -> str | None:
    """'high' or 'low' for a `\\uXXXX` escape of a UTF-16 surrogate, else None."""
    if m is None or m.group(1) is None or m.group(1)[0] != "u":
        return None
    code = int(m.group(1)[1:], 16)
    return "high" if 0xD800 <= code < 0xDC00 else "low" if 0xDC00 <= code < 0xE000 else None


def _lone_surrogate(escapes: list[re.Match], i: int) -> bool:
    """Whether escape `i` is a surrogate that is not half of an adjacent high-low pair (a pair
    stands for one character, as in JSON; a lone half stands for none and cannot be stored)."""
    kind = _surrogate(escapes[i])
    if kind == "high":
        after = escapes[i + 1] if i + 1 < len(escapes) else None
        return not (after is not None and after.start() == escapes[i].end() and _surrogate(after) == "low")
    if kind == "low":
        before = escapes[i - 1] if i > 0 else None
        return not (before is not None and before.end() == escapes[i].start() and _surrogate(before) == "high")
    return False


def read(text: str, name: str = "<input>") -> Tree:
    """Read a whole text. Never raises; problems come back as diagnostics."""
    return read_source(Source(text, name))


def read_source(source: Source) -> Tree:
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        reader = _Reader(source)
        items = reader.fast(0, len(source.text))
        if items is None:
            items = reader.recover()
        reader.diagnostics.sort(key=lambda diag: (diag.span.start, diag.span.end))
        return Tree(source, items, reader.diagnostics)
    finally:
        if gc_was_enabled:
            gc.enable()


class _Reader:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.text = source.text
        self.diagnostics: list[Diagnostic] = []

    # -- the fast path: the grammar ------------------------------------------

    def fast(self, start: int, end: int) -> list[Node] | None:
        """Parse text[start:end] with the grammar; None when it does not parse."""
        chunk = self.text if (start, end) == (0, len(self.text)) else self.text[start:end]
        try:
            root = _FILE.parse(chunk)
        except (ParseError, RecursionError):
            return None
        reported = len(self.diagnostics)
        try:
            items: list[Node] = []
            self._convert(root, start, items)
            return items
        except RecursionError:
            del self.diagnostics[reported:]
            return None

    def _convert(self, quantifier, base: int, out: list[Node]) -> None:
        for item in quantifier.children:
            node = item.children[0]
            if node.expr is _FLAT:
                out.extend(self._build(base + node.start, base + node.end))
            else:
                opener, inner, closer = node.children
                open_tok = self._bracket(base + opener.start)
                items: list[Node] = []
                self._convert(inner, base, items)
                out.append(self._seq(open_tok, items, self._bracket(base + closer.start)))

    def _bracket(self, at: int) -> Token:
        char = self.text[at]
        return Token(Kind.OPEN if char in "([{" else Kind.CLOSE, self.source, at, at + 1, char)

    def _seq(self, open_tok: Token, items: list[Node], close_tok: Token | None) -> Seq:
        kind = SEQ_OF_OPENER[open_tok.text]
        seq = Seq(kind, open_tok, items, close_tok)
        if close_tok is not None and close_tok.text != CLOSER_OF[kind]:
            want = CLOSER_OF[kind]
            self._report(d.MISMATCHED_DELIMITER, close_tok.span,
                         f"mismatched closing bracket: `{close_tok.text}` closes `{open_tok.text}`, "
                         f"which `{want}` should close",
                         notes=(Note(open_tok.span, f"`{open_tok.text}` opened here"),),
                         fix=Fix(f"replace `{close_tok.text}` with `{want}`",
                                 (Edit(close_tok.span, want),)))
        if kind is Kind.MAP:
            forms = seq.forms
            if len(forms) % 2:
                last = forms[-1]
                self._report(d.ODD_MAP, last.span,
                             f"map literal has an odd number of forms ({len(forms)}): `{_abbrev(last)}` is a key with no value",
                             notes=(Note(open_tok.span, "the map starts here"),))
        return seq

    def _check_escapes(self, at: int, text: str) -> None:
        escapes = list(_ESCAPE.finditer(text, 1, len(text) - 1))
        for i, m in enumerate(escapes):
            if m.group(1) is not None and _lone_surrogate(escapes, i):
                span = self.source.span(at + m.start(), at + m.end())
                self._report(d.INVALID_ESCAPE, span,
                             f"invalid escape `{m.group()}`: a lone UTF-16 surrogate is not a character; write "
                             f"the character itself, or a high surrogate followed by a low one")
            if m.group(2) is not None:
                bad = m.group()
                span = self.source.span(at + m.start(), at + m.end())
                if bad.startswith("\\u"):
                    message = f"invalid escape `{bad}`: `\\u` takes exactly four hex digits"
                else:
                    message = f"invalid escape `{bad}` in string: use \\\" \\\\ \\n \\t or \\uXXXX"
                self._report(d.INVALID_ESCAPE, span, message)

    def _report(self, code: d.Code, span, message: str, **extra) -> None:
        self.diagnostics.append(Diagnostic.of(code, span, message, **extra))

    # -- recovery and the token loop --------------------------------------------

    def recover(self) -> list[Node]:
        items: list[Node] = []
        for start, end in self._split():
            part = self.fast(start, end)
            items.extend(part if part is not None else self._build(start, end, recovering=True))
        return items

    def _missing_closers(self, start: int, end: int) -> int:
        """How many brackets of text[start:end] no closer closes (0 when an unterminated
        string swallowed some: that string is the one mistake)."""
        depth = 0
        for m in _LEXEME.finditer(self.text, start, end):
            group = m.lastgroup
            if group == "open":
                depth += 1
            elif group == "close":
                depth -= depth > 0
            elif group in ("string3_open", "string_open"):
                return 0
        return depth

    def _ends_by_indentation(self, pos: int, end: int, column: int) -> bool:
        """Whether a bracket opened at `column` may end at `pos`: the next line (blank and
        comment lines skipped) starts at `column` or left of it, or with a closer, or there
        is none."""
        text = self.text
        i = text.find("\n", pos, end)
        while i != -1:
            j = i + 1
            while j < end and text[j] in " \t,\r":
                j += 1
            if j >= end:
                return True
            if text[j] == "\n":
                i = j
            elif text[j] == ";":
                i = text.find("\n", j, end)
            else:
                return text[j] in ")]}" or j - (i + 1) <= column
        return True

    def _split(self) -> list[tuple[int, int]]:
        """Cut the text into pieces, each one top-level form and the trivia before it."""
        text, n = self.text, len(self.text)
        pieces: list[tuple[int, int]] = []
        piece_start = pos = depth = 0
        while pos < n:
            m = _RUN.match(text, pos)
            if m:
                pos = m.end()
                continue
            char = text[pos]
            if char in "([{":
                if depth and char == "(" and text[pos - 1] == "\n":
                    pieces.append((piece_start, pos))
                    piece_start, depth = pos, 0
                depth += 1
                pos += 1
            elif char in ")]}":
                pos += 1
                if depth:
                    depth -= 1
                    if not depth:
                        pieces.append((piece_start, pos))
                        piece_start = pos
            else:
                pos = _LEXEME.match(text, pos).end()
        if piece_start < n or not pieces:
            pieces.append((piece_start, n))
        return pieces

    def _build(self, start: int, end: int, recovering: bool = False) -> list[Node]:
        """Make the nodes of text[start:end], token by token, reporting each problem.

        A stack machine over the grammar's terminals: a closer closes the
        innermost open sequence whatever its kind (as the grammar's `seq` does),
        a closer with nothing to close and broken text become ERROR tokens, and
        sequences still open at the end are closed there and reported.

        `recovering` (a top-level form whose brackets do not balance): as many
        brackets as lack a closer are closed where the layout says they end,
        rather than all at the end of the form, so that one missing closer does
        not pull the forms after it inside (where they would be misread):
        - before a line that starts at the bracket's column or left of it (in
          laid-out Lisp, what a bracket holds is indented deeper than it);
        - at a closer of another kind that matches the bracket around it, when
          the next line starts no deeper than that one: in `(inc y]` at a
          binding vector's end, the `]` closes the vector and `(inc y` lacks
          its `)`.
        Each is reported unclosed (FM101), with where it was taken to end.
        """
        text, source = self.text, self.source
        root: list[Node] = []
        out = root
        stack: list[tuple[Token, list[Node]]] = []
        unterminated = False
        kind_at, literal_symbols, make_token = _KIND_AT, _LITERAL_SYMBOLS, Token
        symbol, string, ws = Kind.SYMBOL, Kind.STRING, Kind.WS
        missing = self._missing_closers(start, end) if recovering else 0
        line_start = text.rfind("\n", 0, start) + 1
        fresh_line = text[line_start:start].strip(" \t,\r") == ""  # no token yet on this line
        columns: list[tuple[int, int]] = []  # for each open bracket: its column, its line's start

        def close_unclosed(note: Note) -> None:
            nonlocal out
            open_tok, parent = stack.pop()
            columns.pop()
            closer = CLOSER_OF[SEQ_OF_OPENER[open_tok.text]]
            self._report(d.UNCLOSED_DELIMITER, open_tok.span, f"unclosed `{open_tok.text}`: no `{closer}` closes it",
                         notes=(note,))
            parent.append(self._seq(open_tok, out, None))
            out = parent

        for m in _LEXEME.finditer(text, start, end):
            kind = kind_at[m.lastindex]
            tok_start, tok_end = m.span()
            tok_text = text[tok_start:tok_end]
            if missing:
                if kind is ws or kind is Kind.COMMENT:
                    if "\n" in tok_text:
                        line_start, fresh_line = tok_start + tok_text.rfind("\n") + 1, True
                else:
                    if fresh_line and m.lastgroup != "close":
                        column = tok_start - line_start
                        while missing and len(stack) > 1 and columns[-1][0] >= column and columns[-1][1] < line_start:
                            missing -= 1
                            close_unclosed(Note(source.span(tok_start, tok_start),
                                                "taken to end before this line, which is indented no deeper"))
                    fresh_line = False
            if kind is not None:
                if kind is symbol:
                    kind = literal_symbols.get(tok_text, kind)
                elif kind is string and "\\" in tok_text:
                    self._check_escapes(tok_start, tok_text)
                out.append(make_token(kind, source, tok_start, tok_end, tok_text))
                continue
            group = m.lastgroup
            if group == "open":
                stack.append((Token(Kind.OPEN, source, tok_start, tok_end, tok_text), out))
                if missing:
                    columns.append((tok_start - line_start, line_start))
                out = []
            elif group == "close":
                close_tok = Token(Kind.CLOSE, source, tok_start, tok_end, tok_text)
                if (missing and len(stack) > 2 and tok_text != CLOSER_OF[SEQ_OF_OPENER[stack[-1][0].text]]
                        and tok_text == CLOSER_OF[SEQ_OF_OPENER[stack[-2][0].text]]
                        and self._ends_by_indentation(tok_end, end, columns[-2][0])):
                    missing -= 1
                    around = stack[-2][0].text
                    close_unclosed(Note(close_tok.span, f"taken to end here, where `{tok_text}` closes the "
                                                        f"`{around}` around it"))
                if stack:
                    if missing:
                        columns.pop()
                    open_tok, parent = stack.pop()
                    parent.append(self._seq(open_tok, out, close_tok))
                    out = parent
                else:
                    close_tok.kind = Kind.ERROR
                    self._report(d.UNEXPECTED_CLOSER, close_tok.span,
                                 f"unexpected `{tok_text}`: there is no opening bracket for it to close")
                    out.append(close_tok)
            else:
                tok = Token(Kind.ERROR, source, tok_start, tok_end, tok_text)
                out.append(tok)
                if group == "invalid":
                    self._report(d.INVALID_TOKEN, tok.span, _invalid_message(tok_text))
                elif group == "string3_open":
                    unterminated = True
                    self._report(d.UNTERMINATED_STRING, source.span(tok_start, tok_start + 3),
                                 'unterminated triple-quoted string: no closing `"""` follows')
                else:
                    unterminated = True
                    self._report(d.UNTERMINATED_STRING, tok.span,
                                 'unterminated string: no closing `"` on this line '
                                 '(use `"""` for text over several lines)')
        end_span = source.span(end, end)
        while stack:
            if missing:
                columns.pop()
            open_tok, parent = stack.pop()
            if not unterminated:  # an unterminated string swallowed the closers: one mistake
                where = "the text ends here" if end == len(text) else "the next top-level form starts here"
                closer = CLOSER_OF[SEQ_OF_OPENER[open_tok.text]]
                self._report(d.UNCLOSED_DELIMITER, open_tok.span,
                             f"unclosed `{open_tok.text}`: no `{closer}` closes it",
                             notes=(Note(end_span, where),))
            parent.append(self._seq(open_tok, out, None))
            out = parent
        return root


def _abbrev(node: Node, width: int = 24) -> str:
    text = node.text if isinstance(node, Token) else node.source.text[node.start:node.end]
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


_SYMBOL_CHARS = re.compile(r"[\w\-+*/<>=!?.]")


def _invalid_message(text: str) -> str:
    shown = text if len(text) <= 24 else text[:21] + "..."
    if text[0].isdigit() or (len(text) > 1 and text[0] in "-+." and text[1].isdigit()):
        if re.fullmatch(r"[-+]?[0-9]*\.?[0-9]*([eE][-+]?[0-9]*)?", text):
            return f"invalid number `{shown}`: write integers as `42` and floats as `4.2` or `4.2e1`"
        return f"invalid token `{shown}`: a symbol may not start with a digit"
    if text.startswith(":"):
        return f"invalid keyword `{shown}`: a keyword is `:` followed by a symbol's name"
    bad = next((c for c in text if not _SYMBOL_CHARS.match(c)), None)
    if bad is not None and bad not in ":":
        name = unicodedata.name(bad, "")
        code = f"U+{ord(bad):04X}{' ' + name if name else ''}"
        shown_char = f"`{bad}` ({code})" if bad.isprintable() and not bad.isspace() and bad != "`" else code
        where = "" if text == bad else f" in `{shown}`"
        return f"invalid character {shown_char}{where}: symbols are letters, digits and -_+*/<>=!?."
    return f"invalid token `{shown}`"

