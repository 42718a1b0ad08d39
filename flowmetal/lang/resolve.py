"""Names: packages, what each defines and refers, and what a name means where it stands.

A `Program` is every package of a workspace (all its files) plus the standard
packages (`flowmetal/stdlib/*.flow`, read like user code). A user package named
like a standard one replaces it, with a warning. For each package, `declare`
makes a `Symbol` of every definition:

    defn NAME         a function                 NAME
    defendpoint NAME! an endpoint (durable step)  NAME!
    def NAME          a constant                 NAME
    defrecord NAME    a constructor, a type      NAME, NAME?, and an accessor NAME-FIELD per field
    defenum NAME      a type, its members        NAME?, +MEMBER+ ...
    deftype NAME      a type alias               NAME?

then `requires` resolves each `(require ...)`: the package must exist, each
`:refer`red name must be one it defines, and `:as` makes an alias for qualified
names `alias/name`. A name in an expression is looked up in the lexical scopes
(by the checker), then the package's own definitions, then what it refers, then
the built-ins. A name defined in another package but not referred is reported
as such, with a fix adding it to the `:refer` vector.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from flowmetal.lang import diagnostics as d
from flowmetal.lang.diagnostics import Diagnostic, Edit, Fix, Note
from flowmetal.lang.forms import Definition, Module, Package, TypeApp, TypeExpr, TypeInvalid, TypeRef, TYPE_VARIABLE
from flowmetal.lang.signatures import BUILTINS, Sig, SigParam
from flowmetal.lang.source import Span
from flowmetal.lang.syntax import Token
from flowmetal.lang.types import (
    ANY, ANY_FN, ANY_LIST, ANY_MAP, BASES, HANDLES, NIL, Enum, FnOf, Handle, ListOf, MapOf, Record, TVar, Type,
    named, union,
)

STDLIB = Path(__file__).resolve().parents[1] / "stdlib"  # flowmetal/stdlib, beside lang/


@dataclass(eq=False, slots=True)
class Symbol:
    """Something a name can mean: a definition, a parameter or local, a built-in."""
    name: str
    kind: str             # function endpoint constant constructor accessor type member parameter local builtin package
    package: str | None
    node: Token | None    # the defining name (None for built-ins)
    type: Type = ANY      # the value's type (a function's `fn?` type)
    sig: Sig | None = None
    doc: str | None = None
    predicate_of: Type | None = None   # for type names: the type they test
    definition: Definition | None = None
    record: Record | None = None       # constructors and accessors
    field_index: int = -1              # accessors

    @property
    def is_durable(self) -> bool:
        return self.kind == "endpoint"


BUILTIN_SYMBOLS = {name: Symbol(name, "builtin", None, None, b.sig.fn_type() if b.predicate_of is None else FnOf((ANY,), BASES["bool?"]),
                                b.sig, b.doc, b.predicate_of)
                   for name, b in BUILTINS.items()}


@dataclass(eq=False)
class PackageScope:
    name: str
    package: Package
    module: Module
    standard: bool
    decls: dict[str, Symbol] = field(default_factory=dict)
    refers: dict[str, tuple[Symbol, Token]] = field(default_factory=dict)
    aliases: dict[str, PackageScope] = field(default_factory=dict)


class Program:
    """The packages of a workspace, declared and with their requires resolved."""

    def __init__(self, modules: list[Module], standard: list[Module]) -> None:
        self.packages: dict[str, PackageScope] = {}
        self.diagnostics: list[Diagnostic] = []
        user_names = {p.name for m in modules for p in m.packages}
        for module in standard:
            for package in module.packages:
                if package.name not in user_names:
                    self.packages[package.name] = PackageScope(package.name, package, module, True)
        standard_names = {p.name for m in standard for p in m.packages}
        for module in modules:
            for package in module.packages:
                if package.name in self.packages and not self.packages[package.name].standard:
                    first = self.packages[package.name].package
                    self.report(d.DUPLICATE_DEFINITION, package.name_node.span,
                                f"package `{package.name}` is already defined",
                                notes=(Note(first.name_node.span, "first defined here"),))
                    continue
                if package.name in standard_names:
                    self.report(d.SHADOWS_STANDARD_PACKAGE, package.name_node.span,
                                f"package `{package.name}` shadows the standard package of that name: "
                                f"its definitions replace the standard ones everywhere in this program")
                self.packages[package.name] = PackageScope(package.name, package, module, False)
        scopes = list(self.packages.values())
        self.damaged: set[int] = set()  # ids of the definitions whose structure the reader guessed
        for scope in scopes:
            self.find_damaged(scope)
        for scope in scopes:
            self.declare(scope)
        for scope in scopes:
            self.resolve_requires(scope)
        # Types before the signatures that use them: aliases, then records, then functions.
        for scope in scopes:
            self.resolve_aliases(scope)
        for scope in scopes:
            self.resolve_records(scope)
        for scope in scopes:
            self.resolve_signatures(scope)

    def report(self, code: d.Code, span: Span, message: str, **extra) -> None:
        self.diagnostics.append(Diagnostic.of(code, span, message, **extra))

    # -- declarations ----------------------------------------------------------------

    def find_damaged(self, scope: PackageScope) -> None:
        """The definitions holding a bracket nothing closes, or a string that never ends: the
        reader closed them where the layout says, a guess. Their other problems are likely
        follow-ons of that one mistake (see `flowmetal.check`), so are not reported."""
        lost = [diag.span.start for diag in scope.module.tree.diagnostics if diag.code in _STRUCTURE_LOST]
        if not lost:
            return
        for definition in scope.package.definitions:
            start, end = definition.node.start, definition.node.end
            if any(start <= at < end for at in lost):
                self.damaged.add(id(definition))

    def _add(self, scope: PackageScope, symbol: Symbol) -> None:
        previous = scope.decls.get(symbol.name)
        if previous is not None and previous.node is not None and symbol.node is not None:
            self.report(d.DUPLICATE_DEFINITION, symbol.node.span,
                        f"`{symbol.name}` is already defined in package `{scope.name}`",
                        notes=(Note(previous.node.span, "first defined here"),))
            return
        scope.decls[symbol.name] = symbol

    def declare(self, scope: PackageScope) -> None:
        pkg = scope.name
        for definition in scope.package.definitions:
            name, node, doc = definition.name, definition.name_node, definition.doc
            form = definition.form
            if form == "defn":
                self._add(scope, Symbol(name, "function", pkg, node, ANY_FN, None, doc, definition=definition))
            elif form == "defendpoint":
                self._add(scope, Symbol(name, "endpoint", pkg, node, ANY_FN, None, doc, definition=definition))
            elif form == "def":
                self._add(scope, Symbol(name, "constant", pkg, node, ANY, None, doc, definition=definition))
            elif form == "defrecord":
                record = Record(name, pkg)
                self._add(scope, Symbol(name, "constructor", pkg, node, ANY_FN, None, doc, definition=definition,
                                        record=record))
                self._add(scope, Symbol(name + "?", "type", pkg, node, FnOf((ANY,), BASES["bool?"]), None,
                                        doc, predicate_of=record, definition=definition))
                for i, param in enumerate(definition.fields):
                    self._add(scope, Symbol(f"{name}-{param.name}", "accessor", pkg, param.node, ANY_FN, None,
                                            f"The `{param.name}` field of a `{name}` record.",
                                            definition=definition, record=record, field_index=i))
            elif form == "defenum":
                enum = Enum(name, pkg, tuple(m.text for m in definition.members))
                self._add(scope, Symbol(name + "?", "type", pkg, node, FnOf((ANY,), BASES["bool?"]), None, doc,
                                        predicate_of=enum, definition=definition))
                for member in definition.members:
                    self._add(scope, Symbol(member.text, "member", pkg, member, enum, None,
                                            f"A member of the enum `{name}`.", definition=definition))
            elif form == "deftype":
                self._add(scope, Symbol(name + "?", "type", pkg, node, FnOf((ANY,), BASES["bool?"]), None, doc,
                                        predicate_of=ANY, definition=definition))

    def resolve_aliases(self, scope: PackageScope) -> None:
        """What each `deftype` stands for. Its own name is out of scope in its type, so
        `(deftype json json?)` re-exports the built-in type rather than naming itself."""
        for definition in scope.package.definitions:
            if definition.form == "deftype" and definition.type is not None:
                sym = scope.decls.get(definition.name + "?")
                if sym is not None and sym.definition is definition:
                    del scope.decls[sym.name]
                    try:
                        sym.predicate_of = named(self.type_of(definition.type, scope, ALIAS_TYPE), sym.name)
                    finally:
                        scope.decls[sym.name] = sym

    def resolve_records(self, scope: PackageScope) -> None:
        """The types of records' fields, their constructors' and accessors' signatures."""
        for definition in scope.package.definitions:
            if definition.form == "defrecord":
                ctor = scope.decls.get(definition.name)
                if ctor is None or ctor.definition is not definition:
                    continue
                record = ctor.record
                record.fields = [(p.name, self.type_of(p.type, scope, RECORD_FIELD) if p.type else ANY)
                                 for p in definition.fields]
                ctor.sig = Sig([SigParam(n, t) for n, t in record.fields], record)
                ctor.type = ctor.sig.fn_type()
                for i, (field_name, field_type) in enumerate(record.fields):
                    accessor = scope.decls.get(f"{definition.name}-{field_name}")
                    if accessor is not None and accessor.record is record:
                        accessor.sig = Sig([SigParam(definition.name, record)], field_type)
                        accessor.type = accessor.sig.fn_type()

    def resolve_signatures(self, scope: PackageScope) -> None:
        """Every function's and endpoint's signature, and annotated constants' types."""
        for definition in scope.package.definitions:
            self.resolve_definition(scope, definition)

    def resolve_definition(self, scope: PackageScope, definition: Definition) -> None:
        """The signature (or declared type) of one `defn`, `defendpoint` or `def`."""
        sym = scope.decls.get(definition.name)
        if sym is None or sym.definition is not definition:
            return
        if definition.form in ("defn", "defendpoint"):
            tvars: dict[str, TVar] = {}
            params = [SigParam(p.name, self.type_of(p.type, scope, tvars) if p.type else ANY,
                               p.default is not None) for p in definition.params]
            ret = self.type_of(definition.ret, scope, tvars) if definition.ret else ANY
            sym.sig = Sig(params, ret)
            if scope.standard and (scope.name, definition.name) == ("flowmetal.run", "start-run!") and params:
                # `(start-run! f arg...)`: the arguments after the function's are its own (the
                # checker types the call by `f`'s signature, `check.Checker.start_run`).
                sym.sig = Sig(params[:1], ret, rest=SigParam("arg", ANY))
            sym.type = sym.sig.fn_type()
        elif definition.form == "def":
            sym.type = self.type_of(definition.type, scope, {}) if definition.type is not None else ANY

    # -- requires ----------------------------------------------------------------------

    def resolve_requires(self, scope: PackageScope) -> None:
        for require in scope.package.requires:
            target = self.packages.get(require.package)
            if target is None:
                self.report(d.UNKNOWN_PACKAGE, require.package_node.span,
                            f"no package `{require.package}` in this program"
                            # never the requiring package itself: it cannot require itself
                            + self._suggest(require.package, [n for n in self.packages if n != scope.name]))
                continue
            if target is scope:
                self.report(d.UNKNOWN_PACKAGE, require.package_node.span,
                            f"package `{scope.name}` cannot require itself")
                continue
            scope.aliases[require.package] = target
            if require.alias is not None:
                scope.aliases[require.alias.text] = target
            for name in require.refer:
                if name.text in scope.decls and scope.decls[name.text].node is not None:
                    self.report(d.DUPLICATE_DEFINITION, name.span,
                                f"`{name.text}` is referred from `{require.package}` and also defined in this package",
                                notes=(Note(scope.decls[name.text].node.span, "defined here"),))
                    continue
                symbol = target.decls.get(name.text)
                if symbol is None:
                    note = ""
                    if target.standard is False and require.package in STANDARD_NAMES:
                        note = f" (this program's own `{require.package}` shadows the standard one)"
                    self.report(d.UNKNOWN_REFER, name.span,
                                f"`{name.text}` is not defined by package `{require.package}`{note}"
                                + self._suggest(name.text, target.decls))
                    continue
                scope.refers[name.text] = (symbol, name)

    @staticmethod
    def _suggest(name: str, candidates) -> str:
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
        return f"; did you mean `{close[0]}`?" if close else ""

    # -- lookups ------------------------------------------------------------------------

    def lookup(self, name: str, scope: PackageScope) -> Symbol | None:
        """A name in a package: qualified `alias/name`, own definition, referred, or built-in."""
        if "/" in name and len(name) > 1:
            alias, _, local = name.rpartition("/")
            target = scope.aliases.get(alias)
            if target is None:
                return None
            return target.decls.get(local)
        symbol = scope.decls.get(name)
        if symbol is not None:
            return symbol
        referred = scope.refers.get(name)
        if referred is not None:
            return referred[0]
        return BUILTIN_SYMBOLS.get(name)

    def defined_elsewhere(self, name: str, scope: PackageScope) -> list[PackageScope]:
        """The packages that define `name`, other than `scope` (for "not referred" errors)."""
        return [p for p in self.packages.values() if p is not scope and name in p.decls]

    # -- types ----------------------------------------------------------------------------

    def type_of(self, expr: TypeExpr | None, scope: PackageScope, tvars: dict[str, TVar] | NoVariables,
                on_ref=None, report=None) -> Type:
        """The type an annotation denotes. Unknown names are reported and become `any?`.

        `tvars` collects the signature's type variables (`a` and `a?` are one), or is a
        `NoVariables` where none may stand;
        `on_ref(token, symbol)` is told of every name resolved, for the references index;
        `report(code, span, message, **extra)` of every problem (default: silence: the
        checker resolves each annotation again and reports it with its definition).
        """
        report = report or _silent
        if expr is None or isinstance(expr, TypeInvalid):
            return ANY
        if isinstance(expr, TypeRef):
            name = expr.name
            if TYPE_VARIABLE.match(name):
                if isinstance(tvars, NoVariables):
                    report(d.UNKNOWN_TYPE, expr.node.span,
                           f"`{name}` is a type variable, and {tvars.where} cannot have one (nothing would "
                           f"ever say what it stands for): write the type itself, or `any?` for any value")
                    return ANY
                key = name.rstrip("?")
                return tvars.setdefault(key, TVar(key))
            symbol = self.lookup(name, scope)
            if symbol is not None and symbol.predicate_of is not None:
                if on_ref is not None:
                    on_ref(expr.node, symbol)
                return symbol.predicate_of
            if name == "nil":
                return NIL
            message = f"unknown type `{name}`"
            if symbol is not None:
                article = "an" if symbol.kind[0] in "aeiou" else "a"
                message = f"`{name}` is {article} {symbol.kind}, not a type"
            fix = None
            if symbol is None:
                others = self.defined_elsewhere(name, scope)
                if others and others[0].decls[name].predicate_of is not None:
                    message += f": it is defined in `{others[0].name}`, which this package does not refer"
                else:
                    known = [n for n in (*scope.decls, *scope.refers, *BUILTIN_SYMBOLS) if n.endswith("?")]
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
                    if close:
                        message += f"; did you mean `{close[0]}`?"
                        fix = Fix(f"replace with `{close[0]}`", (Edit(expr.node.span, close[0]),))
            report(d.UNKNOWN_TYPE, expr.node.span, message, fix=fix)
            return ANY
        if isinstance(expr, TypeApp):
            head = expr.head.name
            args = [self.type_of(a, scope, tvars, on_ref, report) for a in expr.args]
            if head == "list?" and len(args) == 1:
                return ListOf(args[0])
            if head == "map?" and len(args) == 2:
                return MapOf(args[0], args[1])
            if head in HANDLES and len(args) == 1:
                return Handle(head, args[0])
            if head == "union?":
                return union(args) if args else ANY
            if head == "fn?":
                ret = self.type_of(expr.ret, scope, tvars, on_ref, report) if expr.ret is not None else ANY
                return FnOf(tuple(args), ret) if expr.ret is not None or args else ANY_FN
            expected = {"list?": ("one element type: `(list? T)`", ANY_LIST),
                        "map?": ("a key and a value type: `(map? K V)`", ANY_MAP),
                        "task?": ("one type, of what the task yields: `(task? T)`", HANDLES["task?"]),
                        "child?": ("one type, of what the child run yields: `(child? T)`", HANDLES["child?"])}
            if head in expected:
                report(d.UNKNOWN_TYPE, expr.node.span, f"`{head}` takes {expected[head][0]}")
                return expected[head][1]
            report(d.UNKNOWN_TYPE, expr.head.node.span,
                   f"`{head}` takes no type arguments: only `list?`, `map?`, `fn?`, `union?`, `task?` and "
                   f"`child?` do")
            return ANY
        return ANY


def _silent(*args, **kwargs) -> None:
    pass


@dataclass(frozen=True, slots=True)
class NoVariables:
    """Given for `tvars` where a type can hold no type variable, since nothing would ever
    bind it (a record's field, a `deftype`): one is reported there and taken as `any?`.
    `where` names the place in the message."""
    where: str


RECORD_FIELD = NoVariables("a record's field")
ALIAS_TYPE = NoVariables("the type a `deftype` names")

_STRUCTURE_LOST = frozenset({d.UNCLOSED_DELIMITER.code, d.UNTERMINATED_STRING.code})

STANDARD_NAMES = {p.stem for p in STDLIB.glob("*.flow")} if STDLIB.is_dir() else set()
