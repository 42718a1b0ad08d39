"""The analysis of a workspace: every file's diagnostics, and answers for the editor.

A `Workspace` holds the text of every file of a program. `analyse()` reads and
lowers each file, builds the `Program` (packages, declarations, requires; the
standard packages included, read once per process), and checks every
definition on its own. The results are plain data: `Diagnostic`s, `Symbol`s,
spans and types; the language server turns them into protocol messages.

Queries (all by file name and offset, offsets counting code points):
    diagnostics(name)          every problem in a file, sorted
    definition_at(name, off)   the symbol of the name there (locals included)
    references(symbol)         every place naming it, its definition first
    type_at(name, off)         the type of the innermost expression there, after narrowing
    scope_at(name, off)        the names visible there, with their symbols
    signature_at(name, off)    the call around the offset: its callee, signature, active argument
    symbols(name)              the definitions of a file
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from flowmetal.check import Facts, check_definition, unused_imports
from flowmetal.diagnostics import Diagnostic
from flowmetal.forms import Definition, Module, lower
from flowmetal.resolve import BUILTIN_SYMBOLS, STDLIB, PackageScope, Program, Symbol
from flowmetal.builtins import Sig
from flowmetal.source import Source
from flowmetal.syntax import Seq, Token, read_source
from flowmetal.types import Type


@cache
def standard_modules() -> tuple[Module, ...]:
    """The standard packages, read and lowered once per process."""
    modules = []
    for path in sorted(STDLIB.glob("*.flow")):
        source = Source(path.read_text(encoding="utf-8"), str(path))
        modules.append(lower(read_source(source)))
    return tuple(modules)


@dataclass
class FileAnalysis:
    module: Module
    facts: list[Facts] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class Signature:
    callee: Symbol | None
    sig: Sig
    active: int          # index of the parameter the cursor is on
    call: Seq


class Workspace:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.files: dict[str, FileAnalysis] = {}
        self.program: Program | None = None
        self._stale = True

    # -- contents ---------------------------------------------------------------------

    def set_file(self, name: str, text: str) -> None:
        self.texts[name] = text
        self._stale = True

    def remove_file(self, name: str) -> None:
        self.texts.pop(name, None)
        self.files.pop(name, None)
        self._stale = True

    # -- analysis -----------------------------------------------------------------------

    def analyse(self) -> None:
        if not self._stale:
            return
        self.files = {}
        modules = []
        for name, text in self.texts.items():
            module = lower(read_source(Source(text, name)))
            self.files[name] = FileAnalysis(module, [], [*module.tree.diagnostics, *module.diagnostics])
            modules.append(module)
        program = Program(modules, list(standard_modules()))
        self.program = program
        for diag in program.diagnostics:
            owner = self.files.get(diag.span.source.name)
            if owner is not None:
                owner.diagnostics.append(diag)
        for scope in program.packages.values():
            if scope.standard:
                continue
            owner = self.files[scope.module.tree.source.name]
            refs = []
            for definition in scope.package.definitions:
                facts = check_definition(program, scope, definition)
                owner.facts.append(facts)
                owner.diagnostics += facts.diagnostics
                refs += facts.refs
            owner.diagnostics += unused_imports(scope, refs)
        for analysis in self.files.values():
            analysis.diagnostics.sort(key=lambda diag: (diag.span.start, diag.span.end, diag.code))
        self._stale = False

    def diagnostics(self, name: str) -> list[Diagnostic]:
        self.analyse()
        analysis = self.files.get(name)
        return list(analysis.diagnostics) if analysis else []

    def all_diagnostics(self) -> list[Diagnostic]:
        self.analyse()
        return [diag for analysis in self.files.values() for diag in analysis.diagnostics]

    # -- queries ------------------------------------------------------------------------

    def _facts(self, name: str) -> list[Facts]:
        self.analyse()
        analysis = self.files.get(name)
        return analysis.facts if analysis else []

    def definition_at(self, name: str, offset: int) -> Symbol | None:
        for facts in self._facts(name):
            for token, symbol in facts.refs:
                if token.start <= offset <= token.end:
                    return symbol
        for scope in self._scopes(name):
            for symbol in scope.decls.values():
                if symbol.node is not None and symbol.node.start <= offset <= symbol.node.end:
                    return symbol
            for ref_name, (symbol, token) in scope.refers.items():
                if token.start <= offset <= token.end:
                    return symbol
        return None

    def references(self, symbol: Symbol) -> list[Token]:
        self.analyse()
        out: list[Token] = []
        if symbol.node is not None:
            out.append(symbol.node)
        for analysis in self.files.values():
            for facts in analysis.facts:
                out += [token for token, s in facts.refs if s is symbol and token is not symbol.node]
        for scope in self.program.packages.values():
            for _, (s, token) in scope.refers.items():
                if s is symbol:
                    out.append(token)
        return out

    def type_at(self, name: str, offset: int) -> tuple[Token | Seq, Type] | None:
        best = None
        for facts in self._facts(name):
            for node, t in facts.types.values():
                if node.start <= offset <= node.end and (best is None or node.end - node.start < best[0].end - best[0].start):
                    best = (node, t)
        return best

    def scope_at(self, name: str, offset: int) -> dict[str, Symbol]:
        out: dict[str, Symbol] = dict(BUILTIN_SYMBOLS)
        for scope in self._scopes(name):
            if scope.package.node.start <= offset <= scope.package.node.end:
                out.update({n: s for n, (s, _) in scope.refers.items()})
                out.update(scope.decls)
        for facts in self._facts(name):
            for symbol, start, end in facts.locals:
                if start <= offset <= end:
                    out[symbol.name] = symbol
        return out

    def signature_at(self, name: str, offset: int) -> Signature | None:
        best = None
        for facts in self._facts(name):
            for call, symbol, sig in facts.calls:
                if call.start < offset <= call.end and (call.close is None or offset <= call.close.start):
                    if best is None or call.start > best[0].start:
                        best = (call, symbol, sig)
        if best is None:
            return None
        call, symbol, sig = best
        before = [f for f in call.forms[1:] if f.end <= offset]
        return Signature(symbol, sig, min(len(before), max(len(sig.params) - 1, 0)), call)

    def symbols(self, name: str) -> list[Symbol]:
        return [s for scope in self._scopes(name) for s in scope.decls.values() if s.node is not None]

    def _scopes(self, name: str) -> list[PackageScope]:
        self.analyse()
        return [s for s in self.program.packages.values() if s.module.tree.source.name == name]


def check_sources(sources: dict[str, str]) -> list[Diagnostic]:
    workspace = Workspace()
    for name, text in sources.items():
        workspace.set_file(name, text)
    return workspace.all_diagnostics()


__all__ = ["Workspace", "FileAnalysis", "Signature", "check_sources", "standard_modules", "Definition", "Path"]
