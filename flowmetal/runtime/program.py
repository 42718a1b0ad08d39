"""A program ready to run: checked, and indexed so that a run's state can name its code.

A run's state refers to code by *expression id*: a number given to every
lowered expression in a fixed walk of the program (packages, definitions,
expressions in order), so the same sources always give the same ids, in any
process. That is what lets a suspended run be resumed elsewhere: its state
holds ids and values, never Python objects.

`load` refuses a program with errors, with their diagnostics, and a program
with a file name that is not a plain relative name (`flowmetal.lang.filenames`):
tools turn those names into paths.

The standard packages a program uses are part of it. Their ids are numbered in
the same walk, and their Flowmetal code (`retry!`) runs like the program's own,
so a run resumed after Flowmetal was upgraded must find the very standard code
it started with. A new run therefore stores, beside its files, the sources of
the standard packages it uses (those its packages require, and what those
require) under `@stdlib/PACKAGE.flow` (`Program.stored`). No file of a new
program may be named so (`load_new` refuses it), so the names never collide;
they are still plain relative names, so tools show them like any stored file
(`@stdlib/flowmetal.retry.flow:14`).
`load` of a stored program with such files uses them, and nothing installed;
a program stored before they were kept (none among its files) uses the
installed standard packages, as it always did.

The code hash covers the standard sources stored with a run: it names the exact
program a run's expression ids are numbered over, and every cache of loaded
programs is keyed by it, so the same files run under two Flowmetal versions
whose standard packages differ must not share one. The same files with the
same standard packages hash the same, whatever the version.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache

from flowmetal.lang import filenames
from flowmetal.lang.analysis import Workspace, standard_modules
from flowmetal.lang.diagnostics import Diagnostic
from flowmetal.lang.forms import (
    Call, Cond, Definition, Do, Expr, FnExpr, If, Let, Logic, MapLit, Match, Name, VectorLit, When,
)
from flowmetal.lang.forms import Module, lower
from flowmetal.lang.resolve import PackageScope, Symbol
from flowmetal.lang.source import Source
from flowmetal.lang.syntax import Token, read_source

# The folder of a stored program that holds the standard packages it uses: `@stdlib/flowmetal.time.flow`.
STANDARD_FOLDER = "@stdlib/"


class ProgramError(Exception):
    """The program does not check: it is refused, with its diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0]
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(f"{first.span.source.name}:{first.span.line}:{first.span.column}: "
                         f"{first.code}: {first.message}{more}")


class ProgramNameError(ProgramError):
    """A file of the program has a bad name: refused before reading any of it (no diagnostics)."""

    def __init__(self, message: str) -> None:
        self.diagnostics = []
        Exception.__init__(self, message)


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def code_hash(sources: dict[str, str]) -> str:
    """One hash for a whole program: its files' names and contents."""
    return stored_code_hash({n: source_hash(t) for n, t in sources.items()})


def stored_code_hash(program: dict[str, str]) -> str:
    """`code_hash` of a stored program (file names to their sources' hashes), computed from it
    rather than taken on trust: what tools cache a run's program under."""
    return hashlib.sha256(json.dumps(sorted(program.items())).encode()).hexdigest()


def is_standard(name: str) -> bool:
    """Whether a stored program's file `name` is a standard package's source kept with the run."""
    return name.startswith(STANDARD_FOLDER)


