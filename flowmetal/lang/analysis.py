"""The analysis of a workspace: every file's diagnostics, and answers for the editor.

A `Workspace` holds the text of every file of a program. `analyse()` reads and
lowers each file, builds the `Program` (packages, declarations, requires; the
standard packages included, read once per process, or the copies given to it), and checks every
definition on its own. The results are plain data: `Diagnostic`s, `Symbol`s,
spans and types; the language server turns them into protocol messages.

Incremental. `edit(name, start, end, new_text)` applies an editor's change.
When the change lies inside one definition (`defn`, `defendpoint`, `def`) of a
package and leaves it one well-bracketed form, only that form is read, lowered
and checked again: the source is edited in place, so every other node keeps
its place (positions translate through the edit, see `flowmetal.lang.source`), and
only the definitions that use the edited one are checked again, and only if
its signature changed. Anything else (an edit between definitions, in a
`require`, one that renames a definition, unbalances brackets, touches a
record, enum or alias, or any edit while the file has bracket or token errors,
since the reader's recovery depends on the whole text) re-analyses the
workspace from scratch, which is always
correct; tests check that both ways give the same diagnostics.

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

from flowmetal.lang import deep
from flowmetal.lang import diagnostics as d
from flowmetal.lang.check import Facts, check_definition as _check_definition, unused_imports
from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.forms import Definition, Module, _Lowerer, head_symbol, lower
from flowmetal.lang.resolve import BUILTIN_SYMBOLS, STDLIB, PackageScope, Program, Symbol
from flowmetal.lang.signatures import Sig
from flowmetal.lang.source import Source
from flowmetal.lang.syntax import Seq, Token, read_source
from flowmetal.lang.syntax.reader import _Reader
from flowmetal.lang.types import Type, show

INCREMENTAL_FORMS = frozenset({"defn", "defendpoint", "def"})
# Reader problems that make the grammar's parse of the whole file fail.
_RECOVERED = frozenset({"FM101", "FM102", "FM104", "FM106"})


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
    source: Source
    module: Module
    syntax: list[Diagnostic] = field(default_factory=list)     # reader and lowering
    facts: dict[int, Facts] = field(default_factory=dict)      # id(definition) -> its facts
    imports: list[Diagnostic] = field(default_factory=list)    # unused imports
    program: list[Diagnostic] = field(default_factory=list)    # resolution (duplicates, requires...)

    def diagnostics(self) -> list[Diagnostic]:
        out = [*self.syntax, *self.program, *self.imports]
        for facts in self.facts.values():
            out += facts.diagnostics
        out.sort(key=lambda diag: (diag.span.start, diag.span.end, diag.code, diag.message))
        return out


@dataclass
class Signature:
    callee: Symbol | None
    sig: Sig
    active: int          # index of the parameter the cursor is on
    call: Seq


class Workspace:
    def __init__(self, standard: tuple[Module, ...] | None = None) -> None:
        # The standard packages' modules: the installed ones, unless given (a stored run's own copies).
        self.standard = standard
        self.texts: dict[str, str] = {}
        self.files: dict[str, FileAnalysis] = {}
        self.program: Program | None = None
        self._stale = True
        self.stats = {"full": 0, "incremental": 0, "rechecked": 0}

    # -- contents ---------------------------------------------------------------------

    def set_file(self, name: str, text: str) -> None:
        self.texts[name] = text
        self._stale = True

    def remove_file(self, name: str) -> None:
        self.texts.pop(name, None)
        self.files.pop(name, None)
        self._stale = True

    def text(self, name: str) -> str:
        """The file's current text ("" for a file the workspace does not hold)."""
        analysis = self.files.get(name)
        return analysis.source.text if analysis is not None and not self._stale else self.texts.get(name, "")

    # -- analysis -----------------------------------------------------------------------

    def analyse(self) -> None:
        if not self._stale:
            return
        # From scratch each time, so it can be run again on a deeper stack (`flowmetal.lang.deep`).
        deep.call(self._analyse)

    def _analyse(self) -> None:
        self.stats["full"] += 1
        self.files = {}
        modules = []
        for name, text in self.texts.items():
            module = lower(read_source(Source(text, name)))
            self.files[name] = FileAnalysis(module.tree.source, module, [*module.tree.diagnostics, *module.diagnostics])
            modules.append(module)
        program = Program(modules, list(standard_modules() if self.standard is None else self.standard))
        self.program = program
        self._drop_follow_ons(program)
        for diag in program.diagnostics:
            owner = self.files.get(diag.span.source.name)
            if owner is not None:
                owner.program.append(diag)
        for scope in program.packages.values():
            if scope.standard:
                continue
            owner = self.files[scope.module.tree.source.name]
            # Constants first: an unannotated one's type is what its value gives,
            # and the functions using it must see that whatever the order.
            for definition in sorted(scope.package.definitions, key=lambda dfn: dfn.form != "def"):
                owner.facts[id(definition)] = self._check(owner, scope, definition)
        self._refresh_imports()
        self._stale = False

    def _refresh_imports(self, only: str | None = None) -> None:
        for analysis in self.files.values():
            if only is None or analysis.source.name == only:
                analysis.imports = []
        for scope in self.program.packages.values():
            if scope.standard:
                continue
            owner = self.files[scope.module.tree.source.name]
            if only is not None and owner.source.name != only:
                continue
            if _too_deep_within(owner, scope.package.node):
                continue  # what the part too deep to check uses is unknown
            refs = []
            for definition in scope.package.definitions:
                facts = owner.facts.get(id(definition))
                if facts is not None:
                    refs += facts.refs
            owner.imports += unused_imports(scope, refs, self.program.damaged)

    def _drop_follow_ons(self, program: Program) -> None:
        """Problems of shape found lowering a definition whose brackets the reader had to
        guess are follow-ons of the one missing bracket: its FM101 says it all."""
        if not program.damaged:
            return
        for scope in program.packages.values():
            if scope.standard:
                continue
            ranges = [(dfn.node.start, dfn.node.end) for dfn in scope.package.definitions if id(dfn) in program.damaged]
            if not ranges:
                continue
            owner = self.files[scope.module.tree.source.name]
            owner.syntax = [diag for diag in owner.syntax
                            if diag.code.startswith(("FM0", "FM1"))
                            or not any(a <= diag.span.start < b for a, b in ranges)]

    def _check(self, owner: FileAnalysis, scope: PackageScope, definition: Definition) -> Facts:
        facts = check_definition(self.program, scope, definition)
        if _too_deep_within(owner, definition.node):
            # The names a form too deep to check uses are unknown: none is "never used".
            facts.diagnostics = [diag for diag in facts.diagnostics if diag.code not in _UNUSED]
        return facts

    def edit(self, name: str, start: int, end: int, new_text: str) -> None:
        """Apply an editor's change to a file: replace text[start:end] with `new_text`.

        An edit the analysis cannot absorb in place only marks it stale: the work
        from scratch is done when a result is next asked for, so a burst of edits
        costs one analysis, not one each.
        """
        text = self.texts[name]
        analysis = None if self._stale else self.files.get(name)
        if (analysis is None or analysis.source.needs_compaction
                or not self._edit_in_place_or_not(analysis, start, end, new_text)):
            # The source may hold a half-done in-place attempt: it goes with the rest.
            self.texts[name] = text[:start] + new_text + text[end:]
            self._stale = True
        else:
            self.texts[name] = analysis.source.text

    def _edit_in_place_or_not(self, analysis: FileAnalysis, start: int, end: int, new_text: str) -> bool:
        """`_edit_in_place`, or False when it ran out of stack: the analysis from scratch (on a
        deeper one) then takes over, as after any edit it cannot absorb."""
        try:
            return self._edit_in_place(analysis, start, end, new_text)
        except RecursionError:
            return False

    def _edit_in_place(self, analysis: FileAnalysis, start: int, end: int, new_text: str) -> bool:
        """Re-read and re-check only the definition the change lies in; False when it cannot."""
        if any(diag.code in _RECOVERED for diag in analysis.syntax):
            return False  # the file was read by recovery, whose cuts depend on all of it
        found = self._definition_around(analysis, start, end)
        if found is None:
            return False
        scope, definition = found
        node = definition.node
        if definition.form not in INCREMENTAL_FORMS:
            return False
        source = analysis.source
        old_start, old_end = node.start, node.end
        # Problems the reader and the lowering found in the old form go with it.
        syntax_kept = [diag for diag in analysis.syntax if not (old_start <= diag.span.start and diag.span.end <= old_end)]
        source.edit(start, end, new_text)
        new_end = old_end + len(new_text) - (end - start)
        reader = _Reader(source)
        items = reader.fast(old_start, new_end)
        forms = [n for n in items or () if not n.is_trivia]
        if (items is None or len(forms) != 1 or len(items) != 1 or type(forms[0]) is not Seq
                or forms[0].close is None or head_symbol(forms[0]) != definition.form):
            return False
        lowerer = _Lowerer()
        new_def = lowerer.definition(forms[0], definition.form)
        if new_def is None or new_def.name != definition.name:
            return False
        symbol = scope.decls.get(definition.name)
        if symbol is None or symbol.definition is not definition:
            return False
        # Splice the new form into the package's tree and forms.
        parent = scope.package.node
        parent.items[next(i for i, n in enumerate(parent.items) if n is node)] = forms[0]
        definitions = scope.package.definitions
        definitions[next(i for i, dfn in enumerate(definitions) if dfn is definition)] = new_def
        analysis.syntax = syntax_kept + reader.diagnostics + lowerer.diagnostics
        # The symbol stays the same object (other definitions' facts point at it).
        before = _signature_text(symbol)
        symbol.definition, symbol.node, symbol.doc = new_def, new_def.name_node, new_def.doc
        self.program.resolve_definition(scope, new_def)
        del analysis.facts[id(definition)]
        analysis.facts[id(new_def)] = self._check(analysis, scope, new_def)
        rechecked = 1
        if _signature_text(symbol) != before:
            for other_scope in self.program.packages.values():
                if other_scope.standard:
                    continue
                owner = self.files[other_scope.module.tree.source.name]
                for other in other_scope.package.definitions:
                    facts = owner.facts.get(id(other))
                    if other is not new_def and facts is not None and any(s is symbol for _, s in facts.refs):
                        owner.facts[id(other)] = self._check(owner, other_scope, other)
                        rechecked += 1
            self._refresh_imports()
        else:
            self._refresh_imports(only=analysis.source.name)
        self.stats["incremental"] += 1
        self.stats["rechecked"] += rechecked
        return True

    def _definition_around(self, analysis: FileAnalysis, start: int, end: int):
        for scope in self.program.packages.values():
            if scope.standard or scope.module is not analysis.module:
                continue
            for definition in scope.package.definitions:
                node = definition.node
                if node.close is not None and node.open.end <= start and end <= node.close.start:
                    return scope, definition
        return None

    def diagnostics(self, name: str) -> list[Diagnostic]:
        self.analyse()
        analysis = self.files.get(name)
        return analysis.diagnostics() if analysis else []

    def all_diagnostics(self) -> list[Diagnostic]:
        self.analyse()
        return [diag for analysis in self.files.values() for diag in analysis.diagnostics()]

    # -- queries ------------------------------------------------------------------------

    def _facts(self, name: str, offset: int | None = None) -> list[Facts]:
        """The facts of the definition around `offset` (all of the file's when none is)."""
        self.analyse()
        analysis = self.files.get(name)
        if analysis is None:
            return []
        if offset is not None:
            for scope in self.program.packages.values():
                if scope.module is not analysis.module:
                    continue
                for definition in scope.package.definitions:
                    node = definition.node
                    if node.start <= offset <= node.end:
                        facts = analysis.facts.get(id(definition))
                        return [facts] if facts is not None else []
        return list(analysis.facts.values())

    def definition_at(self, name: str, offset: int) -> Symbol | None:
        for facts in self._facts(name, offset):
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
            for facts in analysis.facts.values():
                out += [token for token, s in facts.refs if s is symbol and token is not symbol.node]
        for scope in self.program.packages.values():
            for _, (s, token) in scope.refers.items():
                if s is symbol:
                    out.append(token)
        return out

    def type_at(self, name: str, offset: int) -> tuple[Token | Seq, Type] | None:
        best = None
        for facts in self._facts(name, offset):
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
        for facts in self._facts(name, offset):
            for symbol, start, end in facts.locals:
                if start <= offset <= end:
                    out[symbol.name] = symbol
        return out

    def signature_at(self, name: str, offset: int) -> Signature | None:
        best = None
        for facts in self._facts(name, offset):
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


