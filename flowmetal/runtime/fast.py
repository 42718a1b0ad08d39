"""The fast path: pure functions compiled to Python closures.

The machine can stop anywhere and be written to the store, and pays for that
on every step. Most functions never need it: a function that calls no
endpoint, directly or through the functions it calls, and calls no function
value it was handed, cannot wait, so nothing can interrupt it. Such a
*pure* function (found by a fixpoint over the program's call graph) is compiled
once into a tree of Python closures and called directly, with Python's own
stack: as fast as a tree-walking interpreter in Python gets.

The machine stays the source of truth. It uses the fast path for a call of a
pure function and falls back to itself when the fast path cannot finish:
on `RecursionError` (recursion deeper than Python's stack: the machine's
depth is bounded by its own, larger, limit) and on a fault (the machine runs the call
again, which is safe since it is pure, so that the fault has its Flowmetal
stack trace). Results are the same values either way.

Calls in tail position are proper tail calls here too, as on the machine: a
compiled call in tail position does not call its callee but hands it back (in
the compiler's one `Tail` record: the callee's body and its environment), and
the call that is waiting for a value runs it, in a loop. A loop written as
recursion so runs in constant Python stack, however long it goes on, instead
of exhausting Python's stack and starting over on the machine.

`match` is compiled too: its leading clauses of literals and enum members
become one dict lookup (for a subject that is a number, string, keyword, nil,
boolean or member: no other value can equal a literal), the others tests in
order; a pattern that binds nothing is tested without building bindings.

Compiled code can be stopped: every call it makes (and every item a `map`,
`filter` or `reduce` goes through) spends one unit of the budget the machine
gives it (`begin`). Counting must cost next to nothing, so a call takes a token
from a deque (`pop`, one call into C; `try` is free in Python 3.11) and only
every `CHUNK` calls, when the tokens run out, does `empty` do the sums. When the
call's allowance is spent, `pause()` (the driver's hook) either lets it go on
with a new budget or stops it with `OutOfFuel`; the machine then makes the call
itself, from its start. Stopping throws the call's work away, so the driver
stops a call only when it must (a cancel, a shutdown, other runs waiting),
never just to look around: it does that (renewing its lease) inside `pause()`.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from operator import itemgetter

from flowmetal.lang.forms import (
    split_arguments, Call, Cond, Definition, Do, FnExpr, If, Let, Lit, Logic, MapLit, Match, Name, PBind, PInvalid, PLit,
    PMember, PRecord, PWild, VectorLit, When,
)
from flowmetal.lang.syntax import Kind
from flowmetal.runtime import primitives as prim
from flowmetal.runtime.program import Program
from flowmetal.runtime.values import BuiltinFn, Closure, Env, GlobalFn, Keyword, List, Map, Member, RecordValue, map_key

HIGHER_ORDER = {"map", "filter", "reduce"}
UNLIMITED = (1 << 30) - 1  # the allowance of a call made without a budget (never looked at)
CHUNK = 4096               # tokens put in at a time: the budget is looked at every CHUNK calls


class NotPure(Exception):
    pass


class Faulting(NotPure):
    """The call faults here (the machine reports the fault, with its stack trace)."""


class Tail:
    """A tail call handed back to the call waiting for a value: run `body(env)` next (the body
    of function `key`, `env` its parameters). One per compiler, filled just before it is
    returned: it is read before anything else runs."""
    __slots__ = ("body", "env", "key")


# Values a literal or member pattern can equal; the others skip a `match`'s literal table.
_SCALARS = frozenset({int, float, str, bool, type(None), Keyword, Member})


class OutOfFuel(Exception):
    """The budget was spent inside compiled code and `pause()` asked it to stop."""


def pure_functions(program: Program) -> set[tuple[str, str]]:
    """The (package, name) of every `defn` that can never wait on an endpoint."""
    calls: dict[tuple[str, str], set] = {}
    impure: set[tuple[str, str]] = set()
    for key, definition in program.functions.items():
        if definition.form != "defn":
            if definition.form == "defendpoint":
                impure.add(key)
            continue
        found: set = set()
        try:
            for e in _walk(definition):
                _callees(program, e, found)
        except NotPure:
            impure.add(key)
            continue
        calls[key] = found
    changed = True
    while changed:
        changed = False
        for key, callees in calls.items():
            if key not in impure and any(c in impure or c not in calls for c in callees):
                impure.add(key)
                changed = True
    return {k for k in calls if k not in impure}


def _walk(definition: Definition):
    from flowmetal.runtime.program import _children
    stack = list(definition.body) + [p.default for p in definition.params if p.default is not None]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(_children(e))


def _callees(program: Program, e, found: set) -> None:
    if type(e) is not Call:
        return
    fn = e.fn
    if type(fn) is FnExpr:
        return  # its body is walked too
    if type(fn) is not Name:
        raise NotPure  # a computed function value: unknown
    symbol = program.symbols.get(id(fn.node))
    if symbol is None or symbol.kind in ("parameter", "local"):
        raise NotPure
    if symbol.kind == "builtin":
        if symbol.name in HIGHER_ORDER:
            f = e.args[0] if e.args else None
            if type(f) is FnExpr:
                return
            if type(f) is Name:
                s = program.symbols.get(id(f.node))
                if s is not None and s.kind == "builtin" and s.name not in HIGHER_ORDER:
                    return
                if s is not None and s.kind == "function":
                    found.add((s.package, s.name))
                    return
            raise NotPure
        return
    if symbol.kind == "endpoint":
        raise NotPure
    if symbol.kind == "function":
        found.add((symbol.package, symbol.name))
    elif symbol.kind == "constant":
        raise NotPure  # evaluated by the machine, once
    # constructors, accessors, predicates, members: pure


class Compiler:
    def __init__(self, program: Program, pure: set[tuple[str, str]]) -> None:
        self.program = program
        self.pure = pure
        self.compiled: dict[tuple[str, str], tuple] = {}
        self.tokens: deque = deque()  # one taken a call; the compiled closures hold its `pop`
        self.take = self.tokens.pop
        self.tail = Tail()
        self.resume_at = None         # (function, parameters) of the latest tail call `call_top` made
        self.allowance = 0            # units the current call may spend before `pause` is asked
        self.budget: int | None = None
        self.pause = None
        self._start = 0
        self._refills = 0

    def begin(self, allowance: int, budget: int | None, pause) -> None:
        """Before a call: it may spend `allowance` units, then `budget` more each time
        `pause()` lets it go on (no budget: no limit)."""
        self.allowance, self.budget, self.pause = allowance, budget, pause
        self._start, self._refills = len(self.tokens), 0
        self.resume_at = None

    def spent(self) -> int:
        """Units spent since `begin`."""
        return self._start + CHUNK * self._refills - len(self.tokens)

    def left(self) -> int:
        """Units of the allowance left (below zero: overspent, by less than `CHUNK`)."""
        return self.allowance - self.spent()

    def empty(self) -> None:
        """No token left: go on (more tokens), or stop (`OutOfFuel`) when the allowance is
        spent and `pause()` does not let the call go on."""
        if self.budget is not None and self.spent() >= self.allowance:
            if self.pause is None or self.pause(True):
                raise OutOfFuel
            self.allowance = self.spent() + self.budget  # a new slice, inside the call
        self._refills += 1
        self.tokens.extend(repeat(None, CHUNK))

    def function(self, key: tuple[str, str]):
        """(parameter names, defaults as closures, body closure) of a pure defn."""
        found = self.compiled.get(key)
        if found is None:
            definition = self.program.functions[key]
            self.compiled[key] = None  # recursion: filled below, looked up at call time
            params = [p.name for p in definition.params]
            defaults = [self.expr(p.default) if p.default is not None else None for p in definition.params]
            found = self.compiled[key] = (params, defaults, self.body(definition.body, tail=True))
        return found

    def call_top(self, key, supplied: dict):
        """`call_pure` for the machine, remembering in `resume_at` the latest tail call its own
        loop made: when the call is stopped (`OutOfFuel`) or too deep for Python's stack, the
        machine goes on from there, not from the start (it is pure: nothing shows twice), so a
        long loop stopped at each slice still gets on."""
        params, defaults, body = self.compiled.get(key) or self.function(key)
        if len(supplied) < len(params):
            return self.call_pure(key, None, supplied)  # defaults: rare at the top, not resumed
        try:
            self.take()
        except IndexError:
            self.empty()
        value = body({name: supplied[name] for name in params})
        tail = self.tail
        while value is tail:
            self.resume_at = (tail.key, tail.env)
            value = tail.body(tail.env)
        return value

    def call_pure(self, key, args: list | None, supplied: dict | None):
        try:
            self.take()
        except IndexError:
            self.empty()
        params, defaults, body = self.compiled.get(key) or self.function(key)
        env = {}
        for i, name in enumerate(params):
            if supplied is not None:
                value = supplied.get(name, _MISSING)
            else:
                value = args[i] if i < len(args) else _MISSING
            if value is _MISSING:
                value = defaults[i](env)
            env[name] = value
        value = body(env)
        tail = self.tail
        while value is tail:
            value = tail.body(tail.env)
        return value

    # -- expressions --

    def body(self, exprs, tail: bool = False):
        """`exprs` in order, the value of the last; `tail`: the last is in tail position (its
        value is the function's), so a call there may hand back `self.tail`."""
        parts = [self.expr(e, tail and i == len(exprs) - 1) for i, e in enumerate(exprs)]
        if not parts:
            return lambda env: None
        if len(parts) == 1:
            return parts[0]

        def run(env, parts=parts):
            for part in parts[:-1]:
                part(env)
            return parts[-1](env)
        return run

    def expr(self, e, tail: bool = False):
        kind = type(e)
        if kind is Lit:
            value = Keyword(e.value) if e.kind is Kind.KEYWORD else e.value
            return lambda env: value
        if kind is Name:
            return self.name(e)
        if kind is Call:
            return self.call(e, tail)
        if kind is If:
            test, then = self.expr(e.test), self.expr(e.then, tail)
            orelse = self.expr(e.orelse, tail) if e.orelse is not None else (lambda env: None)
            if e.negated:
                then, orelse = orelse, then

            def if_(env):
                v = test(env)
                return then(env) if v is not None and v is not False else orelse(env)
            return if_
        if kind is When:
            test, body = self.expr(e.test), self.body(e.body, tail)

            def when(env):
                v = test(env)
                return body(env) if v is not None and v is not False else None
            return when
        if kind is Do:
            return self.body(e.body, tail)
        if kind is Let:
            bindings = [(b.name, self.expr(b.value)) for b in e.bindings]
            body = self.body(e.body, tail)

            def let(env):
                env = dict(env)
                for name, value in bindings:
                    env[name] = value(env)
                return body(env)
            return let
        if kind is Cond:
            clauses = [(self.expr(t), self.expr(r, tail)) for t, r in e.clauses]
            orelse = self.expr(e.orelse, tail) if e.orelse is not None else (lambda env: None)

            def cond(env):
                for test, result in clauses:
                    v = test(env)
                    if v is not None and v is not False:
                        return result(env)
                return orelse(env)
            return cond
        if kind is Logic:
            items = [self.expr(item, tail and i == len(e.items) - 1) for i, item in enumerate(e.items)]
            if e.op == "and":
                def and_(env):
                    v = True
                    for item in items:
                        v = item(env)
                        if v is None or v is False:
                            return v
                    return v
                return and_

            def or_(env):
                v = None
                for item in items:
                    v = item(env)
                    if v is not None and v is not False:
                        return v
                return v
            return or_
        if kind is VectorLit:
            items = [self.expr(i) for i in e.items]
            return lambda env: List([item(env) for item in items])
        if kind is MapLit:
            items = [self.expr(i) for i in e.items]

            def map_(env):
                values = [item(env) for item in items]
                return Map([(map_key(values[k]), values[k + 1]) for k in range(0, len(values) - 1, 2)])
            return map_
        if kind is FnExpr:
            fn_id = self.program.expr_id(e)

            def fn(env):
                return Closure(fn_id, Env(dict(env)), "fn")
            return fn
        if kind is Match:
            return self.match(e, tail)
        raise NotPure

    def name(self, e: Name):
        symbol = self.program.symbols.get(id(e.node))
        name = e.name
        if symbol is None or symbol.kind in ("parameter", "local"):
            return itemgetter(name)  # `env[name]`, without a Python call
        if symbol.kind == "member":
            value = Member(symbol.type.package, symbol.type.name, symbol.name)
        elif symbol.kind == "builtin":
            value = BuiltinFn(symbol.name)
        elif symbol.kind == "constant":
            raise NotPure
        else:
            value = GlobalFn(symbol.package, symbol.name)
        return lambda env: value

    def call(self, e: Call, tail: bool = False):
        fn = e.fn
        args = [self.expr(a) for a in e.args]
        if type(fn) is FnExpr:
            raise NotPure  # rare; the machine handles it
        symbol = self.program.symbols.get(id(fn.node))
        kind = symbol.kind
        if kind == "builtin":
            name = symbol.name
            if name in HIGHER_ORDER:
                return self.higher_order(name, args)
            if len(args) == 2 and name in ("+", "-", "*", "<", ">", "<=", ">="):
                return self.binary(prim.number2(name), e.args[0], e.args[1], args)
            if len(args) == 2 and name == "=":
                return self.binary(prim.equal, e.args[0], e.args[1], args)
            direct = prim.fixed(name, len(args))
            if direct is not None:
                if len(args) == 1:
                    (a,) = args
                    return lambda env: direct(a(env))
                if len(args) == 2:
                    return self.binary(direct, e.args[0], e.args[1], args)
                a, b, c = args
                where, first = self.operand(e.args[0])
                if where == "local":  # `(assoc m k v)`: the map a local, most often
                    return lambda env: direct(env[first], b(env), c(env))
                return lambda env: direct(a(env), b(env), c(env))
            impl = prim.implementation(name)
            if len(args) == 1:
                (a,) = args
                return lambda env: impl([a(env)])
            if len(args) == 2:
                a, b = args
                return lambda env: impl([a(env), b(env)])
            if len(args) == 3:
                a, b, c = args
                return lambda env: impl([a(env), b(env), c(env)])

            def builtin(env):
                return impl([a(env) for a in args])
            return builtin
        if kind == "function":
            key = (symbol.package, symbol.name)
            definition = symbol.definition
            plan = _plan(definition.params, e.args)
            if any(p is not None for p, _ in plan):
                named = [(p, self.expr(x)) for p, x in plan]

                def call_named(env, key=key):
                    supplied = {}
                    for i, (p, x) in enumerate(named):
                        supplied[p if p is not None else definition.params[i].name] = x(env)
                    return self.call_pure(key, None, supplied)
                return call_named
            params = definition.params
            if len(args) == len(params):  # every parameter given by position: the common case
                names = [p.name for p in params]
                body_cell: list = []  # the callee's body, found at its first call (it may be this one)

                def body_of():
                    if not body_cell:
                        body_cell.append((self.compiled.get(key) or self.function(key))[2])
                    return body_cell[0]
                take, empty, tail_call = self.take, self.empty, self.tail
                if len(names) == 1:
                    (name0,), (arg0,) = names, args
                    if tail:
                        def tail1(env):
                            try:
                                take()
                            except IndexError:
                                empty()
                            callee = {name0: arg0(env)}
                            tail_call.body = body_cell[0] if body_cell else body_of()
                            tail_call.env, tail_call.key = callee, key
                            return tail_call
                        return tail1

                    def call1(env):
                        try:
                            take()
                        except IndexError:
                            empty()
                        body = body_cell[0] if body_cell else body_of()
                        value = body({name0: arg0(env)})
                        while value is tail_call:
                            value = tail_call.body(tail_call.env)
                        return value
                    return call1
                if tail and len(names) == 2:
                    (name0, name1), (arg0, arg1) = names, args

                    def tail2(env):
                        try:
                            take()
                        except IndexError:
                            empty()
                        callee = {name0: arg0(env), name1: arg1(env)}
                        tail_call.body = body_cell[0] if body_cell else body_of()
                        tail_call.env, tail_call.key = callee, key
                        return tail_call
                    return tail2
                if tail and len(names) == 3:
                    (name0, name1, name2), (arg0, arg1, arg2) = names, args

                    def tail3(env):
                        try:
                            take()
                        except IndexError:
                            empty()
                        callee = {name0: arg0(env), name1: arg1(env), name2: arg2(env)}
                        tail_call.body = body_cell[0] if body_cell else body_of()
                        tail_call.env, tail_call.key = callee, key
                        return tail_call
                    return tail3
                if tail:
                    def tail_fn(env):
                        try:
                            take()
                        except IndexError:
                            empty()
                        callee = dict(zip(names, [a(env) for a in args]))
                        tail_call.body = body_cell[0] if body_cell else body_of()
                        tail_call.env, tail_call.key = callee, key
                        return tail_call
                    return tail_fn

                def call_fn(env):
                    try:
                        take()
                    except IndexError:
                        empty()
                    body = body_cell[0] if body_cell else body_of()
                    value = body(dict(zip(names, [a(env) for a in args])))
                    while value is tail_call:
                        value = tail_call.body(tail_call.env)
                    return value
                return call_fn
            call_pure = self.call_pure

            def call_fn_defaults(env, key=key):
                return call_pure(key, [a(env) for a in args], None)
            return call_fn_defaults
        if kind == "constructor":
            record = symbol.record
            fields = tuple(f for f, _ in record.fields)

            def construct(env):
                return RecordValue(record.package, record.name, fields, tuple(a(env) for a in args))
            return construct
        if kind == "accessor":
            record, index = symbol.record, symbol.field_index
            (arg,) = args

            def access(env):
                value = arg(env)
                if not (isinstance(value, RecordValue) and value.record == record.name
                        and value.package == record.package):
                    raise Faulting  # the machine reports it properly
                return value.values[index]
            return access
        if symbol.predicate_of is not None:
            t = symbol.predicate_of
            (arg,) = args
            return lambda env: prim.is_instance(arg(env), t)
        raise NotPure

    def binary(self, op, x, y, compiled):
        """`(op x y)`, specialised when an operand is a local or a literal: one call fewer each."""
        kx, vx = self.operand(x)
        ky, vy = self.operand(y)
        a, b = compiled
        if kx == "local" and ky == "const":
            return lambda env: op(env[vx], vy)
        if kx == "local" and ky == "local":
            return lambda env: op(env[vx], env[vy])
        if kx == "const" and ky == "local":
            return lambda env: op(vx, env[vy])
        if ky == "const":
            return lambda env: op(a(env), vy)
        if kx == "local":
            return lambda env: op(env[vx], b(env))
        return lambda env: op(a(env), b(env))

    def operand(self, e):
        if type(e) is Lit and e.kind in (Kind.INT, Kind.FLOAT):
            return "const", e.value
        if type(e) is Name:
            symbol = self.program.symbols.get(id(e.node))
            if symbol is None or symbol.kind in ("parameter", "local"):
                return "local", e.name
        return "expr", None

    def higher_order(self, name: str, args):
        f = args[0]
        take, empty, tail = self.take, self.empty, self.tail

        def apply(fn, values):
            try:
                take()  # one unit an item, whatever the function
            except IndexError:
                empty()
            if type(fn) is BuiltinFn:
                return prim.call(fn.name, values)
            if type(fn) is GlobalFn:
                return self.call_pure((fn.package, fn.name), values, None)  # spends its own unit too
            if type(fn) is Closure:
                fexpr = self.program.exprs[fn.fn_id]
                body = self._closure_body(fn.fn_id, fexpr)
                env = dict(fn.env.vars)
                for param, value in zip(fexpr.params, values):
                    env[param.name] = value
                value = body(env)
                while value is tail:
                    value = tail.body(tail.env)
                return value
            raise NotPure

        if name == "map":
            coll = args[1]
            return lambda env: List([apply(f(env), [x]) for x in prim.as_list(coll(env), "map")])
        if name == "filter":
            coll = args[1]

            def filter_(env):
                fn = f(env)
                return List([x for x in prim.as_list(coll(env), "filter")
                             if (lambda v: v is not None and v is not False)(apply(fn, [x]))])
            return filter_
        init, coll = args[1], args[2]

        def reduce_(env):
            fn = f(env)
            acc = init(env)
            for x in prim.as_list(coll(env), "reduce"):
                acc = apply(fn, [acc, x])
            return acc
        return reduce_

    def _closure_body(self, fn_id: int, fexpr: FnExpr):
        cache = self.__dict__.setdefault("_bodies", {})
        body = cache.get(fn_id)
        if body is None:
            if any(p.default is not None for p in fexpr.params):
                raise NotPure
            body = cache[fn_id] = self.body(fexpr.body, tail=True)
        return body

    def match(self, e: Match, tail: bool = False):
        subject = self.expr(e.subject)
        clauses = list(e.clauses)
        # The leading clauses of literals and members: one lookup (the first clause of a value wins).
        table: dict = {}
        while clauses and type(clauses[0].pattern) in (PLit, PMember):
            clause = clauses.pop(0)
            table.setdefault(map_key(self.constant(clause.pattern)), self.body(clause.body, tail))
        # The others in order: (test(value), None, body) when the pattern binds nothing,
        # else (None, bind(value, bound), body).
        rest = []
        for clause in clauses:
            body = self.body(clause.body, tail)
            if _binds(clause.pattern):
                rest.append((None, self.pattern(clause.pattern), body))
            else:
                rest.append((self.test(clause.pattern), None, body))
        scalars, true_key, false_key = _SCALARS, map_key(True), map_key(False)

        def match(env):
            value = subject(env)
            if table and type(value) in scalars:
                body = table.get(value if type(value) is not bool else true_key if value else false_key)
                if body is not None:
                    return body(env)
            for test, bind, body in rest:
                if test is not None:
                    if test(value):
                        return body(env)
                    continue
                bound: dict = {}
                if bind(value, bound):
                    env = dict(env)
                    env.update(bound)
                    return body(env)
            raise Faulting  # no clause fits: the machine reports the fault with its trace

        if len(rest) == 1 and type(e.clauses[-1].pattern) in (PWild, PBind):
            # Literals, then a catch-all (`[_ ...]` or `[n ...]`): no loop.
            last = e.clauses[-1].pattern
            body = rest[0][2]
            name = last.name if type(last) is PBind else None
            where, local = self.operand(e.subject)
            if where == "local" and name is None and table:
                def match_local(env):  # `(match x [0 ...] ... [_ ...])`, the commonest shape
                    value = env[local]
                    if type(value) in scalars:
                        found = table.get(value if type(value) is not bool else true_key if value else false_key)
                        if found is not None:
                            return found(env)
                    return body(env)
                return match_local

            def match_else(env):
                value = subject(env)
                if table and type(value) in scalars:
                    found = table.get(value if type(value) is not bool else true_key if value else false_key)
                    if found is not None:
                        return found(env)
                if name is not None:
                    env = dict(env)
                    env[name] = value
                return body(env)
            return match_else
        return match

    def constant(self, p):
        """The value a literal or member pattern matches."""
        if type(p) is PLit:
            return Keyword(p.value) if p.kind is Kind.KEYWORD else p.value
        symbol = self.program.symbols.get(id(p.node))
        return Member(symbol.type.package, symbol.type.name, symbol.name)

    def test(self, p):
        """`test(value) -> bool` for a pattern that binds nothing."""
        kind = type(p)
        if kind is PWild:
            return lambda v: True
        if kind is PLit or kind is PMember:
            expected = self.constant(p)
            if expected is None or type(expected) is bool or type(expected) is Keyword:
                return lambda v: v is expected
            if type(expected) is str or type(expected) is Member:
                kind_of = type(expected)
                return lambda v: type(v) is kind_of and v == expected
            return lambda v: (type(v) is int or type(v) is float) and v == expected  # numbers: by value
        bind = self.pattern(p)
        return lambda v: bind(v, {})

    def pattern(self, p):
        kind = type(p)
        if kind is PWild:
            return lambda v, b: True
        if kind is PBind:
            name = p.name

            def bind(v, b):
                b[name] = v
                return True
            return bind
        if kind is PLit:
            expected = Keyword(p.value) if p.kind is Kind.KEYWORD else p.value
            equal = prim.equal
            return lambda v, b: equal(v, expected)
        if kind is PMember:
            symbol = self.program.symbols.get(id(p.node))
            member = Member(symbol.type.package, symbol.type.name, symbol.name)
            return lambda v, b: v == member
        if kind is PRecord:
            symbol = self.program.symbols.get(id(p.ctor.node))
            record = symbol.record
            subs = [self.pattern(s) for s in p.args]

            def rec(v, b):
                return (isinstance(v, RecordValue) and v.record == record.name and v.package == record.package
                        and len(v.values) == len(subs) and all(s(x, b) for s, x in zip(subs, v.values)))
            return rec
        if kind is PInvalid:
            return lambda v, b: False
        raise NotPure


def _binds(p) -> bool:
    """Whether a pattern binds a name."""
    kind = type(p)
    if kind is PBind:
        return True
    if kind is PRecord:
        return any(_binds(sub) for sub in p.args)
    return False


def _plan(params, args):
    positional, named = split_arguments(args, sum(1 for p in params if p.default is None))
    return [(None, a) for a in positional] + [(k.value, v) for k, v in named if v is not None]


_MISSING = object()
