"""The type checker: every rule of SPEC section 3, one definition at a time.

`check_definition` walks one definition's lowered forms with an environment of
locals and returns `Facts`: its diagnostics and what the editor asks about
(each name's symbol, each expression's type after narrowing, each local's scope,
each call's signature). Definitions are checked independently against the
program's signatures, which is what lets the analysis re-check one definition
after an edit without touching the others.

How it decides:
- Inference is bidirectional. `infer(expr, env, expected)` pushes an expected
  type into the tails of `if`, `let`, `do`, `cond`, `when` and `match`, and into
  `fn` literals (whose parameters take the expected parameter types), so a
  mismatch is reported at the smallest expression that causes it.
- Gradual: anything unannotated is `any?`, compatible both ways; an unknown
  name or malformed form is reported once and then typed `any?`, so one mistake
  does not cascade into more.
- Generic signatures are instantiated afresh at each call and their variables
  bound by unifying the arguments; `fn` arguments are inferred last, with the
  variables found so far. A variable bound so far may widen to what a function
  argument takes and returns, or to the type expected of the call, when its
  binding fits (a fold into a union state); a function named as an argument
  is typed from its signature, generic variables included (`(reduce conj []
  xs)`). Messages show generic types with their variables.
- Empty literals: `[]` and `{}` take the type expected where they stand; with
  none, their items are `never`, so `(conj [] 1)` is `(list? int?)`: a
  variable bound to `never` is still open to what comes later.
- Occurrence typing: a test (`(P x)`, `(= x nil)`, `(not ...)`, `and`, `or`, a
  bare local, a local bound to a test) yields what it proves of locals when
  true and when false; `if`, `if-not`, `when`, `cond` and `match` check each
  branch under those facts.
- `match`: patterns are checked against the subject's type, and the clauses
  are analysed as a pattern matrix (Maranget's usefulness algorithm) for the
  cases they miss and the clauses that can never be chosen.
- One mistake, one diagnostic: a wrong pattern is not also a missing case;
  several wrong items of a literal are one mismatch; a definition whose
  brackets the reader had to guess (`Program.damaged`) reports unknown names
  only, and its callers do not hold it to its signature.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from flowmetal.lang import diagnostics as d
from flowmetal.lang.diagnostics import Diagnostic, Edit, Fix, Note
from flowmetal.lang.forms import (
    split_arguments, Call, Clause, Cond, Definition, Do, Expr, FnExpr, If, Invalid, Let, Lit, Logic, MapLit, Match, Name,
    Param, Pattern, PBind, PInvalid, PLit, PMember, PRecord, PWild, VectorLit, When,
)
from flowmetal.lang.resolve import ALIAS_TYPE, BUILTIN_SYMBOLS, RECORD_FIELD, PackageScope, Program, Symbol
from flowmetal.lang.signatures import Sig, SigParam
from flowmetal.lang.syntax import Kind, Node, Seq, Token
from flowmetal.lang.types import (
    ANY, ANY_FN, BOOL, FLOAT, INT, JSON, KEYWORD, NEVER, NIL, NUMBER, STR, Enum, FnOf, Handle, ListOf, MapOf,
    Record, TVar, Type, Union, assignable, could_be, fresh_scope, instantiate, join, meet, remove, show,
    substitute, truthy, type_vars, unify, union,
)

# How deep `facts_of` looks into nested `not`, `and` and `or`: each test of a nesting is looked
# at from every level around it, so without a bound 10,000 nested `and`s take 50 million steps.
_FACTS_DEPTH = 64

LITERAL_TYPES = {Kind.INT: INT, Kind.FLOAT: FLOAT, Kind.STRING: STR, Kind.STRING3: STR, Kind.NIL: NIL,
                 Kind.TRUE: BOOL, Kind.FALSE: BOOL, Kind.KEYWORD: KEYWORD}


@dataclass
class Facts:
    """What checking one definition found: diagnostics, and answers for the editor."""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    refs: list[tuple[Token, Symbol]] = field(default_factory=list)        # every name resolved
    types: dict[int, tuple[Node, Type]] = field(default_factory=dict)     # id(node) -> type there
    locals: list[tuple[Symbol, int, int]] = field(default_factory=list)   # local, scope start, end
    calls: list[tuple[Seq, Symbol | None, Sig | None]] = field(default_factory=list)
    inferred: list[tuple[Token, Type]] = field(default_factory=list)     # unannotated `let` bindings


class _Local:
    __slots__ = ("symbol", "uses", "test", "test_env")

    def __init__(self, symbol: Symbol) -> None:
        self.symbol = symbol
        self.uses = 0
        self.test: Expr | None = None    # a `let` binding's value: what the local being true proves
        self.test_env: Env | None = None  # the scope that value was computed in


class Env:
    """Lexical scopes: a chain of frames, each binding names to locals and their current types.
    A frame remembers what it looked up through its parents (a frame's names never change once
    it has children), so ten thousand nested `let`s cost ten thousand lookups, not fifty million."""
    __slots__ = ("parent", "names", "seen")

    def __init__(self, parent: Env | None = None, names: dict[str, tuple[_Local, Type]] | None = None) -> None:
        self.parent = parent
        self.names = names or {}
        self.seen: dict[str, tuple[_Local, Type] | None] | None = None

    def lookup(self, name: str) -> tuple[_Local, Type] | None:
        found = self.names.get(name)
        if found is not None or self.parent is None:
            return found
        seen = self.seen
        if seen is None:
            seen = self.seen = {}
        elif name in seen:
            return seen[name]
        env: Env | None = self.parent
        while env is not None:
            found = env.names.get(name)
            if found is not None:
                break
            if env.seen is not None and name in env.seen:
                found = env.seen[name]
                break
            env = env.parent
        seen[name] = found
        return found

    def narrow(self, updates: dict[str, Type]) -> Env:
        if not updates:
            return self
        names = {}
        for name, t in updates.items():
            found = self.lookup(name)
            if found is not None:
                names[name] = (found[0], t)
        return Env(self, names)

    def visible(self) -> dict[str, tuple[_Local, Type]]:
        out: dict[str, tuple[_Local, Type]] = {}
        env: Env | None = self
        while env is not None:
            for k, v in env.names.items():
                out.setdefault(k, v)
            env = env.parent
        return out


class Checker:
    def __init__(self, program: Program, scope: PackageScope) -> None:
        self.program = program
        self.scope = scope
        self.facts = Facts()
        self._speculating = False  # checking a function literal on trial (see `_fold_state`)

    # -- reporting -------------------------------------------------------------------

    def report(self, code: d.Code, node: Node, message: str, **extra) -> None:
        self.facts.diagnostics.append(Diagnostic.of(code, node.span, message, **extra))

    def mismatch(self, node: Node, expected: Type, found: Type, context: str, code: d.Code = d.TYPE_MISMATCH) -> None:
        self.report(code, node, f"expected {show(expected)}, found {show(found)}{context}{_why(expected, found)}")

    def note_type(self, node: Node, t: Type) -> Type:
        self.facts.types[id(node)] = (node, t)
        return t

    # -- definitions --------------------------------------------------------------------

    def definition(self, definition: Definition) -> Facts:
        self.check(definition)
        if id(definition) in self.program.damaged:
            # The reader had to guess where a bracket of it ends: what else is wrong is most
            # likely that one mistake again. Unknown names are still said; the rest waits.
            self.facts.diagnostics[:] = [diag for diag in self.facts.diagnostics if diag.code in _KEPT_WHEN_DAMAGED]
        return self.facts

    def check(self, definition: Definition) -> None:
        symbol = self.scope.decls.get(definition.name)
        if definition.form in ("defn", "defendpoint") and symbol is not None and symbol.definition is definition:
            self.function(definition, symbol)
        elif definition.form == "def" and definition.value is not None:
            declared = self.type_of(definition.type, {}) if definition.type else None
            found = self.infer(definition.value, Env(), declared, f" in the value of `{definition.name}`")
            if symbol is not None and symbol.definition is definition and declared is None:
                symbol.type = found
        elif definition.form == "defrecord":
            for param in definition.fields:
                if param.type is not None:
                    self.type_of(param.type, RECORD_FIELD)
        elif definition.form == "deftype" and definition.type is not None:
            self.type_of(definition.type, ALIAS_TYPE)

    def on_type_ref(self, token: Token, symbol: Symbol) -> None:
        self.facts.refs.append((token, symbol))

    def type_of(self, expr, tvars: dict) -> Type:
        """An annotation's type, its problems reported with this definition."""
        def report(code: d.Code, span, message: str, **extra) -> None:
            self.facts.diagnostics.append(Diagnostic.of(code, span, message, **extra))
        return self.program.type_of(expr, self.scope, tvars, self.on_type_ref, report)

    def function(self, definition: Definition, symbol: Symbol) -> None:
        sig = symbol.sig
        tvars: dict = {}
        # Resolve annotations again for the references index (signatures were typed by the program).
        for param in definition.params:
            if param.type is not None:
                self.type_of(param.type, tvars)
        if definition.ret is not None:
            self.type_of(definition.ret, tvars)
        env = Env()
        locals_: list[_Local] = []
        for param, sig_param in zip(definition.params, sig.params):
            if param.default is not None:
                self.infer(param.default, Env(), sig_param.type, f" in the default of `{param.name}`")
            local = _Local(Symbol(param.name, "parameter", None, param.node, sig_param.type))
            locals_.append(local)
            env.names[param.name] = (local, sig_param.type)
            self.facts.refs.append((param.node, local.symbol))
            self.note_type(param.node, sig_param.type)
            self.facts.locals.append((local.symbol, definition.node.start, definition.node.end))
        if definition.form == "defendpoint":
            return
        expected = sig.ret if definition.ret is not None else None
        self.body(definition.body, env, expected, f" (the declared return type of `{definition.name}`)",
                  code=d.RETURN_MISMATCH)
        self.unused(locals_, d.UNUSED_PARAMETER, "parameter")

    def unused(self, locals_: list[_Local], code: d.Code, what: str) -> None:
        for local in locals_:
            name = local.symbol.name
            if local.uses == 0 and not name.startswith("_"):
                self.report(code, local.symbol.node, f"{what} `{name}` is never used")

    # -- expressions -------------------------------------------------------------------------

    def body(self, exprs: list[Expr], env: Env, expected: Type | None, context: str,
             code: d.Code = d.TYPE_MISMATCH) -> Type:
        if not exprs:
            return NIL
        for e in exprs[:-1]:
            self.infer(e, env)
        return self.infer(exprs[-1], env, expected, context, code)

    def infer(self, e: Expr, env: Env, expected: Type | None = None, context: str = "",
              code: d.Code = d.TYPE_MISMATCH) -> Type:
        """The type of `e`; when `expected` is given, a mismatch is reported at the smallest part."""
        kind = type(e)
        if kind is If:
            return self.note_type(e.node, self.if_(e, env, expected, context, code))
        if kind is Let:
            return self.note_type(e.node, self.let(e, env, expected, context, code))
        if kind is Do:
            return self.note_type(e.node, self.body(e.body, env, expected, context, code))
        if kind is When:
            then_env, _ = self.test(e.test, env)
            if expected is not None and not assignable(NIL, expected):
                self.report(code, e.node, f"this `when` gives nil? when its test fails: expected "
                                          f"{show(expected)}{context}")
                expected = None
            t = self.body(e.body, then_env, expected, context, code)
            return self.note_type(e.node, union([t, NIL]))
        if kind is Cond:
            return self.note_type(e.node, self.cond(e, env, expected, context, code))
        if kind is Match:
            return self.note_type(e.node, self.match(e, env, expected, context, code))
        if kind is MapLit:
            self.duplicate_keys(e)
        if kind is VectorLit and isinstance(expected, ListOf):
            # An empty literal takes the type expected of it; items are checked against theirs.
            self.items(e, [(item, expected.elem) for item in e.items], env, expected, context, code)
            return self.note_type(e.node, expected)
        if kind is MapLit and isinstance(expected, MapOf):
            pairs = [(item, expected.key if i % 2 == 0 else expected.val) for i, item in enumerate(e.items)]
            self.items(e, pairs, env, expected, context, code)
            return self.note_type(e.node, expected)
        if kind is FnExpr:
            t = self.fn(e, env, expected)
        elif kind is Name and expected is not None and isinstance(expected, Enum | Union) and self._member_like(e.name):
            t = self.member(e, env, expected)
            if t is None:
                return ANY
        elif kind is Call:
            t = self.call(e, env, expected)
        else:
            t = self.leaf(e, env)
        shown = self._generic_value(e, env) if kind is Name and isinstance(t, FnOf) else None
        self.note_type(e.node, shown or t)
        if expected is not None and not assignable(t, expected):
            self.mismatch(e.node, expected, shown or t, context, code)
        return t

    def _generic_value(self, e: Name, env: Env) -> Type | None:
        """The type of a generic function named as a value, with its type variables (for
        messages and the editor: its type as checked has `any?` in their place)."""
        if env.lookup(e.name) is not None:
            return None
        found = self.program.lookup(e.name, self.scope)
        if found is not None and found.sig is not None and found.predicate_of is None and _is_generic(found.sig):
            return found.type
        return None

    def items(self, e: VectorLit | MapLit, expected_items: list[tuple[Expr, Type]], env: Env, expected: Type,
              context: str, code: d.Code) -> None:
        """The items of a literal against the types expected of them. Several wrong items make
        one mismatch, of the whole literal; a single wrong one is reported where it stands."""
        wrong: list[tuple[int, int]] = []  # the diagnostics of each wrong item: [start, end)
        found: list[Type] = []
        for item, item_expected in expected_items:
            before = len(self.facts.diagnostics)
            t = self.infer(item, env, item_expected, context, code)
            found.append(t)
            if not assignable(t, item_expected):
                wrong.append((before, len(self.facts.diagnostics)))
        if len(wrong) < 2 or not context:
            return
        ours = {id(diag) for start, end in wrong for diag in self.facts.diagnostics[start:end]
                if diag.code == code.code and diag.message.endswith(context)}
        self.facts.diagnostics[:] = [diag for diag in self.facts.diagnostics if id(diag) not in ours]
        if isinstance(expected, ListOf):
            actual: Type = ListOf(join(found))
        else:
            actual = MapOf(join(found[0::2]), join(found[1::2]))
        self.mismatch(e.node, expected, actual, context, code)

    def duplicate_keys(self, e: MapLit) -> None:
        """A key written twice in a map literal: the later value replaces the earlier one."""
        seen: dict[object, Expr] = {}
        for key in e.items[0::2]:
            identity = _key_identity(key)
            if identity is None:
                continue
            first = seen.get(identity)
            if first is None:
                seen[identity] = key
                continue
            self.report(d.DUPLICATE_KEY, key.node, f"the key `{key.node.text}` is already in this map: the "
                        f"value given here replaces the one given first, which is never used",
                        notes=(Note(first.node.span, "first given here"),))

    @staticmethod
    def _member_like(name: str) -> bool:
        local = name.rsplit("/", 1)[-1]
        return len(local) > 2 and local[0] == local[-1] == "+"

    def member(self, e: Name, env: Env, expected: Type) -> Type | None:
        """An enum member where an enum is expected: an unknown one is reported against that enum."""
        symbol = self.resolve(e, env, report=False)
        if symbol is not None:
            return symbol.type
        enums = [expected] if isinstance(expected, Enum) else [m for m in expected.members if isinstance(m, Enum)]
        if not enums or self._failed_refer(e.name) or any(e.name in enum.members for enum in enums):
            symbol = self.resolve(e, env)  # not referred, or a failed refer: reported as such
            return symbol.type if symbol is not None else None
        self.report_member(e.node, e.name, enums)
        return None

    def report_member(self, node: Token, name: str, enums: list[Enum]) -> None:
        bare = name.strip("+")
        members = {m.strip("+"): m for enum in enums for m in enum.members}
        close = difflib.get_close_matches(bare, list(members), n=1, cutoff=0.75)
        owner = next((enum for enum in enums if close and members[close[0]] in enum.members), enums[0])
        names = " or ".join(f"`{enum.name}`" for enum in enums)
        if close:
            suggestion = members[close[0]]
            self.report(d.UNKNOWN_MEMBER, node, f"`{name}` is no member of {names}; did you mean `{suggestion}`?",
                        fix=Fix(f"replace with `{suggestion}`", (Edit(node.span, suggestion),)))
        else:
            listed = " ".join(m for enum in enums for m in enum.members)
            self.report(d.UNKNOWN_MEMBER, node, f"`{name}` is no member of {names} (its members: {listed})")
        del owner

    def _failed_refer(self, name: str) -> bool:
        return (name not in self.scope.refers
                and any(t.text == name for r in self.scope.package.requires for t in r.refer))

    def leaf(self, e: Expr, env: Env) -> Type:
        kind = type(e)
        if kind is Lit:
            return LITERAL_TYPES[e.kind]
        if kind is Name:
            symbol = self.resolve(e, env)
            if symbol is None:
                return ANY
            if symbol.kind in ("parameter", "local"):
                found = env.lookup(e.name)
                return found[1] if found else symbol.type
            if symbol.sig is not None and _is_generic(symbol.sig):
                return substitute(symbol.type, {v: ANY for v in type_vars(symbol.type)})
            return symbol.type
        if kind is Call:
            return self.call(e, env)
        if kind is VectorLit:  # `[]` is a list of no items: `(list? never)`, fits every list type
            return ListOf(join(self.infer(i, env) for i in e.items)) if e.items else ListOf(NEVER)
        if kind is MapLit:
            keys = [self.infer(k, env) for k in e.items[0::2]]
            vals = [self.infer(v, env) for v in e.items[1::2]]
            return MapOf(join(keys), join(vals)) if keys else MapOf(NEVER, NEVER)
        if kind is Logic:
            return self.logic(e, env)
        return ANY  # Invalid

    # -- names -------------------------------------------------------------------------------

    def resolve(self, e: Name, env: Env, report: bool = True) -> Symbol | None:
        found = env.lookup(e.name)
        if found is not None:
            found[0].uses += 1
            self.facts.refs.append((e.node, found[0].symbol))
            return found[0].symbol
        symbol = self.program.lookup(e.name, self.scope)
        if symbol is not None:
            self.facts.refs.append((e.node, symbol))
            return symbol
        if not report:
            return None
        if self._failed_refer(e.name) or self._failed_alias(e.name):
            return None  # its require failed and was reported there: one mistake, one error
        # Defined in another package that this one does not refer?
        elsewhere = self.program.defined_elsewhere(e.name, self.scope) if "/" not in e.name else []
        if elsewhere:
            home = elsewhere[0]
            symbol = home.decls[e.name]
            self.facts.refs.append((e.node, symbol))
            self.report(d.NOT_REFERRED, e.node,
                        f"`{e.name}` is defined in package `{home.name}`, which this package does not refer",
                        fix=self._refer_fix(home.name, e.name))
            return symbol
        self.unknown(e, env)
        return None

    def _failed_alias(self, name: str) -> bool:
        if "/" not in name:
            return False
        alias = name.rpartition("/")[0]
        if alias in self.scope.aliases:
            return False
        return any(r.package == alias or (r.alias is not None and r.alias.text == alias)
                   for r in self.scope.package.requires)

    def _refer_fix(self, package: str, name: str) -> Fix | None:
        """Refer `name` from `package`: into its `:refer` vector, or a new one, or a new require."""
        requires = self.scope.package.requires
        for require in requires:
            if require.package != package:
                continue
            if require.refer:
                last = require.refer[-1]
                return Fix(f"add `{name}` to the `:refer` of `{package}`",
                           (Edit(last.source.span(last.end, last.end), f" {name}"),))
            if require.node.kind is Kind.VECTOR:  # `[pkg :as alias]`
                after = require.package_node
                return Fix(f"refer `{name}` from `{package}`",
                           (Edit(after.source.span(after.end, after.end), f" :refer [{name}]"),))
        if requires:  # add a require vector to the package's `(require ...)` form
            form = requires[-1].node if requires[-1].node.kind is Kind.LIST else None
            if form is None:
                form = next((r.node for r in requires if r.node.kind is Kind.LIST), None)
            last = requires[-1].node if requires[-1].node.kind is Kind.VECTOR else None
            if last is not None:
                return Fix(f"require `{package}` and refer `{name}`",
                           (Edit(last.source.span(last.end, last.end), f"\n           [{package} :refer [{name}]]"),))
        name_node = self.scope.package.name_node
        return Fix(f"require `{package}` and refer `{name}`",
                   (Edit(name_node.source.span(name_node.end, name_node.end),
                         f"\n  (require [{package} :refer [{name}]])"),))

    def unknown_field(self, e: Name) -> bool:
        """`record-field` for a field the record lacks: FM407 rather than an unknown name."""
        for ctor in (*self.scope.decls.values(), *(s for s, _ in self.scope.refers.values())):
            if ctor.kind == "constructor" and ctor.record is not None and e.name.startswith(ctor.name + "-"):
                field_name = e.name[len(ctor.name) + 1:]
                fields = [f for f, _ in ctor.record.fields]
                if field_name in fields:
                    return False
                close = difflib.get_close_matches(field_name, fields, n=1, cutoff=0.6)
                fix = None
                if close:
                    fix = Fix(f"replace with `{ctor.name}-{close[0]}`", (Edit(e.node.span, f"{ctor.name}-{close[0]}"),))
                self.report(d.UNKNOWN_FIELD, e.node, f"`{field_name}` is no field of `{ctor.name}` "
                                                     f"(its fields: {' '.join(fields)})", fix=fix)
                return True
        return False

    def candidates(self, env: Env) -> list[str]:
        # Names the package tried to refer count too, even when the refer failed:
        # they say what the author meant.
        wanted = [t.text for r in self.scope.package.requires for t in r.refer]
        return [*env.visible(), *self.scope.decls, *self.scope.refers, *wanted, *BUILTIN_SYMBOLS]

    def unknown(self, e: Name, env: Env) -> None:
        if self._failed_refer(e.name) or self._failed_alias(e.name):
            return  # its require failed and was reported there: one mistake, one error
        if self.unknown_field(e):
            return
        suggestion = None
        if "/" in e.name and len(e.name) > 1:
            alias, _, local = e.name.rpartition("/")
            target = self.scope.aliases.get(alias)
            if target is None:
                self.report(d.UNKNOWN_NAME, e.node, f"unknown package or alias `{alias}` in `{e.name}`: "
                                                     f"require it first")
                return
            names = list(target.decls)
            if not local.endswith("!") and local + "!" in names:
                suggestion = f"{alias}/{local}!"
            else:
                close = difflib.get_close_matches(local, names, n=1, cutoff=0.75)
                suggestion = f"{alias}/{close[0]}" if close else None
        else:
            names = self.candidates(env)
            if not e.name.endswith("!") and e.name + "!" in names:
                suggestion = e.name + "!"
            else:
                close = difflib.get_close_matches(e.name, names, n=1, cutoff=0.75)
                suggestion = close[0] if close else None
        message = f"unknown name `{e.name}`"
        fix = None
        if suggestion is not None:
            message += f"; did you mean `{suggestion}`?"
            fix = Fix(f"replace with `{suggestion}`", (Edit(e.node.span, suggestion),))
        self.report(d.UNKNOWN_NAME, e.node, message, fix=fix)

    # -- special forms ---------------------------------------------------------------------------

    def if_(self, e: If, env: Env, expected: Type | None, context: str, code: d.Code) -> Type:
        then_env, else_env = self.test(e.test, env)
        if e.negated:
            then_env, else_env = else_env, then_env
        t1 = self.infer(e.then, then_env, expected, context, code)
        if e.orelse is None:
            if expected is not None and not assignable(NIL, expected):
                self.report(code, e.node, f"this `{'if-not' if e.negated else 'if'}` has no else-branch, so it "
                                          f"may give nil?: expected {show(expected)}{context}")
            return union([t1, NIL])
        t2 = self.infer(e.orelse, else_env, expected, context, code)
        return join([t1, t2])

    def cond(self, e: Cond, env: Env, expected: Type | None, context: str, code: d.Code) -> Type:
        results = []
        for test, result in e.clauses:
            then_env, env = self.test(test, env)
            results.append(self.infer(result, then_env, expected, context, code))
        if e.orelse is not None:
            results.append(self.infer(e.orelse, env, expected, context, code))
        else:
            if expected is not None and not assignable(NIL, expected):
                self.report(code, e.node, f"this `cond` has no `:else`, so it may give nil?: expected "
                                          f"{show(expected)}{context}")
            results.append(NIL)
        return join(results)

    def let(self, e: Let, env: Env, expected: Type | None, context: str, code: d.Code) -> Type:
        locals_ = []
        for binding in e.bindings:
            declared = None
            if binding.type is not None:
                declared = self.type_of(binding.type, {})
            found = self.infer(binding.value, env, declared, f" in the binding of `{binding.name}`")
            t = declared if declared is not None else found
            if declared is None:
                self.facts.inferred.append((binding.node, t))
            local = _Local(Symbol(binding.name, "local", None, binding.node, t))
            local.test, local.test_env = binding.value, env
            locals_.append(local)
            env = Env(env, {binding.name: (local, t)})
            self.facts.refs.append((binding.node, local.symbol))
            self.note_type(binding.node, t)
            self.facts.locals.append((local.symbol, binding.node.end, e.node.end))
        result = self.body(e.body, env, expected, context, code)
        self.unused(locals_, d.UNUSED_BINDING, "binding")
        return result

    def fn(self, e: FnExpr, env: Env, expected: Type | None) -> Type:
        hint = expected if isinstance(expected, FnOf) and expected.params is not None \
            and len(expected.params) == len(e.params) else None
        frame: dict[str, tuple[_Local, Type]] = {}
        locals_, params = [], []
        for i, param in enumerate(e.params):
            if param.type is not None:
                t = self.type_of(param.type, {})
            elif hint is not None and not isinstance(hint.params[i], TVar):
                t = hint.params[i]
            else:
                t = ANY
            if param.default is not None:
                self.infer(param.default, env, t, f" in the default of `{param.name}`")
            local = _Local(Symbol(param.name, "parameter", None, param.node, t))
            locals_.append(local)
            frame[param.name] = (local, t)
            params.append(t)
            self.facts.refs.append((param.node, local.symbol))
            self.note_type(param.node, t)
            self.facts.locals.append((local.symbol, e.node.start, e.node.end))
        inner = Env(env, frame)
        if e.ret is not None:
            ret = self.type_of(e.ret, {})
            self.body(e.body, inner, ret, " (the declared return type of this `fn`)", d.RETURN_MISMATCH)
        elif hint is not None and not type_vars(hint.ret):
            ret = hint.ret
            self.body(e.body, inner, ret, " (the return type expected of this `fn`)", d.TYPE_MISMATCH)
        else:
            ret = self.body(e.body, inner, None, "")
        self.unused(locals_, d.UNUSED_PARAMETER, "parameter")
        if any(param.default is not None for param in e.params):
            return FnOf(None, ret)  # callable with fewer arguments: typed by its result
        return FnOf(tuple(params), ret)

    def logic(self, e: Logic, env: Env) -> Type:
        """`or` gives the first truthy value (or the last); `and` the first falsy one (or the last)."""
        if not e.items:
            return NIL if e.op == "or" else BOOL
        parts = []
        for i, item in enumerate(e.items):
            t, then_env, else_env = self.test_typed(item, env)
            last = i == len(e.items) - 1
            if last:
                parts.append(t)
            elif e.op == "or":
                parts.append(truthy(t))
            else:
                parts += [f for f in (NIL, BOOL) if could_be(t, f)]
            env = then_env if e.op == "and" else else_env
        return join(parts)

    # -- occurrence typing --------------------------------------------------------------------

    def test(self, e: Expr, env: Env) -> tuple[Env, Env]:
        """Check a test expression; the environments where it held and where it failed."""
        _, then_env, else_env = self.test_typed(e, env)
        return then_env, else_env

    def test_typed(self, e: Expr, env: Env) -> tuple[Type, Env, Env]:
        t = self.infer(e, env)
        then_facts, else_facts = self.facts_of(e, env)
        return t, env.narrow(then_facts), env.narrow(else_facts)

    def facts_of(self, e: Expr, env: Env, depth: int = 0) -> tuple[dict[str, Type], dict[str, Type]]:
        if depth > _FACTS_DEPTH:  # tests nested that deep prove nothing more worth the time
            return {}, {}
        if type(e) is Name:
            found = env.lookup(e.name)
            if found is None:
                return {}, {}
            then_facts, else_facts = {e.name: truthy(found[1])}, {}
            local = found[0]
            if local.test is not None and depth < _TEST_CHAIN:
                # A local bound to a test (`ok` in `(let [ok (int? x)] (if ok ...))`) proves
                # what the test proves, of the locals that are still the ones it tested.
                bound_then, bound_else = self.facts_of(local.test, env, depth + 1)
                same = lambda name: _same_local(name, env, local.test_env)  # noqa: E731
                then_facts = {**{n: t for n, t in bound_then.items() if same(n)}, **then_facts}
                else_facts = {n: t for n, t in bound_else.items() if same(n)}
            return then_facts, else_facts
        if type(e) is Call and type(e.fn) is Name:
            callee = env.lookup(e.fn.name)
            symbol = None if callee is not None else self.program.lookup(e.fn.name, self.scope)
            if symbol is None:
                return {}, {}
            if symbol.kind == "builtin" and symbol.name == "not" and len(e.args) == 1:
                then_facts, else_facts = self.facts_of(e.args[0], env, depth + 1)
                return else_facts, then_facts
            if symbol.kind == "builtin" and symbol.name in ("=", "not=") and len(e.args) == 2:
                # `(= x nil)`: x is nil where it holds, and not nil where it fails.
                sides = [(a, b) for a, b in (e.args, e.args[::-1])
                         if type(a) is Name and type(b) is Lit and b.kind is Kind.NIL]
                found = env.lookup(sides[0][0].name) if sides else None
                if found is None:
                    return {}, {}
                name, t = sides[0][0].name, found[1]
                narrowed = meet(t, NIL)
                facts = ({name: narrowed if narrowed is not NEVER else NIL}, {name: remove(t, NIL)})
                return facts if symbol.name == "=" else facts[::-1]
            if symbol.predicate_of is not None and len(e.args) == 1 and type(e.args[0]) is Name:
                found = env.lookup(e.args[0].name)
                if found is not None:
                    t, p = found[1], symbol.predicate_of
                    narrowed = meet(t, p)
                    return ({e.args[0].name: narrowed if narrowed is not NEVER else p},
                            {e.args[0].name: remove(t, p)})
            return {}, {}
        if type(e) is Logic and e.items:
            if e.op == "and":
                merged: dict[str, Type] = {}
                inner = env
                for item in e.items:
                    then_facts, _ = self.facts_of(item, inner, depth + 1)
                    merged.update(then_facts)
                    inner = inner.narrow(then_facts)
                return merged, ({} if len(e.items) > 1 else self.facts_of(e.items[0], env, depth + 1)[1])
            merged = {}
            inner = env
            for item in e.items:
                _, else_facts = self.facts_of(item, inner, depth + 1)
                merged.update(else_facts)
                inner = inner.narrow(else_facts)
            return ({} if len(e.items) > 1 else self.facts_of(e.items[0], env, depth + 1)[0]), merged
        return {}, {}

    # -- calls -----------------------------------------------------------------------------------

    def call(self, e: Call, env: Env, expected: Type | None = None) -> Type:
        callee = e.fn
        symbol = None
        if type(callee) is Name:
            symbol = self.resolve(callee, env)
            if symbol is None:
                for arg in e.args:
                    self.infer(arg, env)
                return ANY
            if symbol.kind in ("parameter", "local"):
                ftype = env.lookup(callee.name)[1]
                self.note_type(callee.node, ftype)
                return self.call_value(e, ftype, env, callee.name)
            self.note_type(callee.node, symbol.type)
            if symbol.predicate_of is not None and symbol.kind in ("type", "builtin"):
                self.facts.calls.append((e.node, symbol, symbol.sig or Sig([SigParam("x", ANY)], BOOL)))
                self.arity(e, len(e.args), 1, 1, f"`{symbol.name}`")
                for arg in e.args:
                    self.infer(arg, env)
                return BOOL
            if symbol.sig is None or (symbol.definition is not None and id(symbol.definition) in self.program.damaged):
                if symbol.kind == "constant" and symbol.sig is None:
                    return self.call_value(e, symbol.type, env, callee.name)
                for arg in e.args:
                    self.infer(arg, env)
                return ANY
            self.facts.calls.append((e.node, symbol, symbol.sig))
            if symbol.kind == "endpoint" and (symbol.package, symbol.name) == START_RUN:
                return self.start_run(e, env)
            return self.call_sig(e, symbol.sig, env, symbol, expected)
        ftype = self.infer(callee, env)
        return self.call_value(e, ftype, env, None)

    def call_value(self, e: Call, ftype: Type, env: Env, name: str | None) -> Type:
        """A call of a value (a local, a parameter, an expression): typed by its `fn?` type."""
        label = f"`{name}`" if name else "this function"
        if isinstance(ftype, Union) and any(isinstance(m, FnOf) for m in ftype.members):
            # One of several functions: checked loosely (gradual), typed by their results.
            for arg in e.args:
                self.infer(arg, env)
            return join(m.ret for m in ftype.members if isinstance(m, FnOf))
        if ftype is ANY or (isinstance(ftype, FnOf) and ftype.params is None):
            for arg in e.args:
                self.infer(arg, env)
            return ANY if ftype is ANY else ftype.ret
        if not isinstance(ftype, FnOf):
            what = f"`{name}`" if name else "this value"
            self.report(d.NOT_CALLABLE, e.fn.node, f"{what} is not a function: its type is {show(ftype)}")
            for arg in e.args:
                self.infer(arg, env)
            return ANY
        sig = Sig([SigParam(f"#{i + 1}", t) for i, t in enumerate(ftype.params)], ftype.ret)
        self.facts.calls.append((e.node, None, sig))
        if not self.arity(e, len(e.args), len(ftype.params), len(ftype.params), label):
            for arg in e.args:
                self.infer(arg, env)
            return ftype.ret
        for arg, t in zip(e.args, ftype.params):
            self.infer(arg, env, t, f" (argument {e.args.index(arg) + 1} of {label})")
        return ftype.ret

    def start_run(self, e: Call, env: Env) -> Type:
        """`(start-run! f arg...)`: `f` names a `defn` (a child run calls its function by name,
        in another run), the arguments are checked against its parameters, by position, and
        the result is `(child? R)`, R what `f` returns."""
        if not e.args:
            self.report(d.WRONG_ARITY, e.node.close or e.node, "`start-run!` takes the name of a function and "
                        "its arguments, but 0 were given")
            return Handle("child?", ANY)
        f, args = e.args[0], e.args[1:]
        found = self.infer(f, env)
        symbol = self.program.lookup(f.name, self.scope) if type(f) is Name and env.lookup(f.name) is None else None
        if symbol is None or symbol.kind != "function" or symbol.sig is None:
            if not (type(f) is Name and symbol is None and found is ANY and env.lookup(f.name) is None):
                what = f"`{f.name}`, {_KINDS.get(symbol.kind, 'no function')}" if symbol is not None \
                    else f"a function value of type {show(found)}" if type(f) is not Name or env.lookup(f.name) \
                    else "this"
                self.report(d.TYPE_MISMATCH, f.node, f"expected the name of a `defn`, found {what} (argument `f` of "
                            f"`start-run!`): a child run calls its function by name, from the program's code")
            for arg in args:
                self.infer(arg, env)
            return Handle("child?", ANY)
        sig, label = symbol.sig, f"`{symbol.name}`"
        if symbol.definition is not None and id(symbol.definition) in self.program.damaged:
            for arg in args:
                self.infer(arg, env)
            return Handle("child?", ANY)
        params, ret = sig.params, sig.ret
        if _is_generic(sig):
            scope = fresh_scope()
            params = [SigParam(p.name, instantiate(p.type, scope), p.optional) for p in params]
            ret = instantiate(ret, scope)
        if len(args) > len(params):
            self.report(d.WRONG_ARITY, args[len(params)].node, f"{label} takes {_takes(sig.required, len(params))}, "
                        f"but {len(args)} {'was' if len(args) == 1 else 'were'} given (the arguments of "
                        f"`start-run!` after the function's name)")
        elif len(args) < sig.required:
            missing = ", ".join(f"`{p.name}`" for p in params[len(args):] if not p.optional)
            self.report(d.WRONG_ARITY, e.node.close or e.node, f"{label} is missing {missing}: it takes "
                        f"{_takes(sig.required, len(params))}, but {len(args)} {'was' if len(args) == 1 else 'were'} "
                        f"given (the arguments of `start-run!` after the function's name)")
        subst: dict[TVar, Type] = {}
        reported = len(self.facts.diagnostics)
        for i, arg in enumerate(args):
            if i >= len(params):
                self.infer(arg, env)
                continue
            ptype = params[i].type
            expected_arg = substitute(ptype, _solved(subst))
            context = f" (argument `{params[i].name}` of {label}, started by `start-run!`)"
            if any(v.scope < 0 for v in _vars(expected_arg)):  # still open: bound by the argument
                t = self.infer(arg, env)
                if not _solve(ptype, expected_arg, t, subst):
                    self.mismatch(arg.node, substitute(expected_arg, _solved(subst)), t, context)
            else:
                unify(ptype, self.infer(arg, env, expected_arg, context), subst)
        if len(self.facts.diagnostics) > reported:
            return Handle("child?", ANY)
        result = substitute(ret, subst, ANY)
        return Handle("child?", ANY if result is NEVER else result)

    def arity(self, e: Call, given: int, low: int, high: int | None, label: str) -> bool:
        """Report a wrong number of arguments; `label` names the callee (`fib`, or "this function")."""
        if low <= given and (high is None or given <= high):
            return True
        message = f"{label} takes {_takes(low, high)}, but {given} {'was' if given == 1 else 'were'} given"
        where = e.args[high].node if high is not None and given > high else (e.node.close or e.node)
        self.report(d.WRONG_ARITY, where, message)
        return False

    def call_sig(self, e: Call, sig: Sig, env: Env, symbol: Symbol, expected: Type | None = None) -> Type:
        name = symbol.name
        generic = _is_generic(sig)
        if generic:
            scope = fresh_scope()
            params = [SigParam(p.name, instantiate(p.type, scope), p.optional) for p in sig.params]
            rest = SigParam(sig.rest.name, instantiate(sig.rest.type, scope)) if sig.rest else None
            ret = instantiate(sig.ret, scope)
        else:
            params, rest, ret = sig.params, sig.rest, sig.ret
        # Positional arguments, then `:name value` pairs (only for parameters past the required ones).
        args = e.args
        if rest is not None:  # a variadic built-in: every argument by position
            positional, pairs = list(args), []
        else:
            positional, pairs = split_arguments(args, sig.required)
        named: list[tuple[Lit, Expr]] = []
        for key, value in pairs:
            if type(key) is not Lit or key.kind is not Kind.KEYWORD:
                self.report(d.WRONG_ARITY, key.node, f"expected a `:name` for the next argument of `{name}`: "
                                                      f"arguments by name come after those by position")
                self.infer(key, env)
                if value is not None:
                    self.infer(value, env)
                continue
            if value is None:
                self.report(d.WRONG_ARITY, key.node, f"`{key.node.text}` has no value")
                continue
            named.append((key, value))
        bound: dict[str, tuple[SigParam, Expr]] = {}
        extra: list[tuple[Type, Expr, str]] = []
        if rest is None and len(positional) > len(params):
            self.arity(e, len(args), sig.required, None if rest else len(params), f"`{name}`")
            for arg in positional[len(params):]:
                self.infer(arg, env)
            positional = positional[:len(params)]
        for param, arg in zip(params, positional):
            bound[param.name] = (param, arg)
        if rest is not None:
            for arg in positional[len(params):]:
                extra.append((rest.type, arg, rest.name))
        by_name = {p.name: p for p in params}
        for key, value in named:
            pname = key.node.text[1:]
            param = by_name.get(pname)
            if param is None:
                close = difflib.get_close_matches(pname, list(by_name), n=1, cutoff=0.6)
                hint = f"; did you mean `:{close[0]}`?" if close else \
                    f" (its parameters: {' '.join(p.name for p in params) or 'none'})"
                fix = Fix(f"replace with `:{close[0]}`", (Edit(key.node.span, f":{close[0]}"),)) if close else None
                self.report(d.UNKNOWN_KEYWORD_ARGUMENT, key.node, f"`{name}` has no parameter `{pname}`{hint}", fix=fix)
                self.infer(value, env)
                continue
            if pname in bound:
                self.report(d.UNKNOWN_KEYWORD_ARGUMENT, key.node, f"`{pname}` is given twice")
                self.infer(value, env)
                continue
            bound[pname] = (param, value)
        missing = [p.name for p in params if not p.optional and p.name not in bound]
        if missing and not (rest is None and len(positional) > len(params)):
            names = ", ".join(f"`{m}`" for m in missing)
            high = None if rest is not None else len(params)
            self.report(d.WRONG_ARITY, e.node.close or e.node, f"`{name}` is missing {names}: it takes "
                        f"{_takes(sig.required, high)}, but {len(positional)} "
                        f"{'was' if len(positional) == 1 else 'were'} given")
        # Types: plain arguments first (they bind type variables), functions last.
        subst: dict[TVar, Type] = {}
        reported = len(self.facts.diagnostics)
        checks = [(p.type, arg, p.name) for p, arg in bound.values()] + extra
        arg_types: list[Type] = []
        position = {id(arg): i + 1 for i, arg in enumerate(args)}

        def context_of(arg: Expr, pname: str) -> str:
            # A built-in taking any number of arguments has no names for them: say where.
            what = f"argument {position[id(arg)]}" if rest is not None else f"argument `{pname}`"
            return f" ({what} of `{name}`)"

        if not generic:
            for ptype, arg, pname in checks:
                arg_types.append(self.infer(arg, env, ptype, context_of(arg, pname)))
            return self.rule(sig.rule, e, arg_types, ret) if sig.rule is not None else ret
        for ptype, arg, pname in sorted(checks, key=lambda c: type(c[1]) is FnExpr):
            if expected is not None and subst:
                _widen(ret, expected, subst)
            if type(arg) is FnExpr:
                self._fold_state(arg, env, ptype, subst, ret, expected)
            # A variable bound to `never` (by an empty literal) is still open: `(conj [] 1)`.
            expected_arg = substitute(ptype, _solved(subst))
            context = context_of(arg, pname)
            if any(v.scope < 0 for v in _vars(expected_arg)) or (isinstance(ptype, FnOf) and _vars(ptype)):
                if type(arg) is FnExpr:  # its parameters take the types known so far
                    t = self.note_type(arg.node, self.fn(arg, env, expected_arg))
                else:
                    t = self.infer(arg, env)
                    t = self._fn_value(arg, env, expected_arg) or t
                if not _solve(ptype, expected_arg, t, subst):
                    shown = self._generic_value(arg, env) if type(arg) is Name else None
                    self.mismatch(arg.node, substitute(expected_arg, _solved(subst)), shown or t, context)
            else:
                t = self.infer(arg, env, expected_arg, context)
                unify(ptype, t, subst)
            arg_types.append(t)
        if rest is not None and not extra:
            for v in _vars(rest.type):  # no items at all: a list of them is `(list? never)`
                subst.setdefault(v, NEVER)
        if sig.rule is not None:
            return self.rule(sig.rule, e, arg_types, ret)
        if len(self.facts.diagnostics) > reported:
            return ANY  # an argument was wrong: the result says nothing more
        result = substitute(ret, subst, ANY)
        return ANY if result is NEVER else result

    def _fold_state(self, arg: FnExpr, env: Env, param: Type, subst: dict[TVar, Type], ret: Type,
                    expected: Type | None) -> None:
        """A fold's state (`b` in `(fn? [b a] : b)`) is bound by the initial value; a function
        literal that returns more than that (a union state, a list where `[]` began it)
        widens it to what the function gives, before the function is checked for good,
        unless the call's result would then no longer fit what is expected of it."""
        if self._speculating or not isinstance(param, FnOf) or param.params is None or arg.ret is not None:
            return
        state = param.ret
        if not isinstance(state, TVar) or state not in param.params or state not in subst:
            return
        now = substitute(state, subst)
        hint = substitute(param, _solved(subst))
        if not isinstance(hint, FnOf) or hint.params is None:
            return
        saved = self._save()
        self._speculating = True
        try:  # a trial run: what the function gives when the state is what the initial value is
            found = self.fn(arg, env, FnOf(hint.params, TVar("r", fresh_scope())))
        finally:
            self._speculating = False
            self._restore(saved)
        body = found.ret if isinstance(found, FnOf) else ANY
        if body is ANY or assignable(body, now) or _vars(body):
            return
        wider = join([now, body])
        if not assignable(now, wider):
            return
        if expected is not None and not assignable(substitute(ret, {**subst, state: wider}, ANY), expected):
            return
        subst[state] = wider

    def _save(self) -> tuple:
        f = self.facts
        return (len(f.diagnostics), len(f.refs), len(f.locals), len(f.calls), len(f.inferred))

    def _restore(self, saved: tuple) -> None:
        f = self.facts
        for items, n in zip((f.diagnostics, f.refs, f.locals, f.calls, f.inferred), saved):
            del items[n:]

    def _fn_value(self, arg: Expr, env: Env, expected: Type) -> FnOf | None:
        """A function named as an argument where a function of N parameters is expected:
        its type for N arguments, from its signature, generic variables and all (so that
        `(reduce conj [] xs)` knows what it builds). None when there is nothing better
        than its type as a value."""
        if type(arg) is not Name or not isinstance(expected, FnOf) or expected.params is None:
            return None
        if env.lookup(arg.name) is not None:
            return None
        symbol = self.program.lookup(arg.name, self.scope)
        if symbol is None or symbol.sig is None or symbol.sig.rule is not None or symbol.predicate_of is not None:
            return None
        sig, n = symbol.sig, len(expected.params)
        if n < sig.required or (sig.rest is None and n > len(sig.params)):
            return None
        types = [p.type for p in sig.params[:n]]
        if n > len(sig.params):
            types += [sig.rest.type] * (n - len(sig.params))
        t = FnOf(tuple(types), sig.ret)
        return instantiate(t, fresh_scope()) if _is_generic(sig) else t

    def rule(self, rule: str, e: Call, arg_types: list[Type], ret: Type) -> Type:
        if rule == "arithmetic":
            if any(t is ANY or not assignable(t, NUMBER) for t in arg_types):
                return ANY  # unknown, or already reported: no follow-on errors
            if type(e.fn) is Name and e.fn.name == "/":
                return FLOAT
            if all(assignable(t, INT) for t in arg_types):
                return INT
            if all(assignable(t, FLOAT) for t in arg_types):
                return FLOAT
            return NUMBER
        if rule == "collection" and arg_types:
            t = arg_types[0]
            if not could_be(t, _COUNTABLE):
                self.mismatch(e.args[0].node, _COUNTABLE, t, " (argument `coll` of `count`)")
            return INT
        if rule == "get" and arg_types:
            coll = arg_types[0]
            default = arg_types[2] if len(arg_types) > 2 else NIL
            if len(arg_types) > 1:  # a key of another type than the collection's is never found
                key = _KEY_OF_JSON if coll is JSON else coll.key if isinstance(coll, MapOf) \
                    else INT if isinstance(coll, ListOf) else None
                if key is not None and key is not NEVER and not assignable(arg_types[1], key):
                    self.mismatch(e.args[1].node, key, arg_types[1], " (argument `key` of `get`)")
            if isinstance(coll, MapOf):
                if coll.val is NEVER:  # an empty map: nothing is ever found
                    return default
                return join([coll.val, default]) if len(arg_types) > 2 else coll.val
            if isinstance(coll, ListOf):
                if coll.elem is NEVER:
                    return default
                return join([coll.elem, default]) if len(arg_types) > 2 else coll.elem
            if coll is JSON:
                return JSON
            if coll is not ANY and not isinstance(coll, Union) and not could_be(coll, _INDEXABLE):
                self.mismatch(e.args[0].node, _INDEXABLE, coll, " (argument `coll` of `get`)")
            return ANY
        if rule == "hash-map":
            if len(arg_types) % 2:
                self.report(d.WRONG_ARITY, e.node, "`hash-map` takes keys and values in pairs")
            keys, vals = arg_types[0::2], arg_types[1::2]
            return MapOf(join(keys), join(vals)) if keys else MapOf(NEVER, NEVER)
        return ret

    # -- match -----------------------------------------------------------------------------------

    def match(self, e: Match, env: Env, expected: Type | None, context: str, code: d.Code) -> Type:
        subject_t = self.infer(e.subject, env)
        subject_name = e.subject.name if type(e.subject) is Name and env.lookup(e.subject.name) else None
        results = []
        rows: list[list[Pattern]] = []
        remaining = subject_t
        broken = False  # a pattern reported wrong: what the clauses cover is not known
        for clause in e.clauses:
            frame: dict[str, tuple[_Local, Type]] = {}
            locals_: list[_Local] = []
            # A catch-all sees only what the clauses before it left.
            seen = remaining if remaining is not NEVER else subject_t
            before = len(self.facts.diagnostics)
            narrowed = self.pattern(clause.pattern, seen if _head(clause.pattern, self) is None else subject_t,
                                    frame, locals_, clause)
            broken = broken or any(diag.is_error for diag in self.facts.diagnostics[before:])
            clause_env = Env(env, frame)
            if subject_name is not None and subject_name not in frame:
                clause_env = clause_env.narrow({subject_name: narrowed})
            taken = _taken(clause.pattern, narrowed)
            if taken is not None:
                remaining = remove(remaining, taken)
            if rows and not _useful(rows, [clause.pattern], [subject_t], self):
                self.report(d.UNREACHABLE_CLAUSE, clause.pattern.node,
                            "this clause is never chosen: the clauses before it match everything it would")
            rows.append([clause.pattern])
            results.append(self.body(clause.body, clause_env, expected, context, code))
            self.unused(locals_, d.UNUSED_BINDING, "pattern variable")
        if e.clauses and not broken:  # one mistake in a pattern, one diagnostic: not also a missing case
            witness = _witness(rows, [subject_t], self) if _finite_cases(subject_t) else None
            if witness is not None:
                self.report(d.NON_EXHAUSTIVE_MATCH, e.node.forms[0],
                            f"this match over {show(subject_t)} does not cover `{witness[0]}`: "
                            f"such a value would fail the run")
        return join(results) if results else ANY

    def pattern(self, p: Pattern, t: Type, frame: dict, locals_: list, clause: Clause) -> Type:
        """Check pattern `p` against type `t`; bind its variables; what `t` is when it matches."""
        kind = type(p)
        if kind is PWild or kind is PInvalid:
            return t
        if kind is PBind:
            local = _Local(Symbol(p.name, "local", None, p.node, t))
            frame[p.name] = (local, t)
            locals_.append(local)
            self.facts.refs.append((p.node, local.symbol))
            self.note_type(p.node, t)
            self.facts.locals.append((local.symbol, clause.node.start, clause.node.end))
            return t
        if kind is PLit:
            lt = LITERAL_TYPES[p.kind]
            if not could_be(t, lt) and t is not JSON:
                self.report(d.PATTERN_MISMATCH, p.node, f"this pattern can never match: it is of type {show(lt)}, "
                                                        f"and the value matched is of type {show(t)}")
            return meet(t, lt) if could_be(t, lt) else t
        if kind is PMember:
            symbol = self.program.lookup(p.name, self.scope)
            if symbol is None or symbol.kind != "member":
                enums = [t] if isinstance(t, Enum) else [m for m in getattr(t, "members", ()) if isinstance(m, Enum)]
                if enums and not self._failed_refer(p.name) and not any(p.name in en.members for en in enums):
                    self.report_member(p.node, p.name, enums)
                    return t
                symbol = self.resolve(Name(p.node, p.name), Env())
                if symbol is None or symbol.kind != "member":
                    return t
            self.facts.refs.append((p.node, symbol))
            if not could_be(t, symbol.type):
                self.report(d.PATTERN_MISMATCH, p.node, f"this pattern can never match: `{p.name}` is of type "
                                                        f"{show(symbol.type)}, and the value matched is of type {show(t)}")
            return symbol.type
        if kind is PRecord:
            symbol = self.program.lookup(p.ctor.name, self.scope)
            if symbol is None:
                elsewhere = self.program.defined_elsewhere(p.ctor.name, self.scope)
                if elsewhere and elsewhere[0].decls[p.ctor.name].kind == "constructor":
                    symbol = elsewhere[0].decls[p.ctor.name]
                    self.report(d.NOT_REFERRED, p.ctor.node, f"`{p.ctor.name}` is defined in package "
                                f"`{elsewhere[0].name}`, which this package does not refer",
                                fix=self._refer_fix(elsewhere[0].name, p.ctor.name))
                else:
                    self.unknown(p.ctor, Env())
                    for sub in p.args:
                        self.pattern(sub, ANY, frame, locals_, clause)
                    return t
            if symbol.kind != "constructor" or symbol.record is None:
                self.report(d.PATTERN_MISMATCH, p.ctor.node, f"`{p.ctor.name}` is no record: a record pattern "
                                                             f"starts with a record's name")
                return t
            self.facts.refs.append((p.ctor.node, symbol))
            record = symbol.record
            if not could_be(t, record):
                self.report(d.PATTERN_MISMATCH, p.node, f"this pattern can never match: it is of type {show(record)}, "
                                                        f"and the value matched is of type {show(t)}")
            if len(p.args) != len(record.fields):
                self.report(d.PATTERN_MISMATCH, p.node, f"record `{record.name}` has {len(record.fields)} "
                            f"field{'s' if len(record.fields) != 1 else ''}, but this pattern gives {len(p.args)}")
            for sub, (_, ftype) in zip(p.args, record.fields):
                self.pattern(sub, ftype, frame, locals_, clause)
            return record
        return t