@dataclass
class Program:
    sources: dict[str, str]                                     # the program's own files
    workspace: Workspace
    # The standard packages it uses, under their stored names (`@stdlib/...`): the ones stored
    # with the run, else (a new program, a run stored before they were kept) the installed ones.
    standard: dict[str, str] = field(default_factory=dict)
    exprs: list[Expr] = field(default_factory=list)              # by expression id
    ids: dict[int, int] = field(default_factory=dict)            # id(expr) -> expression id
    symbols: dict[int, Symbol] = field(default_factory=dict)     # id(name token) -> what it names
    functions: dict[tuple[str, str], Definition] = field(default_factory=dict)
    scopes: dict[str, PackageScope] = field(default_factory=dict)
    hash: str = ""

    def expr_id(self, expr: Expr) -> int:
        return self.ids[id(expr)]

    @property
    def stored(self) -> dict[str, str]:
        """What a new run of this program stores: its files, then the standard packages it uses."""
        return {**self.sources, **self.standard}

    @property
    def stored_hash(self) -> str:
        """The code hash of a new run of this program (`stored`)."""
        return code_hash(self.stored)

    def symbol(self, token: Token) -> Symbol | None:
        return self.symbols.get(id(token))

    def package_of(self, entry: str, first: str | None = None) -> tuple[str, str]:
        """The package and name of an entry: `package/name` as written. A bare `name` is taken
        without `first` only in a program of one package (how a run records it, and what the
        HTTP API takes). With `first` (the file the user named, for `flowmetal run`), it is
        looked up among the functions of the packages that file defines, and among the
        others only when none of them defines it, so a name is ambiguous only when two
        packages of the same group define it. A name no package defines is given to the
        single package of the program (for `check_entry` to say there is no such function),
        else refused, with the nearest name."""
        if "/" in entry and not entry.endswith("/"):
            package, _, name = entry.rpartition("/")
            return package, name
        users = [s for s in self.scopes.values() if not s.standard]
        if first is None:  # a stored run, the HTTP API: only a program of one package takes a bare name
            if len(users) != 1:
                raise KeyError(f"`{entry}` is ambiguous: name its package, as `package/{entry}` "
                               f"(packages: {', '.join(sorted(s.name for s in users))})")
            return users[0].name, entry
        mine = [s for s in users if s.package.name_node.span.source.name == first]
        groups = [mine, [s for s in users if s not in mine]] if mine else [users]
        for group in groups:
            defining = sorted(s.name for s in group if _is_function(s.decls.get(entry)))
            if len(defining) == 1:
                return defining[0], entry
            if len(defining) > 1:
                where = f" of {first}" if group is mine else ""
                raise KeyError(f"`{entry}` is ambiguous: the packages {' and '.join(f'`{p}`' for p in defining)}"
                               f"{where} {'both' if len(defining) == 2 else 'all'} define it; name its package, "
                               f"as `{defining[0]}/{entry}`")
        if len(users) == 1:
            return users[0].name, entry
        raise KeyError(f"no package of the program defines a function `{entry}`"
                       + (did_you_mean(entry, self.function_names(groups[0]))
                          or did_you_mean(entry, self.function_names(users))))

    def entry_name(self, entry: str, first: str | None = None) -> str:
        """The entry as a run records it: as written when it means the same without `first`
        (what every other process resuming the run sees), else `package/name`."""
        package, name = self.package_of(entry, first)
        try:
            if self.package_of(entry) == (package, name):
                return entry
        except KeyError:
            pass
        return f"{package}/{name}"

    @staticmethod
    def function_names(scopes) -> list[str]:
        """The names of the functions `scopes` define."""
        return [n for s in scopes for n, sym in s.decls.items() if _is_function(sym)]


def _is_function(symbol: Symbol | None) -> bool:
    return symbol is not None and symbol.kind == "function"


def did_you_mean(name: str, candidates) -> str:
    """`; did you mean `x`?` for the nearest of `candidates` to `name`, or nothing."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def load_new(sources: dict[str, str]) -> Program:
    """`load` for the files of a new run, which must not pose as the standard packages."""
    for name in sources:
        if isinstance(name, str) and is_standard(name):
            raise ProgramNameError(f"bad file name {filenames.shown(name)}: `{STANDARD_FOLDER}` holds the "
                                   f"standard packages a run stores with it; a program's own file may not "
                                   f"be named so")
    return load(sources)


def load(sources: dict[str, str]) -> Program:
    """A program from its files, a stored run's (`@stdlib/` files: the standard packages kept with
    it) or a new one's. Raises `ProgramNameError` or `ProgramError`."""
    for name in sources:
        try:
            filenames.check(name)
        except filenames.FileNameError as error:
            raise ProgramNameError(str(error)) from None
    own = {n: t for n, t in sources.items() if not is_standard(n)}
    kept = {n: t for n, t in sources.items() if is_standard(n)}
    for name in kept:
        if "/" in name[len(STANDARD_FOLDER):] or not name.endswith(".flow"):
            raise ProgramNameError(f"bad file name {filenames.shown(name)}: a standard package kept with a "
                                   f"run is named `{STANDARD_FOLDER}PACKAGE.flow`")
    workspace = Workspace(tuple(_lowered(n, t) for n, t in sorted(kept.items())) if kept else None)
    for name, text in own.items():
        workspace.set_file(name, text)
    errors = [d for d in workspace.all_diagnostics() if d.is_error]
    if errors:
        raise ProgramError(errors)
    program = Program(own, workspace, hash=code_hash(sources))
    program.standard = kept or _used_standard(workspace)
    for scope in workspace.program.packages.values():
        program.scopes[scope.name] = scope
        for definition in scope.package.definitions:
            if definition.form in ("defn", "defendpoint", "def"):
                program.functions[(scope.name, definition.name)] = definition
    number(program)
    for analysis in workspace.files.values():
        for facts in analysis.facts.values():
            for token, symbol in facts.refs:
                program.symbols[id(token)] = symbol
    # The standard packages' own code (e.g. `make-duration`) needs its names too.
    from flowmetal.lang.check import check_definition
    for scope in workspace.program.packages.values():
        if scope.standard:
            for definition in scope.package.definitions:
                for token, symbol in check_definition(workspace.program, scope, definition).refs:
                    program.symbols[id(token)] = symbol
    return program


