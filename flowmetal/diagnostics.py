"""The diagnostics model shared by every layer: reader, resolver, checker, runtime.

A `Diagnostic` is plain data: a span, a severity, a stable code, a message,
optional notes pointing at related places, and an optional machine-applicable
`Fix` (text edits an editor can apply as they are). Nothing here knows about
terminals, JSON or the language server; `flowmetal.render` and `lsp/` turn
diagnostics into those.

Every code lives in `CODES`, one registry with a name, a default severity and a
description each (like mypy's errorcodes). Codes are stable: once published a
code keeps its meaning, so people can search for it and tools can filter on it.
Codes are grouped by the layer that reports them: FM0xx input, FM1xx syntax.
`docs/language.md` documents each one and a test keeps the two in step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from flowmetal.source import Span


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    HINT = "hint"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Code:
    """One entry of the registry."""

    code: str
    name: str
    severity: Severity
    description: str


CODES: dict[str, Code] = {}


def _register(code: str, name: str, severity: Severity, description: str) -> Code:
    assert code not in CODES, f"duplicate diagnostic code {code}"
    entry = Code(code, name, severity, description)
    CODES[code] = entry
    return entry


# FM0xx: the input itself.
UNREADABLE_FILE = _register(
    "FM001", "unreadable-file", Severity.ERROR,
    "The file could not be read, or its bytes are not valid UTF-8.")

# FM1xx: the reader.
UNCLOSED_DELIMITER = _register(
    "FM101", "unclosed-delimiter", Severity.ERROR,
    "An opening bracket `(`, `[` or `{` has no closing bracket before the form ends.")
UNEXPECTED_CLOSER = _register(
    "FM102", "unexpected-closing-delimiter", Severity.ERROR,
    "A closing bracket with no opening bracket to close.")
MISMATCHED_DELIMITER = _register(
    "FM103", "mismatched-delimiter", Severity.ERROR,
    "A closing bracket of another kind than the opening bracket it closes, as in `(a b]`.")
UNTERMINATED_STRING = _register(
    "FM104", "unterminated-string", Severity.ERROR,
    'A string with no closing quote: `"` must close on its own line, `"""` anywhere later.')
INVALID_ESCAPE = _register(
    "FM105", "invalid-escape", Severity.ERROR,
    'A backslash escape in a string other than \\" \\\\ \\n \\t and \\uXXXX.')
INVALID_TOKEN = _register(
    "FM106", "invalid-token", Severity.ERROR,
    "Text that is no token of the language: a character that cannot start one, "
    "or a number or symbol running into other characters (`1abc`, `a&b`).")
ODD_MAP = _register(
    "FM107", "odd-map", Severity.ERROR,
    "A map literal `{...}` must hold keys and values in pairs: an even number of forms.")


@dataclass(frozen=True, slots=True)
class Note:
    """A related place: the opener of an unclosed bracket, a previous definition."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the text of `span` with `new_text` (an insertion is an empty span)."""

    span: Span
    new_text: str


@dataclass(frozen=True, slots=True)
class Fix:
    """A machine-applicable fix: safe to apply without a person choosing among options."""

    message: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    span: Span
    severity: Severity
    code: str
    message: str
    notes: tuple[Note, ...] = field(default=())
    fix: Fix | None = None

    @staticmethod
    def of(entry: Code, span: Span, message: str, *, notes: tuple[Note, ...] = (),
           fix: Fix | None = None, severity: Severity | None = None) -> Diagnostic:
        """A diagnostic of a registered code, at that code's default severity."""
        return Diagnostic(span, severity or entry.severity, entry.code, message, notes, fix)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.source.name, self.span.start, self.span.end, self.code)