# What a definition whose brackets the reader guessed still reports: names used that exist nowhere.
_KEPT_WHEN_DAMAGED = frozenset({d.UNKNOWN_NAME.code, d.NOT_REFERRED.code})
_TEST_CHAIN = 16  # how many locals bound to locals bound to a test are followed


def _same_local(name: str, here: Env, there: Env) -> bool:
    """Whether `name` is the same local in both scopes (not shadowed in between)."""
    a, b = here.lookup(name), there.lookup(name)
    return a is not None and b is not None and a[0] is b[0]


def _key_identity(key: Expr) -> tuple | None:
    """What makes two keys of a map literal the same key, or None when only running can
    tell. Numbers are equal by value (`1` and `1.0` are one key), booleans are no numbers,
    and a name stands for the same value wherever it appears in one literal."""
    if type(key) is Lit:
        if key.kind in (Kind.INT, Kind.FLOAT):
            return ("number", key.value)
        if key.kind in (Kind.STRING, Kind.STRING3):
            return ("string", key.value)
        return (key.kind.value, key.value)
    if type(key) is Name:
        return ("name", key.name)
    return None


def _taken(p: Pattern, narrowed: Type) -> Type | None:
    """The type a clause's pattern takes whole from the subject (for later clauses), if any."""
    kind = type(p)
    if kind is PWild or kind is PBind:
        return ANY
    if kind is PLit and p.kind in (Kind.NIL,):
        return NIL
    if kind is PRecord and all(type(a) in (PWild, PBind) for a in p.args):
        return narrowed if isinstance(narrowed, Record) else None
    return None


