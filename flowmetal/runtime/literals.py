"""Reading values written as Flowmetal literals: a run's arguments on the command line.

`read_literal("[+reboot+ 3]", program, "acme.jobs")` reads the text with the
reader and turns the form into a value: numbers, strings, keywords, `nil`,
`true`, `false`, vectors, maps, enum members and records (`(duration 3
+hours+)`), names resolved as they would be in that package, or else by the
one package of the program that defines them. Anything else (a call, a symbol
that is no member) is a clear error, not code to run.
"""

from __future__ import annotations

from flowmetal.lang import deep
from flowmetal.lang.forms import literal_value, number_problem
from flowmetal.lang.syntax import Kind, Seq, Token, read
from flowmetal.runtime.program import Program
from flowmetal.runtime.values import Keyword, List, Map, Member, RecordValue, map_key


class LiteralError(ValueError):
    pass


def read_literal(text: str, program: Program, package: str):
    """The value `text` writes (nested as deep as the reader reads, on a deeper stack when
    needed), or a `LiteralError` saying why it is none."""
    try:
        return deep.call(_read_literal, text, program, package)
    except RecursionError:
        raise LiteralError(f"argument {_short(text)}: nested too deeply") from None


def _read_literal(text: str, program: Program, package: str):
    tree = read(text, "<argument>")
    if tree.diagnostics:
        d = tree.diagnostics[0]
        raise LiteralError(f"argument {text!r}: {d.message}")
    forms = tree.forms
    if len(forms) != 1:
        raise LiteralError(f"argument {text!r}: expected one value, found {len(forms)}")
    return _value(forms[0], program, package, text)


def _value(node, program: Program, package: str, text: str):
    if type(node) is Token:
        if node.kind is Kind.KEYWORD:
            return Keyword(node.text[1:])
        if node.kind in (Kind.INT, Kind.FLOAT, Kind.STRING, Kind.STRING3, Kind.NIL, Kind.TRUE, Kind.FALSE):
            problem = number_problem(node) if node.kind in (Kind.INT, Kind.FLOAT) else None
            if problem is not None:
                raise LiteralError(f"argument {_short(text)}: {problem}")
            return literal_value(node)
        if node.kind is Kind.SYMBOL:
            symbol = _lookup(program, package, node.text)
            if symbol is not None and symbol.kind == "member":
                enum = symbol.type
                return Member(enum.package, enum.name, symbol.name)
            raise LiteralError(f"argument {text!r}: `{node.text}` is no enum member known in `{package}`"
                               + _as_string(node.text, text))
        raise LiteralError(f"argument {text!r}: `{node.text}` is not a literal")
    assert type(node) is Seq
    items = [_value(f, program, package, text) for f in node.forms[1:]] if node.kind is Kind.LIST else None
    if node.kind is Kind.VECTOR:
        return List([_value(f, program, package, text) for f in node.forms])
    if node.kind is Kind.MAP:
        values = [_value(f, program, package, text) for f in node.forms]
        try:
            return Map([(map_key(values[i]), values[i + 1]) for i in range(0, len(values) - 1, 2)])
        except TypeError:  # a key with no hash
            raise LiteralError(f"argument {_short(text)}: this value cannot be the key of a map") from None
    head = node.forms[0] if node.forms else None
    if type(head) is Token and head.kind is Kind.SYMBOL:
        symbol = _lookup(program, package, head.text)
        if symbol is not None and symbol.kind == "constructor" and len(items) == len(symbol.record.fields):
            record = symbol.record
            return RecordValue(record.package, record.name, tuple(f for f, _ in record.fields), tuple(items))
    raise LiteralError(f"argument {text!r}: only a record constructor may head a literal list")


def _as_string(word: str, text: str) -> str:
    """The hint for a bare word that was meant as text: a string is written in double quotes,
    which the shell takes away unless they are quoted too."""
    if word.startswith("+"):  # meant as an enum member
        return ""
    quoted = f'"{word}"'  # a symbol holds no quote nor backslash to escape
    if text.strip() == word:
        return f"; for the text, quote it as a string: '{quoted}'"
    return f"; for the text, write it as a string: {quoted}"


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:20] + "..." + text[-10:])


def _lookup(program: Program, package: str, name: str):
    """A name as the package sees it; else the one definition of it in the program
    (so `(duration 3 +hours+)` reads even where `duration` is not referred)."""
    scope = program.scopes.get(package)
    found = program.workspace.program.lookup(name, scope) if scope is not None else None
    if found is not None:
        return found
    candidates = [s.decls[name] for s in program.scopes.values() if name in s.decls]
    return candidates[0] if len(candidates) == 1 else None
