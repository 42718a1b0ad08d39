"""One argument of an entry function, checked as it is typed: what an editor's prompt says under it.

An editor asks for a run's arguments one at a time (the Run lens), and says what is
wrong with the text while the user types it, rather than once the whole run is
refused. `check_argument` reads the text as `flowmetal run` reads an argument
(`runtime.literals.read_literal`: a Flowmetal literal, enum members and records
named as the entry's package sees them) and checks it against the parameter's
type as a new run's are checked (`runtime.driving.check_entry`, through
`primitives.is_instance`), so the prompt never accepts what the run would refuse,
nor refuses what it would take.

It works over the editor's analysis as it is, errors and all: a program the
checker refuses still has its types and names, and the run itself, not the
prompt, says the program cannot start. Plain data in and out (`lsp/` speaks the
protocol); the runtime modules are imported on the first check only, so that a
language server that never runs anything never loads them.
"""

from __future__ import annotations

from flowmetal.ide import features
from flowmetal.lang.analysis import Workspace
from flowmetal.lang.types import show


def parameter(ws: Workspace, file: str, entry: str, name: str):
    """(the entry function's symbol, the parameter `name` of its signature), or None for either."""
    package, _, function = entry.rpartition("/")
    for symbol in features.entry_functions(ws, file):
        if symbol.name == function and (not package or symbol.package == package):
            return symbol, next((p for p in symbol.sig.params if p.name == name), None)
    return None, None


def default_text(symbol, name: str) -> str | None:
    """The source of the `:default` expression of the parameter `name`, as written (None: no default)."""
    definition = symbol.definition
    for param in getattr(definition, "params", None) or []:
        if param.name == name and param.default is not None:
            return " ".join(param.default.node.span.text.split())
    return None


def check_argument(ws: Workspace, file: str, entry: str, name: str, text: str) -> str | None:
    """What is wrong with `text` as the argument `name` of `entry` (`package/name`, a function of
    `file`): a sentence naming the problem, or None when a run would take it. Empty text is a
    missing argument: fine for an optional parameter (its default applies), not for another."""
    from flowmetal.runtime.literals import LiteralError, read_literal
    from flowmetal.runtime.primitives import is_instance
    from flowmetal.runtime.program import Program
    from flowmetal.runtime.values import literal

    symbol, param = parameter(ws, file, entry, name)
    if symbol is None:
        return f"`{entry}` is no function of this file any more"
    if param is None:
        return f"`{entry}` has no parameter `{name}` any more"
    if not text.strip():
        return None if param.optional else f"`{name}` needs a value: a Flowmetal literal of type {show(param.type)}"
    ws.analyse()
    # The names the literal may use, as the run's program would have them: the analysis's packages.
    view = Program(sources={}, workspace=ws, scopes=dict(ws.program.packages))
    try:
        value = read_literal(text, view, symbol.package)
    except LiteralError as error:
        return str(error).removeprefix(f"argument {text!r}: ")
    if not is_instance(value, param.type):
        return f"`{name}` must be {show(param.type)}, not {literal(value)}"
    return None


__all__ = ["check_argument", "default_text", "parameter"]