def _finite_cases(t: Type) -> bool:
    """Whether a match over `t` is expected to list its cases (enums, records, unions, bool?)."""
    return isinstance(t, (Enum, Record, Union)) or t is BOOL


def _takes(low: int, high: int | None) -> str:
    if low == high:
        return f"{low} argument{'' if low == 1 else 's'}"
    if high is None:
        return f"at least {low} argument{'' if low == 1 else 's'}"
    return f"{low} to {high} arguments"


# `flowmetal.run/start-run!` takes a function's name and its arguments: typed by `Checker.start_run`.
START_RUN = ("flowmetal.run", "start-run!")
_KINDS = {"endpoint": "an endpoint", "constant": "a constant",
          "constructor": "a record's constructor", "accessor": "a record's accessor", "builtin": "a built-in function",
          "type": "a type", "member": "an enum member", "package": "a package"}

# What makes a handle, and what waits for one (`flowmetal.task`, `flowmetal.run`).
_MADE_BY = {"task?": "a task is what `spawn!` returns", "child?": "a child run is what `start-run!` returns"}
_AWAITED_BY = {"task?": "await!", "child?": "await-run!"}


def _why(expected: Type, found: Type) -> str:
    """What a mismatch means, where the two types alone do not say it plainly: a function of
    the wrong number of parameters, a value where a function of none (`spawn!`'s) or a task
    is needed, a task where its value is."""
    while isinstance(expected, ListOf) and isinstance(found, ListOf):
        expected, found = expected.elem, found.elem
    if isinstance(expected, FnOf) and isinstance(found, FnOf) and expected.params is not None \
            and found.params is not None and len(expected.params) != len(found.params):
        n, m = len(found.params), len(expected.params)
        has = "no arguments" if n == 0 else "one argument" if n == 1 else f"{n} arguments"
        needed = "none" if m == 0 else "one argument" if m == 1 else f"{m} arguments"
        return f": a function of {has} where one of {needed} is needed"
    if isinstance(expected, FnOf) and expected.params == () \
            and not isinstance(found, (FnOf, Union, TVar)) and found not in (ANY, NEVER):
        return ": a function of no arguments is written `(fn [] EXPR)`"
    if isinstance(expected, Handle) and not isinstance(found, (Handle, Union, TVar)) and found not in (ANY, NEVER):
        return f": {_MADE_BY[expected.kind]}"
    if isinstance(found, Handle) and not isinstance(expected, (Handle, Union, TVar)) \
            and found.value is not ANY and assignable(found.value, expected):
        return f": wait for its value with `{_AWAITED_BY[found.kind]}`"
    return ""