_UNUSED = frozenset({d.UNUSED_BINDING.code, d.UNUSED_PARAMETER.code})


def _too_deep_within(owner: FileAnalysis, node: Seq) -> bool:
    return any(diag.code == d.TOO_DEEP.code and node.start <= diag.span.start < node.end for diag in owner.syntax)


def check_definition(program: Program, scope: PackageScope, definition: Definition) -> Facts:
    """The definition's facts. On a deep stack that still does not hold its walk (a type nested
    deeper than any form can be, grown through a long chain of `let`s), one diagnostic says so."""
    try:
        return _check_definition(program, scope, definition)
    except RecursionError:
        if not deep.active():
            raise  # `deep.call` runs the analysis again, on a deeper stack
    facts = Facts()
    facts.diagnostics.append(Diagnostic.of(
        d.TOO_DEEP, definition.name_node.span,
        f"`{definition.name}` is too deeply nested to check: its types or forms nest deeper than "
        f"{deep.RECURSION_LIMIT:,} steps of the checker (split it into functions)"))
    return facts


def _signature_text(symbol: Symbol) -> str:
    if symbol.sig is None:
        return show(symbol.type)
    params = " ".join(f"{p.name}:{show(p.type)}{'?' if p.optional else ''}" for p in symbol.sig.params)
    return f"[{params}] {show(symbol.sig.ret)} {show(symbol.type)}"


def check_sources(sources: dict[str, str]) -> list[Diagnostic]:
    workspace = Workspace()
    for name, text in sources.items():
        workspace.set_file(name, text)
    return workspace.all_diagnostics()
