"""The diagnostics model shared by every layer: reader, resolver, checker, runtime.

A `Diagnostic` is plain data: a span, a severity, a stable code, a message,
optional notes pointing at related places, and an optional machine-applicable
`Fix` (text edits an editor can apply as they are). Nothing here knows about
terminals, JSON or the language server; `flowmetal.cli.render` and `lsp/` turn
diagnostics into those.

Every code lives in `CODES`, one registry with a name, a default severity and a
description each (like mypy's errorcodes). Codes are stable: once published a
code keeps its meaning, so people can search for it and tools can filter on it.
Codes are grouped by the layer that reports them: FM0xx input, FM1xx syntax,
FM2xx the shape of forms, FM3xx names, FM4xx types, FM5xx patterns and
matches, FM6xx unused things.
`docs/language.md` documents each one and a test keeps the two in step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from flowmetal.lang.source import Span


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
    "a number or symbol running into other characters (`1abc`, `a&b`), or a number out of range.")
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


# FM2xx: the shape of forms.
OUTSIDE_PACKAGE = _register(
    "FM201", "outside-package", Severity.ERROR,
    "A top-level form other than `(defpackage NAME ...)`: every definition lives in a package.")
MALFORMED_FORM = _register(
    "FM202", "malformed-form", Severity.ERROR,
    "A special form or definition whose parts are missing, extra or of the wrong kind, "
    "such as `(let [a] a)` or `(defn f)`.")
TOO_DEEP = _register(
    "FM203", "too-deep", Severity.ERROR,
    "A form nested more than 12,000 levels deep inside its definition: read, but neither checked nor run.")

# FM3xx: names.
UNKNOWN_NAME = _register(
    "FM301", "unknown-name", Severity.ERROR,
    "A name that is not defined where it is used: not a local, not defined or referred by the "
    "package, not a built-in. A near name is suggested, with a fix.")
NOT_REFERRED = _register(
    "FM302", "not-referred", Severity.ERROR,
    "A name defined in another package that this package does not refer: add it to the "
    "`:refer` vector of that package's require (the fix does), or write `alias/name`.")
UNKNOWN_PACKAGE = _register(
    "FM303", "unknown-package", Severity.ERROR,
    "A `require` of a package that no file of the program and no standard package defines.")
UNKNOWN_REFER = _register(
    "FM304", "unknown-refer", Severity.ERROR,
    "A `:refer` of a name the required package does not define.")
DUPLICATE_DEFINITION = _register(
    "FM305", "duplicate-definition", Severity.ERROR,
    "A name defined twice in one package, or a package defined twice in one program.")
SHADOWS_STANDARD_PACKAGE = _register(
    "FM306", "shadows-standard-package", Severity.WARNING,
    "A package named like a standard package: it replaces the standard one in the whole program.")
UNKNOWN_TYPE = _register(
    "FM307", "unknown-type", Severity.ERROR,
    "A name in a type position that is no type: not a base type, a record, an enum, a `deftype`, "
    "or a type variable (a single lowercase letter, optionally followed by `?`).")

# FM4xx: types.
WRONG_ARITY = _register(
    "FM401", "wrong-arity", Severity.ERROR,
    "A call with too many or too few arguments for what the function takes.")
UNKNOWN_KEYWORD_ARGUMENT = _register(
    "FM402", "unknown-keyword-argument", Severity.ERROR,
    "A call passing `:name value` for a parameter the function does not have, or twice.")
TYPE_MISMATCH = _register(
    "FM403", "type-mismatch", Severity.ERROR,
    "A value whose type does not fit where it is used: an argument, a binding, a field, a "
    "constant. The message names both types.")
RETURN_MISMATCH = _register(
    "FM404", "return-mismatch", Severity.ERROR,
    "A function whose result does not fit its declared return type; reported at the expression "
    "that gives the result.")
NOT_CALLABLE = _register(
    "FM405", "not-callable", Severity.ERROR,
    "A call of a value that is not a function.")
UNKNOWN_MEMBER = _register(
    "FM406", "unknown-enum-member", Severity.ERROR,
    "An enum member `+name+` that the expected enum does not have.")
UNKNOWN_FIELD = _register(
    "FM407", "unknown-record-field", Severity.ERROR,
    "An accessor `record-field` for a field the record does not have.")

# FM5xx: patterns and matches.
PATTERN_MISMATCH = _register(
    "FM501", "pattern-mismatch", Severity.ERROR,
    "A pattern that can never match the value matched on, or a record pattern with the wrong "
    "number of fields.")
NON_EXHAUSTIVE_MATCH = _register(
    "FM502", "non-exhaustive-match", Severity.WARNING,
    "A `match` over an enum, a record or a union that misses a case; the message names one. "
    "A value that no clause fits fails the run.")
UNREACHABLE_CLAUSE = _register(
    "FM503", "unreachable-clause", Severity.WARNING,
    "A clause that can never be chosen: earlier clauses catch everything it would.")

# FM6xx: unused things.
UNUSED_BINDING = _register(
    "FM601", "unused-binding", Severity.WARNING,
    "A `let` binding or pattern variable never used. Start its name with `_` to keep it anyway.")
UNUSED_PARAMETER = _register(
    "FM602", "unused-parameter", Severity.WARNING,
    "A parameter never used in the function's body. Start its name with `_` to keep it anyway.")
UNUSED_IMPORT = _register(
    "FM603", "unused-import", Severity.WARNING,
    "A name referred by a `require` and never used in the package.")
DUPLICATE_KEY = _register(
    "FM604", "duplicate-key", Severity.WARNING,
    "A map literal with the same key twice: the later value replaces the earlier one, which is "
    "never used.")
