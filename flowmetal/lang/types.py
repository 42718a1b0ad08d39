"""Types, as the checker sees them (SPEC section 3).

Types are predicates: `int?` is both the type of integers and the function that
tests for one. Here a type is an immutable value:

    Base        any? nil? bool? int? float? number? str? keyword? json?
    ListOf      (list? T)          MapOf    (map? K V)
    FnOf        (fn? [T ...] : R)  Union    (union? [T ...])
    Record      a `defrecord`      Enum     a `defenum`
    Handle      (task? T), (child? T): work going on beside, that will yield a T
    TVar        a type variable: `a`, `b?` (the same as `b`)

`show` prints a type in Flowmetal's own syntax, so messages read
`expected int?, found str?` (a type that came from a `deftype` by that name:
`error?`, not the union it stands for). `assignable(src, dst)` is the one compatibility
relation: `any?` is compatible both ways (gradual typing), numbers widen,
collections and handles are covariant (they are immutable; a handle only ever gives
its value out), functions are contravariant in
their parameters, records and enums are nominal, `json?` takes what has a JSON
form. `meet` and `remove` implement occurrence typing: what is left of a type
after a predicate held, or failed. `unify` instantiates a generic signature's
type variables at one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import count


class Type:
    __slots__ = ()

    def __str__(self) -> str:
        return show(self)


@dataclass(frozen=True, slots=True)
class Base(Type):
    name: str


ANY = Base("any?")
NIL = Base("nil?")
BOOL = Base("bool?")
INT = Base("int?")
FLOAT = Base("float?")
NUMBER = Base("number?")
STR = Base("str?")
KEYWORD = Base("keyword?")
JSON = Base("json?")
# The type of no value: what is left when every case was removed (narrowing), and
# the items of an empty literal: `[]` is `(list? never)`, which fits every list
# type and takes its items' type from what is added to it.
NEVER = Base("never")
BASES = {t.name: t for t in (ANY, NIL, BOOL, INT, FLOAT, NUMBER, STR, KEYWORD, JSON)}


# Constructed types may carry the name of the `deftype` they came from (`alias`),
# so that messages say `error?` rather than spelling the union out. The name is
# no part of the type: it is left out of equality and hashing, and dropped by
# any operation that makes another type.


def _cached_hash(t) -> int:
    """A constructed type's hash, computed once: hashing a type nested ten thousand deep at each
    of its levels would cost fifty million steps."""
    h = t._hash
    if h == 0:
        h = hash((type(t).__name__, *(getattr(t, f) for f in t.__match_args__ if f != "alias"))) or 1
        object.__setattr__(t, "_hash", h)
    return h


@dataclass(frozen=True, slots=True)
class ListOf(Type):
    elem: Type
    alias: str | None = field(default=None, compare=False)
    _hash: int = field(default=0, init=False, compare=False, repr=False)
    __hash__ = _cached_hash


@dataclass(frozen=True, slots=True)
class MapOf(Type):
    key: Type
    val: Type
    alias: str | None = field(default=None, compare=False)
    _hash: int = field(default=0, init=False, compare=False, repr=False)
    __hash__ = _cached_hash


@dataclass(frozen=True, slots=True)
class FnOf(Type):
    params: tuple[Type, ...] | None  # None: any function (the bare `fn?`)
    ret: Type
    alias: str | None = field(default=None, compare=False)
    _hash: int = field(default=0, init=False, compare=False, repr=False)
    __hash__ = _cached_hash


ANY_LIST = ListOf(ANY)
ANY_MAP = MapOf(ANY, ANY)
ANY_FN = FnOf(None, ANY)


@dataclass(frozen=True, slots=True)
class Handle(Type):
    """A handle on work going on beside the code that holds it, which will yield a `value`:
    `(task? T)`, a task of this run (`flowmetal.task/spawn!`), or `(child? T)`, a child run.
    One class for both, told apart by `kind` (the constructor's name), since they follow the
    same rules: opaque (no pattern or accessor looks inside), and covariant in what they yield."""
    kind: str    # one of HANDLES
    value: Type
    alias: str | None = field(default=None, compare=False)
    _hash: int = field(default=0, init=False, compare=False, repr=False)
    __hash__ = _cached_hash


ANY_TASK = Handle("task?", ANY)
ANY_CHILD = Handle("child?", ANY)
HANDLES = {t.kind: t for t in (ANY_TASK, ANY_CHILD)}  # the constructor's name -> its bare type


@dataclass(frozen=True, slots=True)
class Union(Type):
    members: frozenset[Type]
    alias: str | None = field(default=None, compare=False)
    _hash: int = field(default=0, init=False, compare=False, repr=False)
    __hash__ = _cached_hash


def named(t: Type, alias: str) -> Type:
    """`t` carrying the name of the `deftype` that defines it (for messages)."""
    if isinstance(t, (ListOf, MapOf, FnOf, Union, Handle)):
        return replace(t, alias=alias)
    return t  # a base type, record, enum or variable is shown by its own name


@dataclass(eq=False, slots=True)
class Record(Type):
    """A `defrecord`: nominal, equal only to itself. Fields are filled in once resolved."""
    name: str
    package: str
    fields: list[tuple[str, Type]] = field(default_factory=list)

    def __hash__(self) -> int:
        return id(self)


@dataclass(eq=False, slots=True)
class Enum(Type):
    name: str
    package: str
    members: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return id(self)


_fresh = count(1)


@dataclass(frozen=True, slots=True)
class TVar(Type):
    """A type variable. `scope` tells apart the `a` of one signature from another's,
    and a call's fresh instance (scope < 0) from the definition's own (rigid) one."""
    name: str
    scope: int = 0


def show(t: Type, spelled: bool = False) -> str:
    """`t` in Flowmetal's syntax; by its `deftype`'s name when it has one, unless `spelled`
    (then its parts are still shown by their names)."""
    if isinstance(t, Base):
        return t.name
    alias = getattr(t, "alias", None)
    if alias is not None and not spelled:
        return alias
    if isinstance(t, ListOf):
        return "list?" if t == ANY_LIST else f"(list? {show(t.elem)})"
    if isinstance(t, MapOf):
        return "map?" if t == ANY_MAP else f"(map? {show(t.key)} {show(t.val)})"
    if isinstance(t, FnOf):
        if t.params is None:
            return "fn?"
        return f"(fn? [{' '.join(show(p) for p in t.params)}] : {show(t.ret)})"
    if isinstance(t, Handle):
        return t.kind if t.value is ANY else f"({t.kind} {show(t.value)})"
    if isinstance(t, Union):
        return f"(union? [{' '.join(sorted(show(m) for m in t.members))}])"
    if isinstance(t, (Record, Enum)):
        return f"{t.name}?"
    if isinstance(t, TVar):
        return t.name
    return repr(t)


def union(types) -> Type:
    """The union of some types, flattened and simplified; `never` when there are none.
    When the result is one of the types given, it is that very one (keeping its alias)."""
    types = list(types)
    result = _union(types)
    if isinstance(result, Union) and result.alias is None:
        for t in types:
            if isinstance(t, Union) and t.alias is not None and t == result:
                return t
    return result


def _union(types: list[Type]) -> Type:
    members: set[Type] = set()
    for t in types:
        if isinstance(t, Union):
            members |= t.members
        elif t is not NEVER:
            members.add(t)
    if ANY in members:
        return ANY
    if INT in members and FLOAT in members:
        members -= {INT, FLOAT}
        members.add(NUMBER)
    if NUMBER in members:
        members -= {INT, FLOAT}
    if JSON in members:
        members = {m for m in members if m is JSON or not assignable(m, JSON)}
    # Drop members another member already includes.
    kept = [m for m in members if not any(o != m and assignable(m, o) and not assignable(o, m) for o in members)]
    if not kept:
        return NEVER
    if len(kept) == 1:
        return kept[0]
    return Union(frozenset(kept))


def join(types) -> Type:
    """The type of a value that may be any of `types` (for literals and branches)."""
    types = list(types)
    if not types:
        return ANY
    return union(types)


def assignable(src: Type, dst: Type) -> bool:
    """May a value of type `src` be used where `dst` is expected?"""
    if src is dst or src == dst:
        return True
    if src is ANY or dst is ANY or src is NEVER:
        return True
    if isinstance(src, Union):
        return all(assignable(m, dst) for m in src.members)
    if isinstance(dst, Union):
        return any(assignable(src, m) for m in dst.members)
    if isinstance(src, TVar) or isinstance(dst, TVar):
        return False  # distinct variables, or a variable against a concrete type
    if dst is NUMBER:
        return src is INT or src is FLOAT
    if dst is JSON:
        if src in (NIL, BOOL, INT, FLOAT, NUMBER, STR):
            return True
        if isinstance(src, ListOf):
            return assignable(src.elem, JSON)
        if isinstance(src, MapOf):
            return assignable(src.key, union([STR, KEYWORD])) and assignable(src.val, JSON)
        return False
    if isinstance(dst, ListOf):
        return isinstance(src, ListOf) and assignable(src.elem, dst.elem)
    if isinstance(dst, MapOf):
        return isinstance(src, MapOf) and assignable(src.key, dst.key) and assignable(src.val, dst.val)
    if isinstance(dst, Handle):
        return isinstance(src, Handle) and src.kind == dst.kind and assignable(src.value, dst.value)
    if isinstance(dst, FnOf):
        if not isinstance(src, FnOf):
            return False
        if dst.params is None or src.params is None:
            return True
        return (len(src.params) == len(dst.params)
                and all(assignable(d, s) for s, d in zip(src.params, dst.params))
                and assignable(src.ret, dst.ret))
    return False


def could_be(src: Type, dst: Type) -> bool:
    """Might some value of type `src` also be of type `dst`? (For patterns and predicates.)"""
    return meet(src, dst) is not NEVER


def _shape_of_json(shape: Type) -> Type:
    if isinstance(shape, ListOf):
        return ListOf(JSON)
    if isinstance(shape, MapOf):
        return MapOf(STR, JSON)
    return shape


def meet(t: Type, p: Type) -> Type:
    """What `t` is known to be once predicate type `p` held of it."""
    if t is ANY:
        return p
    if p is ANY:
        return t
    if isinstance(t, Union):
        return _as(p, union(meet(m, p) for m in t.members))
    if isinstance(p, Union):
        return _as(p, union(meet(t, m) for m in p.members))
    if t is JSON and isinstance(p, (ListOf, MapOf)) and p.__class__ is not t.__class__:
        return _shape_of_json(p) if p in (ANY_LIST, ANY_MAP) else p
    if assignable(t, p):
        return t
    if assignable(p, t):
        return p
    if isinstance(t, TVar):
        return p
    if t is JSON and p in (NIL, BOOL, INT, FLOAT, NUMBER, STR):
        return p
    if isinstance(t, ListOf) and isinstance(p, ListOf):
        return t  # the outer shape held; elements are as they were
    if isinstance(t, MapOf) and isinstance(p, MapOf):
        return t
    if isinstance(t, FnOf) and isinstance(p, FnOf):
        return t
    if isinstance(t, Handle) and isinstance(p, Handle) and t.kind == p.kind:
        return t
    return NEVER


def _as(named_type: Type, t: Type) -> Type:
    """`t`, or `named_type` when they are the same type (so that its alias is kept)."""
    return named_type if t == named_type else t


def remove(t: Type, p: Type) -> Type:
    """What `t` is known to be once predicate type `p` failed of it."""
    if isinstance(t, Union):
        return union(m for m in t.members if not assignable(m, p))
    if t is NUMBER and p is INT:
        return FLOAT
    if t is NUMBER and p is FLOAT:
        return INT
    if t is not ANY and assignable(t, p):
        return NEVER
    return t


def truthy(t: Type) -> Type:
    """`t` once it tested true: not nil (false is a bool and stays)."""
    return remove(t, NIL) if isinstance(t, Union) else t


def falsy(t: Type) -> Type:
    return t


# -- generics -----------------------------------------------------------------------------

def type_vars(t: Type) -> set[TVar]:
    if isinstance(t, TVar):
        return {t}
    if isinstance(t, ListOf):
        return type_vars(t.elem)
    if isinstance(t, Handle):
        return type_vars(t.value)
    if isinstance(t, MapOf):
        return type_vars(t.key) | type_vars(t.val)
    if isinstance(t, FnOf):
        out = type_vars(t.ret)
        for p in t.params or ():
            out |= type_vars(p)
        return out
    if isinstance(t, Union):
        out = set()
        for m in t.members:
            out |= type_vars(m)
        return out
    return set()


def substitute(t: Type, subst: dict[TVar, Type], default: Type | None = None,
               _seen: frozenset[TVar] = frozenset()) -> Type:
    """`t` with its variables replaced, through to the end (a variable may be bound to a
    type holding another bound variable); unbound ones become `default` when given.
    A type with nothing to replace comes back as itself (its alias kept)."""
    if isinstance(t, TVar):
        if t in subst and t not in _seen:
            return substitute(subst[t], subst, default, _seen | {t})
        return default if default is not None else t
    if isinstance(t, ListOf):
        out = ListOf(substitute(t.elem, subst, default, _seen))
    elif isinstance(t, MapOf):
        out = MapOf(substitute(t.key, subst, default, _seen), substitute(t.val, subst, default, _seen))
    elif isinstance(t, Handle):
        out = Handle(t.kind, substitute(t.value, subst, default, _seen))
    elif isinstance(t, FnOf):
        params = None if t.params is None else tuple(substitute(p, subst, default, _seen) for p in t.params)
        out = FnOf(params, substitute(t.ret, subst, default, _seen))
    elif isinstance(t, Union):
        out = union(substitute(m, subst, default, _seen) for m in t.members)
    else:
        return t
    return t if out == t else out


def fresh_scope() -> int:
    return -next(_fresh)


def instantiate(t: Type, scope: int) -> Type:
    """`t` with every variable of the signature's own scope renamed into `scope`."""
    mapping = {v: TVar(v.name, scope) for v in type_vars(t) if v.scope >= 0}
    return substitute(t, mapping) if mapping else t


def unify(param: Type, arg: Type, subst: dict[TVar, Type], _via: frozenset[TVar] = frozenset()) -> bool:
    """Bind the flexible variables (scope < 0) of `param` so that `arg` fits it."""
    if param == arg:
        return True
    if isinstance(param, TVar) and param.scope < 0:
        bound = subst.get(param)
        if bound is None:
            subst[param] = arg
            return True
        if bound == arg:
            return True
        if param not in _via and any(v.scope < 0 for v in type_vars(bound)):
            # Bound to a type that is still being solved (`(list? b)` from a generic
            # function passed as an argument): solve that type's variables instead.
            return unify(bound, arg, subst, _via | {param})
        if assignable(arg, bound):
            return True
        if assignable(bound, arg):
            subst[param] = arg
            return True
        subst[param] = union([bound, arg])
        return True
    if isinstance(arg, TVar) and arg.scope < 0:
        # A variable of the argument's own (a generic function passed as a value):
        # it takes what the parameter says.
        bound = subst.get(arg)
        if bound is None:
            subst[arg] = param
            return True
        return unify(param, bound, subst, _via | {arg}) if arg not in _via else True
    if arg is ANY:
        for v in type_vars(param):
            if v.scope < 0:
                subst.setdefault(v, ANY)
        return True
    if isinstance(param, ListOf) and isinstance(arg, ListOf):
        return unify(param.elem, arg.elem, subst)
    if isinstance(param, MapOf) and isinstance(arg, MapOf):
        return unify(param.key, arg.key, subst) and unify(param.val, arg.val, subst)
    if isinstance(param, Handle) and isinstance(arg, Handle) and param.kind == arg.kind:
        return unify(param.value, arg.value, subst)
    if isinstance(param, Handle) and isinstance(arg, Union) \
            and all(isinstance(m, Handle) and m.kind == param.kind for m in arg.members):
        # One of several tasks (`(if c t1 t2)`, a list of tasks of different types): it
        # yields what any of them yields.
        return all(unify(param, m, subst) for m in arg.members)
    if isinstance(param, FnOf) and isinstance(arg, FnOf):
        if param.params is None or arg.params is None:
            return unify(param.ret, arg.ret, subst)
        if len(param.params) != len(arg.params):
            return False
        ok = all(unify(p, a, subst) for p, a in zip(param.params, arg.params))
        return unify(param.ret, arg.ret, subst) and ok
    if isinstance(param, Union) and type_vars(param):
        concrete = [m for m in param.members if not type_vars(m)]
        if any(assignable(arg, m) for m in concrete):
            return True
        if isinstance(arg, Union):
            rest = union(m for m in arg.members if not any(assignable(m, c) for c in concrete))
        else:
            rest = arg
        variables = [m for m in param.members if type_vars(m)]
        return unify(variables[0], rest, subst) if len(variables) == 1 else True
    return assignable(arg, substitute(param, subst, ANY))