def _vars(t: Type) -> set[TVar]:
    return type_vars(t)


def _solve(param: Type, expected: Type, arg: Type, subst: dict[TVar, Type]) -> bool:
    """Bind the variables of `param` (`expected` is it with those bound so far) so that `arg`
    fits. A function's own type may widen a variable bound before (a fold's state, bound by
    the initial value to `int?`, is the union the function takes and returns), as long as
    what was bound fits the wider type and the function then fits the parameter."""
    trial = dict(subst)
    if unify(expected, arg, trial):
        subst.update(trial)
        return True
    if not isinstance(param, FnOf):
        return False
    trial = dict(subst)
    if not unify(param, arg, trial):
        return False
    if not all(assignable(substitute(v, subst), substitute(v, trial)) for v in subst):
        return False
    if not assignable(arg, substitute(param, trial, ANY)):
        return False
    subst.update(trial)
    return True


def _solved(subst: dict[TVar, Type]) -> dict[TVar, Type]:
    """The variables solved so far: those bound to `never` are not, yet."""
    return {v: t for v, t in subst.items() if t is not NEVER}


def _widen(ret: Type, expected: Type, subst: dict[TVar, Type]) -> None:
    """Widen the variables of a call's result to the type expected of it, where what the
    arguments bound so far fits it: `(reduce f 0 xs)` expected to give `(union? [int? str?])`
    folds into that union, not into the `int?` of its initial value, and `(conj [1] 2.5)`
    expected to give `(list? number?)` is one."""
    hint: dict[TVar, Type] = {}
    if not unify(ret, expected, hint):
        return
    for v, wider in hint.items():
        # Not a variable still tied to others (`b` bound to `(list? a)` by `conj`): widening
        # it would cut the tie.
        if v not in subst or _vars(wider) or any(u.scope < 0 for u in _vars(subst[v])):
            continue
        now = substitute(v, subst)
        if assignable(now, wider) and not assignable(wider, now):
            subst[v] = wider


