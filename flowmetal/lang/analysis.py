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

Big workspaces. An editor has a few files open in a workspace of many: it
tells the workspace which (`focus`), and then only those are kept whole (tree,
forms, every fact the checker found). Every other file is kept as an index: its
declarations (definitions without bodies, their names and signatures' syntax),
and the names it resolves and the calls it makes, enough for references, rename,
call hierarchy and workspace symbols; not its tree nor the type of each
expression. The work is split the same way: `ready()` analyses the open files
and the files they require, transitively (a dependency is read for its
declarations only), enough for the open files' diagnostics and answers;
`start_pass()` returns a `Pass`, the analysis of the whole workspace a step at
a time (each step a file read, or a few dozen definitions checked), which the
language server runs between requests. A dependency's declarations are kept
(`_summaries`, by text), so after a change only the changed files are read
again before the open files' diagnostics. `analyse()` finishes a pass at once;
`complete` says whether the project-wide answers are whole. Without `focus`
(the command line, the runtime), every file is kept whole, as before.

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

import dataclasses
import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from flowmetal.lang.syntax import Seq, Token, Tree, read_source
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
    kept: bool = True          # False: an index only (declarations, names resolved, calls), no tree

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
        self._complete = False
        # The files an editor has open, kept whole; None: every file is (see the top of this module).
        self.focus: set[str] | None = None
        self.generation = 0      # moves on with every change, edits in place included
        self._structure = 0      # moves on with every change that needs more than an edit in place
        self._summaries: dict[str, tuple[str, Module]] = {}    # name -> (text, its declarations)
        # The index of the files nobody has open: name -> (text, its analysis, kept=False), all
        # checked against a program declaring `_index_keys` (`_declared`).
        self._index: dict[str, tuple[str, FileAnalysis]] = {}
        self._index_keys: frozenset | None = None
        self._packages: dict[str, tuple[str, list[str]]] = {}   # name -> (text, packages it defines)
        self._pass: Pass | None = None
        self.stats = {"full": 0, "incremental": 0, "rechecked": 0}

    # -- contents ---------------------------------------------------------------------

    def set_file(self, name: str, text: str) -> None:
        self.texts[name] = text
        self._changed()

    def remove_file(self, name: str) -> None:
        self.texts.pop(name, None)
        self.files.pop(name, None)
        self._changed()

    def _changed(self) -> None:
        self._stale = True
        self._complete = False
        self.generation += 1
        self._structure += 1

    @property
    def complete(self) -> bool:
        """Whether every file is analysed against the whole program (project-wide answers are whole)."""
        return not self._stale and self._complete

    def text(self, name: str) -> str:
        """The file's current text ("" for a file the workspace does not hold)."""
        analysis = self.files.get(name)
        return analysis.source.text if analysis is not None and not self._stale else self.texts.get(name, "")

    # -- analysis -----------------------------------------------------------------------

    def analyse(self) -> None:
        """Analyse the whole workspace now (a pass begun earlier is finished)."""
        while not self.complete:
            if self.focus is not None and self._stale:
                deep.call(self._focused)  # complete when the index still holds
                continue
            work = self.start_pass()
            while work.step():
                pass

    def ready(self) -> None:
        """Make the open files' analysis current: without `focus`, the whole workspace's; with it,
        the open files' and their requires' (`complete` stays False until a pass has run)."""
        if self.focus is None:
            self.analyse()
        elif self._stale:
            deep.call(self._focused)

    def start_pass(self) -> Pass:
        """The analysis of the whole workspace, to run a step at a time (the one under way, while
        nothing has changed since it began)."""
        if self._pass is None or self._pass.out_of_date or self._pass.finished:
            self._pass = Pass(self)
        return self._pass

    def keep(self, name: str) -> None:
        """Keep a file nobody has open whole from now on (a request about it came): it is read
        again and its definitions checked against the program as it is, so nothing else changes."""
        if self.focus is None or name in self.focus or name not in self.texts:
            return
        self.focus.add(name)
        analysis = None if self._stale else self.files.get(name)
        if analysis is None or analysis.kept:
            if analysis is None:
                self._changed()
            return
        deep.call(self._keep, analysis)

    def _keep(self, owner: FileAnalysis) -> None:
        with _gc_paused():
            if not _graft(owner.module, lower(read_source(owner.source))):
                self._changed()
                return
            scopes = [s for s in _user_scopes(self.program) if s.module is owner.module]
            owner.facts = {id(dfn): _check(self.program, owner, scope, dfn)
                           for scope in scopes for dfn in _in_check_order(scope)}
            owner.imports = [diag for scope in scopes for diag in _unused_imports(self.program, owner, scope)]
            owner.kept = True
            self._summaries.pop(owner.source.name, None)
            self._index.pop(owner.source.name, None)

    def _file(self, name: str) -> FileAnalysis | None:
        """The file's analysis, current; a file of the workspace missing from it (not required by
        the open files) is kept whole from now on, so that it is there to answer about."""
        self.ready()
        analysis = self.files.get(name)
        if analysis is None and name in self.texts and self.focus is not None:
            self.keep(name)
            self.ready()
            analysis = self.files.get(name)
        return analysis

    def _kept(self, name: str) -> bool:
        return self.focus is None or name in self.focus

    def _summary(self, name: str, text: str) -> Module:
        """A file's declarations (`summarise`d), read once per text."""
        found = self._summaries.get(name)
        if found is not None and found[0] == text:
            return found[1]
        with _gc_paused():
            module = summarise(lower(read_source(Source(text, name))))
        self._summaries[name] = (text, module)
        return module

    def _defined_in(self, name: str, text: str) -> list[str]:
        found = self._packages.get(name)
        if found is None or found[0] is not text:
            found = self._packages[name] = (text, _DEFPACKAGE.findall(text))
        return found[1]

    def _focused(self) -> None:
        """The open files, read and checked, over the declarations of the files they require
        (transitively) and of every other file whose declarations are known already."""
        with _gc_paused():
            self._index_closed()
            modules: dict[str, Module] = {}
            for name, text in self.texts.items():
                if name in self.focus:
                    modules[name] = lower(read_source(Source(text, name)))
            wanted = [r.package for m in modules.values() for p in m.packages for r in p.requires]
            seen: set[str] = set()
            while wanted:
                package = wanted.pop()
                if package in seen:
                    continue
                seen.add(package)
                for name, text in self.texts.items():
                    if name not in modules and package in self._defined_in(name, text):
                        modules[name] = module = self._summary(name, text)
                        wanted += [r.package for p in module.packages for r in p.requires]
            for name, text in self.texts.items():  # what is known already costs nothing
                known = self._summaries.get(name)
                if name not in modules and known is not None and known[0] == text:
                    modules[name] = known[1]
            order = [name for name in self.texts if name in modules]
            program = Program([modules[n] for n in order], list(standard_modules() if self.standard is None
                                                                else self.standard))
            files = _files_of(program, {n: modules[n] for n in order}, self._kept)
            indexed = 0
            if _declared(program) == self._index_keys:
                # What the files nobody has open resolve is what it was: their index still holds.
                for name, owner in files.items():
                    entry = self._index.get(name)
                    if not owner.kept and entry is not None and entry[0] == self.texts[name] \
                            and entry[1].module is owner.module:
                        owner.facts, owner.imports = entry[1].facts, entry[1].imports
                        indexed += 1
            for scope in _user_scopes(program):
                owner = files[scope.module.tree.source.name]
                if owner.kept:
                    for definition in _in_check_order(scope):
                        owner.facts[id(definition)] = _check(program, owner, scope, definition)
            for scope in _user_scopes(program):
                owner = files[scope.module.tree.source.name]
                if owner.kept:
                    owner.imports += _unused_imports(program, owner, scope)
            self.program, self.files = program, files
            self._stale = False
            self._complete = len(order) == len(self.texts) and \
                indexed == sum(1 for f in files.values() if not f.kept)
            if self._complete:  # no pass to come: the collector looks at it all again (`_gc_paused`)
                gc.unfreeze()

    def _index_closed(self) -> None:
        """The files no longer open whose analysis is whole and current (checked against a program
        declaring what the index's was) join the index, as an index."""
        if self.program is None or not self.files:
            return
        closed = [(name, owner) for name, owner in self.files.items()
                  if owner.kept and name not in self.focus and self.texts.get(name) == owner.source.text]
        if not closed or _declared(self.program) != self._index_keys:
            return
        for name, owner in closed:
            if owner.source.needs_compaction:
                continue
            summarise(owner.module)
            owner.facts = {key: _slim(facts) for key, facts in owner.facts.items()}
            owner.kept = False
            self._summaries[name] = (owner.source.text, owner.module)
            self._index[name] = (owner.source.text, owner)

    def _refresh_imports(self, only: str | None = None) -> None:
        for analysis in self.files.values():
            if (only is None or analysis.source.name == only) and analysis.kept:
                analysis.imports = []
        for scope in _user_scopes(self.program):
            owner = self.files[scope.module.tree.source.name]
            if (only is not None and owner.source.name != only) or not owner.kept:
                continue
            owner.imports += _unused_imports(self.program, owner, scope)

    def _check(self, owner: FileAnalysis, scope: PackageScope, definition: Definition) -> Facts:
        return _check(self.program, owner, scope, definition)

    def edit(self, name: str, start: int, end: int, new_text: str) -> None:
        """Apply an editor's change to a file: replace text[start:end] with `new_text`.

        An edit the analysis cannot absorb in place only marks it stale: the work
        from scratch is done when a result is next asked for, so a burst of edits
        costs one analysis, not one each.
        """
        text = self.texts[name]
        self.generation += 1  # a pass under way has an out-of-date analysis of this file (`Pass._finish`)
        analysis = None if self._stale else self.files.get(name)
        if (analysis is None or analysis.source.needs_compaction
                or not self._edit_in_place_or_not(analysis, start, end, new_text)):
            # The source may hold a half-done in-place attempt: it goes with the rest.
            self.texts[name] = text[:start] + new_text + text[end:]
            self._changed()
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
        if not analysis.kept or any(diag.code in _RECOVERED for diag in analysis.syntax):
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
                        if not owner.kept:
                            continue  # an index holds names and calls, which a signature does not change
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
        self.ready()
        analysis = self.files.get(name)
        return analysis.diagnostics() if analysis else []

    def all_diagnostics(self) -> list[Diagnostic]:
        self.analyse()
        return [diag for analysis in self.files.values() for diag in analysis.diagnostics()]

    # -- queries ------------------------------------------------------------------------

    def _facts(self, name: str, offset: int | None = None) -> list[Facts]:
        """The facts of the definition around `offset` (all of the file's when none is)."""
        analysis = self._file(name)
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
                out += [token for token, s in facts.refs if same_symbol(s, symbol) and token is not symbol.node]
        for scope in self.program.packages.values():
            for _, (s, token) in scope.refers.items():
                if same_symbol(s, symbol):
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
        self._file(name)
        return [s for s in self.program.packages.values() if s.module.tree.source.name == name]


_UNUSED = frozenset({d.UNUSED_BINDING.code, d.UNUSED_PARAMETER.code})
_DEFPACKAGE = re.compile(r"\(\s*defpackage\s+([^\s()\[\]{}\";]+)")
CHECK_BATCH = 40   # definitions checked in one step of a pass


class Pass:
    """The analysis of the whole workspace, a step at a time: read each file (a file kept as an
    index for its declarations only), build the program, check each file (an index's file read
    again for its bodies, then dropped to its index), then put it all in place, unless the
    workspace changed meanwhile (`out_of_date`: start another). Each step is one file read or
    `CHECK_BATCH` definitions checked, and can be run again (on a deeper stack, `deep.call`)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.generation = ws.generation
        self.structure = ws._structure
        self.texts = dict(ws.texts)
        self.total = len(self.texts)
        self.read = 0
        self.checked = 0
        self.finished = False
        self.modules: dict[str, Module] = {}
        self.program: Program | None = None
        self.files: dict[str, FileAnalysis] = {}
        self._steps = self._plan()

    @property
    def out_of_date(self) -> bool:
        """A change other than an edit in place came since it began (`_finish` deals with those)."""
        return self.structure != self.ws._structure

    @property
    def message(self) -> str:
        if self.program is None:
            return f"{self.read}/{self.total} files read"
        return f"{self.checked}/{self.total} files checked"

    @property
    def fraction(self) -> float:
        return (self.read + self.checked) / (2 * self.total) if self.total else 1.0

    def step(self) -> bool:
        """Do the next step; False when there is none left (finished, or out of date)."""
        if self.finished or self.out_of_date:
            self._drop()
            return False
        work = next(self._steps, None)
        if work is None:
            return False
        with _gc_paused():
            deep.call(work)
        return not self.finished

    def _plan(self) -> Iterator[Callable[[], None]]:
        for name in self.texts:
            yield lambda name=name: self._read(name)
        yield self._build
        for name in self.texts:
            owner = self.files[name]
            scopes = [s for s in _user_scopes(self.program) if s.module is owner.module]
            yield lambda owner=owner: self._graft(owner)
            for scope in scopes:
                order = _in_check_order(scope)
                for at in range(0, len(order), CHECK_BATCH):
                    yield lambda owner=owner, scope=scope, batch=order[at:at + CHECK_BATCH]: \
                        self._check_batch(owner, scope, batch)
            yield lambda owner=owner, scopes=scopes: self._done_with(owner, scopes)
        yield self._finish

    def _read(self, name: str) -> None:
        text = self.texts[name]
        if self.ws._kept(name):
            self.modules[name] = lower(read_source(Source(text, name)))
        else:  # a copy: the pass lends it bodies while it checks them
            self.modules[name] = _copy_summary(self.ws._summary(name, text))
        self.read += 1

    def _build(self) -> None:
        standard = list(standard_modules() if self.ws.standard is None else self.ws.standard)
        self.program = Program(list(self.modules.values()), standard)
        self.files = _files_of(self.program, self.modules, self.ws._kept)

    def _graft(self, owner: FileAnalysis) -> None:
        """A file kept as an index is read again, its definitions given their bodies to check."""
        if not owner.kept:
            _graft(owner.module, lower(read_source(owner.source)))

    def _check_batch(self, owner: FileAnalysis, scope: PackageScope, batch: list[Definition]) -> None:
        for definition in batch:
            owner.facts[id(definition)] = _check(self.program, owner, scope, definition)

    def _done_with(self, owner: FileAnalysis, scopes: list[PackageScope]) -> None:
        owner.imports = []
        for scope in scopes:
            owner.imports += _unused_imports(self.program, owner, scope)
        if not owner.kept:
            summarise(owner.module)
            owner.facts = {key: _slim(facts) for key, facts in owner.facts.items()}
        self.checked += 1

    def _finish(self) -> None:
        ws = self.ws
        if self.out_of_date:
            return
        ws._summaries = {name: (self.texts[name], owner.module) for name, owner in self.files.items()
                         if not owner.kept}
        ws._index = {name: (self.texts[name], owner) for name, owner in self.files.items() if not owner.kept}
        ws._index_keys = _declared(self.program)
        if self.generation == ws.generation:
            ws.program, ws.files = self.program, self.files
            ws._stale, ws._complete = False, True
        else:
            # Open files were edited in place meanwhile: they are analysed again at their new
            # text, over this index (`_focused`), and the whole is complete then.
            ws._stale = True
        ws.stats["full"] += 1
        self.finished = True
        self._drop()
        gc.unfreeze()

    def _drop(self) -> None:
        """Let go of what the pass made (the workspace holds what it keeps)."""
        self.modules, self.files, self.program = {}, {}, None
        self._steps = iter(())


@contextmanager
def _gc_paused():
    """The analysis makes many small objects and frees few until it is done: the collector's
    passes over a heap of 100,000 lines would cost more than the analysis itself (half of a
    pass's time). So it is paused meanwhile, and what the work made is frozen after it (left out
    of the collector's passes, `gc.freeze`) until a pass ends (`Pass._finish` unfreezes it all,
    so that what the analysis left behind in cycles is collected in time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def summarise(module: Module) -> Module:
    """Drop what only checking a file's definitions needs: its tree, its definitions' bodies and
    values (their names, parameters, annotations and docs stay, and every node's span). In place."""
    module.tree = Tree(module.tree.source, [], module.tree.diagnostics)
    for package in module.packages:
        package.node = _stub(package.node)
        for definition in package.definitions:
            definition.node = _stub(definition.node)
            definition.body = []
            definition.value = None
    return module


def _graft(summary: Module, full: Module) -> bool:
    """Give a summary's definitions (the program's) the bodies of the same file read again
    whole: reading is deterministic, so the two list the same definitions in the same order."""
    if len(summary.packages) != len(full.packages) or any(
            len(a.definitions) != len(b.definitions) for a, b in zip(summary.packages, full.packages)):
        return False
    summary.tree = full.tree
    for mine, theirs in zip(summary.packages, full.packages):
        mine.node = theirs.node
        for a, b in zip(mine.definitions, theirs.definitions):
            a.node, a.body, a.value = b.node, b.body, b.value
    return True


def _copy_summary(module: Module) -> Module:
    packages = [dataclasses.replace(p, definitions=[dataclasses.replace(dfn) for dfn in p.definitions])
                for p in module.packages]
    return Module(module.tree, packages, module.diagnostics)


def _stub(node: Seq) -> Seq:
    """A sequence with its brackets (its span) and nothing between them."""
    if not node.items and (node.close is not None or not node.items):
        return node
    return Seq(node.kind, node.open, [] if node.close is not None else [node.items[-1]], node.close)


def _slim(facts: Facts) -> Facts:
    """What the project-wide queries need of a file nobody has open: its diagnostics, the
    definitions it names (not its locals: only an open file's are asked about) and the calls it
    makes (each by its head alone)."""
    calls = [(Seq(call.kind, call.open, call.forms[:1], call.close), symbol, sig) for call, symbol, sig in facts.calls]
    refs = [(token, symbol) for token, symbol in facts.refs if symbol.kind not in _LOCAL_KINDS]
    return Facts(diagnostics=facts.diagnostics, refs=refs, calls=calls)


_LOCAL_KINDS = frozenset({"parameter", "local"})


def _declared(program: Program) -> frozenset:
    """What a program declares, as the index of files nobody has open depends on it: packages and
    their definitions' names and kinds (not their signatures: an index holds names and calls)."""
    keys: dict[tuple, int] = {}
    for scope in _user_scopes(program):
        keys[(scope.name,)] = keys.get((scope.name,), 0) + 1
        for symbol in scope.decls.values():
            key = (scope.name, symbol.name, symbol.kind)
            keys[key] = keys.get(key, 0) + 1
    return frozenset(keys.items())


def same_symbol(a: Symbol, b: Symbol) -> bool:
    """Whether two symbols name the same definition: the index of files nobody has open was
    checked against an earlier program, whose symbols are other objects (locals are by identity)."""
    return a is b or (a.kind == b.kind and a.kind not in ("parameter", "local") and a.package == b.package
                      and a.name == b.name and a.package is not None)


def _user_scopes(program: Program) -> list[PackageScope]:
    return [scope for scope in program.packages.values() if not scope.standard]


def _in_check_order(scope: PackageScope) -> list[Definition]:
    # Constants first: an unannotated one's type is what its value gives,
    # and the functions using it must see that whatever the order.
    return sorted(scope.package.definitions, key=lambda dfn: dfn.form != "def")


def _files_of(program: Program, modules: dict[str, Module], kept) -> dict[str, FileAnalysis]:
    """Each file's analysis before its definitions are checked: its reading's and lowering's
    problems, and the program's (resolution) problems found in it."""
    files = {name: FileAnalysis(module.tree.source, module, [*module.tree.diagnostics, *module.diagnostics],
                                kept=kept(name))
             for name, module in modules.items()}
    _drop_follow_ons(program, files)
    for diag in program.diagnostics:
        owner = files.get(diag.span.source.name)
        if owner is not None:
            owner.program.append(diag)
    return files


def _drop_follow_ons(program: Program, files: dict[str, FileAnalysis]) -> None:
    """Problems of shape found lowering a definition whose brackets the reader had to
    guess are follow-ons of the one missing bracket: its FM101 says it all."""
    if not program.damaged:
        return
    for scope in _user_scopes(program):
        ranges = [(dfn.node.start, dfn.node.end) for dfn in scope.package.definitions if id(dfn) in program.damaged]
        if not ranges:
            continue
        owner = files[scope.module.tree.source.name]
        owner.syntax = [diag for diag in owner.syntax
                        if diag.code.startswith(("FM0", "FM1"))
                        or not any(a <= diag.span.start < b for a, b in ranges)]


def _check(program: Program, owner: FileAnalysis, scope: PackageScope, definition: Definition) -> Facts:
    facts = check_definition(program, scope, definition)
    if _too_deep_within(owner, definition.node):
        # The names a form too deep to check uses are unknown: none is "never used".
        facts.diagnostics = [diag for diag in facts.diagnostics if diag.code not in _UNUSED]
    return facts


def _unused_imports(program: Program, owner: FileAnalysis, scope: PackageScope) -> list[Diagnostic]:
    if _too_deep_within(owner, scope.package.node):
        return []  # what the part too deep to check uses is unknown
    refs = []
    for definition in scope.package.definitions:
        facts = owner.facts.get(id(definition))
        if facts is not None:
            refs += facts.refs
    return unused_imports(scope, refs, program.damaged)


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
