"""The built-in functions and type predicates every package sees (SPEC section 2).

Each built-in has a signature in the checker's terms: named parameters with
types (some optional), an optional rest parameter, a return type, and type
variables where the built-in is generic (`map`, `filter`, `first`, ...). A few
need a rule no signature expresses (arithmetic is `int?` when every argument
is, `get` works on maps and lists); those carry a `rule` the checker applies.

Built-ins are visible in every package without a `require`, after the
package's own definitions and what it refers, so a user definition named
`count` shadows the built-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowmetal.lang.types import (
    ANY, ANY_FN, ANY_LIST, ANY_MAP, BASES, BOOL, HANDLES, INT, JSON, NUMBER, STR,
    FnOf, ListOf, MapOf, TVar, Type,
)


@dataclass(frozen=True, slots=True)
class SigParam:
    name: str
    type: Type
    optional: bool = False


@dataclass(slots=True)
class Sig:
    """What a call needs: parameters (by position, or by name as `:name value`)."""
    params: list[SigParam]
    ret: Type
    rest: SigParam | None = None
    rule: str | None = None
    generic: bool | None = None  # has type variables (computed once, by the checker)

    @property
    def required(self) -> int:
        return sum(1 for p in self.params if not p.optional)

    def fn_type(self) -> FnOf:
        """The type of the function as a value. One that takes a varying number of
        arguments (a rest or optional parameter) is typed by its result alone."""
        if self.rule is not None:  # its result depends on the arguments: unknown as a value
            return FnOf(None, ANY)
        if self.rest is not None or any(p.optional for p in self.params):
            return FnOf(None, self.ret)
        return FnOf(tuple(p.type for p in self.params), self.ret)


@dataclass(slots=True)
class Builtin:
    name: str
    sig: Sig
    doc: str
    predicate_of: Type | None = field(default=None)


A, B, K, V = TVar("a"), TVar("b"), TVar("k"), TVar("v")


def _p(name: str, t: Type, optional: bool = False) -> SigParam:
    return SigParam(name, t, optional)


def _table() -> dict[str, Builtin]:
    out: dict[str, Builtin] = {}

    def fn(name: str, params: list[SigParam], ret: Type, doc: str, rest: SigParam | None = None,
           rule: str | None = None) -> None:
        out[name] = Builtin(name, Sig(params, ret, rest, rule), doc)

    for op, doc in [("+", "The sum of the numbers."), ("-", "The first number minus the others (or the negation of one)."),
                    ("*", "The product of the numbers."), ("/", "The first number divided by the others.")]:
        note = " Always a `float?`." if op == "/" else " `int?` when every argument is an integer."
        fn(op, [_p("x", NUMBER)], NUMBER, doc + note, rest=_p("more", NUMBER), rule="arithmetic")
    fn("mod", [_p("x", INT), _p("y", INT)], INT, "The remainder of `x` divided by `y`, with the sign of `y`.")
    fn("quot", [_p("x", INT), _p("y", INT)], INT, "`x` divided by `y`, rounded toward zero.")
    fn("rem", [_p("x", INT), _p("y", INT)], INT,
       "The remainder of `x` divided by `y`, with the sign of `x`: `(+ (* y (quot x y)) (rem x y))` is `x`.")
    for op in ("<", ">", "<=", ">="):
        fn(op, [_p("x", NUMBER), _p("y", NUMBER)], BOOL, f"Whether the numbers are in `{op}` order.",
           rest=_p("more", NUMBER))
    fn("=", [_p("x", ANY), _p("y", ANY)], BOOL, "Whether the values are equal.", rest=_p("more", ANY))
    fn("not=", [_p("x", ANY), _p("y", ANY)], BOOL, "Whether the values are not all equal.", rest=_p("more", ANY))
    fn("not", [_p("x", ANY)], BOOL, "`true` when `x` is `nil` or `false`, else `false`.")
    fn("str", [], STR, "The values' text, concatenated: strings as they are, other values as literals.",
       rest=_p("values", ANY))
    fn("count", [_p("coll", ANY)], INT, "The number of items in a list or map, or of characters in a string.",
       rule="collection")
    fn("first", [_p("coll", ListOf(A))], A, "The first item of a list (`nil` when it is empty).")
    fn("rest", [_p("coll", ListOf(A))], ListOf(A), "The list without its first item.")
    fn("cons", [_p("x", A), _p("coll", ListOf(A))], ListOf(A), "A list of `x` followed by the items of `coll`.")
    fn("conj", [_p("coll", ListOf(A)), _p("x", A)], ListOf(A), "The list with `x` added at its end.",
       rest=_p("more", A))
    fn("concat", [], ListOf(A), "The items of the lists, in order, in one list.", rest=_p("lists", ListOf(A)))
    fn("get", [_p("coll", ANY), _p("key", ANY), _p("default", ANY, True)], ANY,
       "The value of `key` in a map, or the item at index `key` of a list; `default` (or `nil`) when absent.",
       rule="get")
    fn("assoc", [_p("m", MapOf(K, V)), _p("key", K), _p("value", V)], MapOf(K, V),
       "The map with `key` set to `value`.")
    fn("keys", [_p("m", MapOf(K, V))], ListOf(K), "The keys of the map.")
    fn("vals", [_p("m", MapOf(K, V))], ListOf(V), "The values of the map.")
    fn("map", [_p("f", FnOf((A,), B)), _p("coll", ListOf(A))], ListOf(B),
       "The list of `(f x)` for each item `x` of `coll`.")
    fn("filter", [_p("f", FnOf((A,), ANY)), _p("coll", ListOf(A))], ListOf(A),
       "The items of `coll` for which `f` is true.")
    fn("reduce", [_p("f", FnOf((B, A), B)), _p("init", B), _p("coll", ListOf(A))], B,
       "`f` applied to `init` and each item in turn: `(f (f init x1) x2)`...")
    fn("range", [_p("start", INT), _p("end", INT, True)], ListOf(INT),
       "The integers from 0 below `start`, or from `start` below `end`.")
    fn("list", [], ListOf(A), "A list of the values.", rest=_p("values", A))
    fn("vector", [], ListOf(A), "A list (vector) of the values.", rest=_p("values", A))
    fn("hash-map", [], MapOf(ANY, ANY), "A map of the keys and values, given in pairs.",
       rest=_p("keys-and-values", ANY), rule="hash-map")
    fn("builtin-loads", [_p("text", STR)], JSON, "Parse JSON text (the runtime's own `loads`).")
    fn("builtin-dumps", [_p("value", ANY)], STR, "Write a value as JSON text (the runtime's own `dumps`).")

    # Type predicates: `(int? x)`; the bare constructors test the outer shape (`(task? x)`: whether
    # `x` is a task, whatever it yields).
    shapes = {"list?": ANY_LIST, "map?": ANY_MAP, "fn?": ANY_FN, **HANDLES}
    for name, t in [*BASES.items(), *shapes.items()]:
        out[name] = Builtin(name, Sig([_p("x", ANY)], BOOL), f"Whether `x` is a value of type `{name}`; "
                            f"also the name of that type.", predicate_of=t)
    return out


BUILTINS: dict[str, Builtin] = _table()