def _is_generic(sig: Sig) -> bool:
    """Whether a signature has type variables (remembered on the signature)."""
    if sig.generic is None:
        types = [p.type for p in sig.params] + [sig.ret] + ([sig.rest.type] if sig.rest else [])
        sig.generic = any(type_vars(t) for t in types)
    return sig.generic


_COUNTABLE = union([ListOf(ANY), MapOf(ANY, ANY), STR])
_KEY_OF_JSON = union([STR, KEYWORD, INT])  # an object's keys, a list's indexes
_INDEXABLE = union([ListOf(ANY), MapOf(ANY, ANY)])


# -- pattern matrices (exhaustiveness and reachability) -------------------------------------------

@dataclass(frozen=True)
class _Ctor:
    key: object          # what tells constructors apart
    show: str
    fields: tuple[Type, ...] = ()


def _ctors(t: Type) -> list[_Ctor] | None:
    """The constructors of a type with finitely many, or None (numbers, strings, any?)."""
    members = t.members if isinstance(t, Union) else frozenset([t])
    out: list[_Ctor] = []
    for m in sorted(members, key=show):
        if isinstance(m, Enum):
            out += [_Ctor(("member", id(m), name), name) for name in m.members]
        elif isinstance(m, Record):
            out.append(_Ctor(("record", id(m)), m.name, tuple(ft for _, ft in m.fields)))
        elif m is BOOL:
            out += [_Ctor(("lit", "true"), "true"), _Ctor(("lit", "false"), "false")]
        elif m is NIL:
            out.append(_Ctor(("lit", "nil"), "nil"))
        else:
            return None
    return out