@lru_cache(maxsize=64)
def _lowered(name: str, text: str) -> Module:
    """A standard package's source kept with a run, read and lowered (once per process for each
    text: runs of one Flowmetal version share them, as programs share the installed ones)."""
    return lower(read_source(Source(text, name)))


def _used_standard(workspace: Workspace) -> dict[str, str]:
    """The installed standard packages the program's own packages require, directly or through
    other standard packages, under their stored names, in the order of their names."""
    installed = {id(m): m for m in standard_modules()}
    seen: set[int] = set()
    todo = [s for s in workspace.program.packages.values() if not s.standard]
    used = {}
    while todo:
        scope = todo.pop()
        for target in scope.aliases.values():
            if target.standard and id(target) not in seen:
                seen.add(id(target))
                todo.append(target)
                if id(target.module) in installed:
                    source = target.module.tree.source
                    used[STANDARD_FOLDER + source.name.replace("\\", "/").rsplit("/", 1)[-1]] = source.text
    return dict(sorted(used.items()))


def number(program: Program, last: Definition | None = None) -> None:
    """Give every expression of `program` its id, in the fixed walk (packages, definitions,
    expressions in order); with `last`, that definition's expressions are numbered after all the
    others, so the others keep the ids they have in the program without it (the debugger's
    evaluation adds a function to a copy of a run's program, and the run's closures name their
    code by these ids)."""
    program.exprs.clear()
    program.ids.clear()
    for scope in program.workspace.program.packages.values():
        for definition in scope.package.definitions:
            if definition is not last:
                _index(program, definition)
    if last is not None:
        _index(program, last)


def _index(program: Program, definition: Definition) -> None:
    stack: list[Expr] = []
    roots = list(definition.body)
    if definition.value is not None:
        roots.append(definition.value)
    roots += [p.default for p in definition.params if p.default is not None]
    stack.extend(reversed(roots))
    while stack:
        e = stack.pop()
        if id(e) in program.ids:
            continue
        program.ids[id(e)] = len(program.exprs)
        program.exprs.append(e)
        stack.extend(reversed(_children(e)))


def _children(e: Expr) -> list[Expr]:
    kind = type(e)
    if kind is Call:
        return [e.fn, *e.args]
    if kind in (VectorLit, MapLit):
        return list(e.items)
    if kind is FnExpr:
        return [*e.body, *(p.default for p in e.params if p.default is not None)]
    if kind is Let:
        return [*(b.value for b in e.bindings), *e.body]
    if kind is If:
        return [e.test, e.then] + ([e.orelse] if e.orelse is not None else [])
    if kind is When:
        return [e.test, *e.body]
    if kind is Cond:
        out = []
        for test, result in e.clauses:
            out += [test, result]
        return out + ([e.orelse] if e.orelse is not None else [])
    if kind is Do:
        return list(e.body)
    if kind is Logic:
        return list(e.items)
    if kind is Match:
        out = [e.subject]
        for clause in e.clauses:
            out += clause.body
        return out
    return []


__all__ = ["Program", "ProgramError", "ProgramNameError", "STANDARD_FOLDER", "is_standard", "load", "load_new",
           "source_hash", "code_hash", "stored_code_hash", "Name"]