def _head(p: Pattern, checker: Checker) -> _Ctor | None:
    """The constructor a pattern names, or None for a catch-all."""
    kind = type(p)
    if kind is PInvalid:  # already reported: it catches nothing
        return _Ctor(("invalid", id(p)), "?")
    if kind is PLit:
        # By kind and text: `0` and `false`, `1` and `true` are different patterns
        # (Python's own equality would take them for the same).
        kind_name = {Kind.TRUE: "true", Kind.FALSE: "false", Kind.NIL: "nil"}.get(p.kind)
        key = ("lit", kind_name) if kind_name else ("lit", p.kind.value, repr(p.value))
        return _Ctor(key, p.node.text)
    if kind is PMember:
        symbol = checker.program.lookup(p.name, checker.scope)
        if symbol is not None and isinstance(symbol.type, Enum):
            return _Ctor(("member", id(symbol.type), symbol.name), symbol.name)
        return _Ctor(("unknown", p.name), p.name)
    if kind is PRecord:
        symbol = checker.program.lookup(p.ctor.name, checker.scope)
        if symbol is None or symbol.record is None:
            elsewhere = checker.program.defined_elsewhere(p.ctor.name, checker.scope)
            symbol = elsewhere[0].decls[p.ctor.name] if elsewhere else None
        if symbol is not None and symbol.record is not None:
            record = symbol.record
            return _Ctor(("record", id(record)), record.name, tuple(ft for _, ft in record.fields))
        return _Ctor(("unknown", p.ctor.name), p.ctor.name)
    return None


def _args(p: Pattern, ctor: _Ctor) -> list[Pattern]:
    if type(p) is PRecord:
        args = list(p.args[: len(ctor.fields)])
        return args + [PWild(p.node)] * (len(ctor.fields) - len(args))
    return [PWild(p.node)] * len(ctor.fields)


def _specialize(rows, ctor: _Ctor, checker) -> list[list[Pattern]]:
    out = []
    for row in rows:
        head = _head(row[0], checker)
        if head is None:
            out.append([PWild(row[0].node)] * len(ctor.fields) + row[1:])
        elif head.key == ctor.key:
            out.append(_args(row[0], ctor) + row[1:])
    return out


def _default(rows, checker) -> list[list[Pattern]]:
    return [row[1:] for row in rows if _head(row[0], checker) is None]


def _witness(rows, types: list[Type], checker) -> list[str] | None:
    """A value no row matches (as pattern text), or None when the rows cover everything."""
    if not types:
        return None if rows else []
    t = types[0]
    ctors = _ctors(t)
    used = {h.key for h in (_head(r[0], checker) for r in rows) if h is not None}
    if ctors is not None and ctors and all(c.key in used for c in ctors):
        for c in ctors:
            w = _witness(_specialize(rows, c, checker), list(c.fields) + types[1:], checker)
            if w is not None:
                n = len(c.fields)
                shown = f"({c.show} {' '.join(w[:n])})" if n else c.show
                return [shown] + w[n:]
        return None
    w = _witness(_default(rows, checker), types[1:], checker)
    if w is None:
        return None
    missing = "_"
    if ctors:
        c = next(c for c in ctors if c.key not in used)
        missing = f"({c.show} {' '.join('_' for _ in c.fields)})" if c.fields else c.show
    return [missing] + w


def _useful(rows, vector: list[Pattern], types: list[Type], checker) -> bool:
    """Would a row `vector` match some value that none of `rows` matches?"""
    if not types:
        return not rows
    head = _head(vector[0], checker)
    t = types[0]
    if head is not None:
        fields = list(head.fields)
        return _useful(_specialize(rows, head, checker), _args(vector[0], head) + vector[1:],
                       fields + types[1:], checker)
    ctors = _ctors(t)
    used = {h.key for h in (_head(r[0], checker) for r in rows) if h is not None}
    if ctors is not None and ctors and all(c.key in used for c in ctors):
        return any(_useful(_specialize(rows, c, checker), [PWild(vector[0].node)] * len(c.fields) + vector[1:],
                           list(c.fields) + types[1:], checker) for c in ctors)
    return _useful(_default(rows, checker), vector[1:], types[1:], checker)


def check_definition(program: Program, scope: PackageScope, definition: Definition) -> Facts:
    return Checker(program, scope).definition(definition)


def unused_imports(scope: PackageScope, refs: list[tuple[Token, Symbol]], damaged: set[int] = frozenset()) \
        -> list[Diagnostic]:
    """Referred names that nothing in the package uses (not said of a package holding a damaged
    definition: the use may be what the missing bracket garbled)."""
    if any(id(definition) in damaged for definition in scope.package.definitions):
        return []
    used = {id(symbol) for token, symbol in refs}
    out = []
    for name, (symbol, token) in scope.refers.items():
        if id(symbol) not in used:
            out.append(Diagnostic.of(d.UNUSED_IMPORT, token.span,
                                     f"`{name}` is referred from `{symbol.package}` but never used"))
    return out


__all__ = ["Checker", "Env", "Facts", "check_definition", "unused_imports", "Param", "Invalid", "Lit"]
