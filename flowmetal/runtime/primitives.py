"""The built-in functions at run time (their types are in `flowmetal.lang.signatures`).

Semantics where the contract leaves room (also in docs/language.md):
- `=` compares structurally; numbers compare by value across `int?` and
  `float?` (`(= 1 1.0)` is true); `true` is no number.
- Arithmetic on integers stays integral, except `/`, which always gives a
  float; dividing by zero is a runtime fault. `mod` has the sign of the divisor;
  `quot` divides integers rounding toward zero, and `rem` has the sign of the
  dividend (`(= x (+ (* y (quot x y)) (rem x y)))`).
- Numbers stay in range: an integer result of 2^4096 or more in magnitude is the
  fault `integer overflow`, a float result beyond the largest double the fault
  `float overflow` (never `inf` or `nan`: every number prints as a literal and
  has a JSON form).
- `str` concatenates strings as they are and any other value as its literal.
- `first` of an empty list and `get` of an absent key give `nil` (or the default).
- `count` counts a list's items, a map's entries, a string's characters.
- `builtin-dumps`/`builtin-loads` are JSON (SPEC section 5): keywords and enum
  members are written as their names, records as objects of their fields.
  `loads` refuses `NaN`, `Infinity` and numbers out of range.
- Any Python error inside a built-in is a fault naming the built-in, never an
  exception out of the machine (`call`); one nested too deep for Python's stack
  is computed again on a deeper one (`flowmetal.lang.deep`).
- Lists and maps are persistent (`flowmetal.runtime.values`): `conj`, `cons`,
  `rest` and `assoc` are O(log n), `concat` copies the shorter list.
"""

from __future__ import annotations

import json

from flowmetal.lang import deep
from flowmetal.lang.forms import INT_LIMIT
from flowmetal.lang.types import (
    ANY, BOOL, FLOAT, INT, JSON, KEYWORD, NIL, NUMBER, STR, Base, Enum, FnOf, Handle, ListOf, MapOf, Record,
    TVar, Type, Union,
)
from flowmetal.runtime.faults import Fault
from flowmetal.runtime.values import (
    EMPTY_LIST, EMPTY_MAP, FUNCTIONS, ChildRef, Keyword, List, Map, Member, RecordValue, TaskRef, display,
    key_value, literal, map_key, type_name,
)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def equal(a, b) -> bool:
    kind = type(a)
    if kind is type(b) and (kind is int or kind is str):  # the common case, first
        return a == b
    if is_number(a) and is_number(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, List):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, Map):
        return len(a) == len(b) and all(k in b and equal(v, b[k]) for k, v in a.items())
    if isinstance(a, RecordValue):
        return (a.package, a.record) == (b.package, b.record) and equal(a.values, b.values)
    return a == b


def as_list(value, where: str) -> List:
    if type(value) is List:
        return value
    if value is None:
        return EMPTY_LIST
    raise Fault(f"`{where}` needs a list, not {literal(value)}")


def _numbers(name: str, args) -> None:
    for a in args:
        if not is_number(a):
            raise Fault(f"`{name}` needs numbers, not {literal(a)} (of type {type_name(a)})")


def in_range(value, _low=-INT_LIMIT, _high=INT_LIMIT) -> bool:
    """Whether a number is one Flowmetal has: an integer below 2^4096 in magnitude, or a
    finite float. (One comparison does both: `inf` and `nan` fail it.)"""
    return _low < value < _high


def _overflow(value):
    if isinstance(value, float):
        return Fault("float overflow: the result is too large for a float (beyond about 1.8e308)")
    return Fault("integer overflow: the result is 2^4096 or more in magnitude")


def _arith(name: str, args):
    _numbers(name, args)
    try:
        out = _arith_of(name, args)
    except OverflowError:  # an integer too large to become a float
        raise Fault("float overflow: a number is too large for a float (beyond about 1.8e308)") from None
    if not in_range(out):
        raise _overflow(out)
    return out


def _arith_of(name: str, args):
    if name == "+":
        return sum(args) if args else 0
    if name == "*":
        out = 1
        for a in args:
            out *= a
        return out
    if name == "-":
        if len(args) == 1:
            return -args[0]
        out = args[0]
        for a in args[1:]:
            out -= a
        return out
    if name == "/":
        if len(args) == 1:
            args = [1, args[0]]
        out = float(args[0])
        for a in args[1:]:
            if a == 0:
                raise Fault("division by zero")
            out /= a
        return out
    raise AssertionError(name)


_ORDER = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def _compare(name: str, args) -> bool:
    _numbers(name, args)
    op = _ORDER[name]
    return all(op(a, b) for a, b in zip(args, args[1:]))


def number2(name: str):
    """A fast two-argument form of an arithmetic or comparison built-in (for compiled code)."""
    return _NUMBER2[name]


def _make_number2():
    def slow(name):
        return lambda a, b: call(name, [a, b])  # the general path reports the fault

    # A result out of range (or an integer too large to add to a float) takes the general
    # path, which reports the fault.
    def add(a, b, _slow=slow("+"), _low=-INT_LIMIT, _high=INT_LIMIT):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            try:
                r = a + b
            except OverflowError:
                return _slow(a, b)
            if _low < r < _high:
                return r
        return _slow(a, b)

    def sub(a, b, _slow=slow("-"), _low=-INT_LIMIT, _high=INT_LIMIT):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            try:
                r = a - b
            except OverflowError:
                return _slow(a, b)
            if _low < r < _high:
                return r
        return _slow(a, b)

    def mul(a, b, _slow=slow("*"), _low=-INT_LIMIT, _high=INT_LIMIT):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            try:
                r = a * b
            except OverflowError:
                return _slow(a, b)
            if _low < r < _high:
                return r
        return _slow(a, b)

    def lt(a, b, _slow=slow("<")):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            return a < b
        return _slow(a, b)

    def gt(a, b, _slow=slow(">")):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            return a > b
        return _slow(a, b)

    def le(a, b, _slow=slow("<=")):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            return a <= b
        return _slow(a, b)

    def ge(a, b, _slow=slow(">=")):
        if (type(a) is int or type(a) is float) and (type(b) is int or type(b) is float):
            return a >= b
        return _slow(a, b)

    return {"+": add, "-": sub, "*": mul, "<": lt, ">": gt, "<=": le, ">=": ge}


_NUMBER2 = _make_number2()


def _json(value):
    if value is None or isinstance(value, (bool, str)) or is_number(value):
        return value
    if isinstance(value, Keyword):
        return value.name
    if isinstance(value, Member):
        return value.name.strip("+")
    if isinstance(value, List):
        return [_json(v) for v in value]
    if isinstance(value, Map):
        return {(_key(key_value(k))): _json(v) for k, v in value.items()}
    if isinstance(value, RecordValue):
        if value.record == "callback" and value.fields == ("url",):
            return value.values[0]
        return {f: _json(v) for f, v in zip(value.fields, value.values)}
    raise Fault(f"{literal(value)} has no JSON form")


def _key(k) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, Keyword):
        return k.name
    if isinstance(k, Member):
        return k.name.strip("+")
    return literal(k)


def _from_json(data):
    if isinstance(data, list):
        return List([_from_json(v) for v in data])
    if isinstance(data, dict):
        return Map([(_text(k), _from_json(v)) for k, v in data.items()])
    if isinstance(data, str):
        return _text(data)
    return data


class _OutOfRange(ValueError):
    pass


def read_json(text: str):
    """The value of JSON text as `loads` reads it; a ValueError saying why there is none (not
    JSON, NaN or Infinity, a number out of range, a lone surrogate)."""
    return _from_json(json.loads(text, parse_constant=_no_constant, parse_int=_json_int, parse_float=_json_float))


def _no_constant(name: str):
    raise ValueError(f"`{name}` is no JSON value (JSON has no NaN or Infinity)")


def _json_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 1300 or not in_range(value := int(text)):
        raise _OutOfRange(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is 2^4096 or more "
                          f"in magnitude")
    return value


def _json_float(text: str) -> float:
    value = float(text)
    if not in_range(value):
        raise _OutOfRange(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large for a float")
    return value


def _text(text: str) -> str:
    """JSON text that is Unicode: a lone surrogate escape (`"\\ud800"`) stands for no character,
    and a value holding one could be neither stored nor printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"a lone surrogate `\\u{ord(text[error.start]):04x}` is not a character") from None
    return text


def call(name: str, args: list):
    try:
        impl = _IMPL.get(name)
        if impl is not None:
            return impl(args)
        return _call(name, args)
    except RecursionError:  # a value nested deeper than this stack goes: built-ins are pure
        if deep.active():
            raise Fault(f"`{name}`: a value is nested too deep") from None
        return deep.run_deep(call, name, args)
    except Fault:
        raise
    except Exception as error:  # a Python error is a fault of the call, never an escape
        raise python_fault(error, name) from None


def python_fault(error: Exception, name: str | None = None) -> Fault:
    """The fault for a Python error raised while computing `name` (a built-in) or elsewhere."""
    if isinstance(error, OverflowError) and "float" in str(error):
        message = "float overflow: a number is too large for a float (beyond about 1.8e308)"
    elif isinstance(error, OverflowError):
        message = f"a number is too large here ({error})"
    elif isinstance(error, TypeError) and "unhashable" in str(error):
        message = "this value cannot be the key of a map"
    elif isinstance(error, MemoryError):
        message = "out of memory"
    elif isinstance(error, RecursionError):
        message = "a value is nested too deep"
    else:
        message = f"{error} ({type(error).__name__})"
    return Fault(f"`{name}`: {message}" if name else message)


def _integers(name: str, args) -> None:
    for a in args:
        if not (isinstance(a, int) and not isinstance(a, bool)):
            raise Fault(f"`{name}` needs integers, not {literal(a)} (of type {type_name(a)})")


def _quot(a: int, b: int) -> int:
    """`a / b` rounded toward zero (Python's `//` rounds toward minus infinity)."""
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


def implementation(name: str):
    """`args -> value` for the built-in `name`, looked up once (for compiled code)."""
    impl = _IMPL.get(name)
    return impl if impl is not None else (lambda args: _call(name, args))


def _call(name: str, args: list):
    if name in ("+", "-", "*", "/"):
        return _arith(name, args)
    if name in ("<", ">", "<=", ">="):
        return _compare(name, args)
    if name == "mod":
        a, b = args
        _numbers("mod", args)
        if b == 0:
            raise Fault("division by zero")
        return a % b
    if name in ("quot", "rem"):
        a, b = args
        _integers(name, args)
        if b == 0:
            raise Fault("division by zero")
        q = _quot(a, b)
        return q if name == "quot" else a - b * q
    if name == "=":
        return all(equal(a, b) for a, b in zip(args, args[1:]))
    if name == "not=":
        return not all(equal(a, b) for a, b in zip(args, args[1:]))
    if name == "not":
        (x,) = args
        return x is None or x is False
    if name == "str":
        return "".join(display(a) for a in args)
    if name in _COLLECTIONS:
        return _COLLECTIONS[name](args)
    if name == "builtin-dumps":  # no NaN or Infinity: numbers in range are all JSON can hold
        return json.dumps(_json(args[0]), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if name == "builtin-loads":
        try:
            return read_json(args[0])
        except _OutOfRange as error:
            raise Fault(f"`loads` cannot read this JSON: {error}") from None
        except (TypeError, ValueError) as error:
            raise Fault(f"`loads` was given text that is not JSON: {error}") from None
    from flowmetal.lang.signatures import BUILTINS
    builtin = BUILTINS.get(name)
    if builtin is not None and builtin.predicate_of is not None:
        return is_instance(args[0], builtin.predicate_of)
    raise Fault(f"no built-in `{name}`")


def is_instance(value, t: Type) -> bool:
    """Whether a value is of a type (the outer shape for lists, maps, functions, tasks and child runs)."""
    if t is ANY:
        return True
    if isinstance(t, Base):
        if t is NIL:
            return value is None
        if t is BOOL:
            return isinstance(value, bool)
        if t is INT:
            return isinstance(value, int) and not isinstance(value, bool)
        if t is FLOAT:
            return isinstance(value, float)
        if t is NUMBER:
            return is_number(value)
        if t is STR:
            return isinstance(value, str)
        if t is KEYWORD:
            return isinstance(value, Keyword)
        if t is JSON:
            return _is_json(value)
        return False
    if isinstance(t, ListOf):
        return isinstance(value, List)
    if isinstance(t, MapOf):
        return isinstance(value, Map)
    if isinstance(t, FnOf):
        return isinstance(value, FUNCTIONS)
    if isinstance(t, Handle):  # what it yields is known only once it has: the outer shape, as for lists
        return isinstance(value, TaskRef if t.kind == "task?" else ChildRef)
    if isinstance(t, Union):
        return any(is_instance(value, m) for m in t.members)
    if isinstance(t, Record):
        return isinstance(value, RecordValue) and value.record == t.name and value.package == t.package
    if isinstance(t, Enum):
        return isinstance(value, Member) and value.enum == t.name and value.package == t.package
    if isinstance(t, TVar):
        return True
    return False


def _is_json(value) -> bool:
    if value is None or isinstance(value, (bool, str)) or is_number(value):
        return True
    if isinstance(value, List):
        return all(_is_json(v) for v in value)
    if isinstance(value, Map):
        return all(isinstance(k, (str, Keyword)) and _is_json(v) for k, v in value.items())
    return False


# -- lists and maps: persistent, so each update is O(log n) (see `flowmetal.runtime.values`) --------------

def _count(args):
    (coll,) = args
    if coll is None:
        return 0
    if isinstance(coll, (List, Map, str)):
        return len(coll)
    raise Fault(f"`count` needs a list, map or string, not {literal(coll)}")


def _first(args):
    items = as_list(args[0], "first")
    return items[0] if items else None


def _concat(args):
    out = EMPTY_LIST
    for a in args:
        out = out.concat(as_list(a, "concat"))
    return out


def _get(args):
    coll, key = args[0], args[1]
    default = args[2] if len(args) > 2 else None
    if isinstance(coll, Map):
        return coll.get(map_key(key), default)  # every value hashes: no key is missed
    if isinstance(coll, List):
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(coll):
            return coll[key]
        return default
    if coll is None:
        return default
    raise Fault(f"`get` needs a map or a list, not {literal(coll)}")


def _assoc(args):
    m, k, v = args
    if m is None:
        m = EMPTY_MAP
    if not isinstance(m, Map):
        raise Fault(f"`assoc` needs a map, not {literal(m)}")
    return m.assoc(map_key(k), v)  # a key already there keeps its place


def _hash_map(args):
    if len(args) % 2:
        raise Fault("`hash-map` takes keys and values in pairs")
    return Map([(map_key(args[i]), args[i + 1]) for i in range(0, len(args), 2)])


# The most items `range` makes: its list is made at once, and a billion items would take the
# worker's memory in one call (a run's state holding more could not be stored anyway:
# `executor.MAX_SNAPSHOT`). A fault, like any value out of range.
MAX_RANGE = 10_000_000


def _range(args):
    _integers("range", args)
    numbers = range(*args)
    size = max(0, numbers.stop - numbers.start)  # a step of 1: no len(), which overflows past 2^63
    if size > MAX_RANGE:
        raise Fault(f"`range` of {size} items is more than the limit of {MAX_RANGE:,}: the list is made at once")
    return List(numbers)


def _keys_or_vals(name: str):
    def impl(args):
        m = args[0] if args[0] is not None else EMPTY_MAP
        if not isinstance(m, Map):
            raise Fault(f"`{name}` needs a map, not {literal(m)}")
        return List([key_value(k) for k in m.keys()]) if name == "keys" else List(m.values())
    return impl


def _conj2(coll, x):
    return coll.conj1(x) if type(coll) is List else _COLLECTIONS["conj"]([coll, x])


def _cons2(x, coll):
    return coll.cons(x) if type(coll) is List else _COLLECTIONS["cons"]([x, coll])


def _assoc3(m, k, v):
    if type(m) is Map and type(k) is not bool:
        return m.assoc(k, v)
    return _assoc([m, k, v])


def _first1(coll):
    if type(coll) is List:
        return coll[0] if len(coll) else None
    return _first([coll])


def _rest1(coll):
    return coll.rest() if type(coll) is List else _COLLECTIONS["rest"]([coll])


# Built-ins with a fixed number of arguments called directly, without a list of them (compiled code).
_FIXED = {("conj", 2): _conj2, ("cons", 2): _cons2, ("assoc", 3): _assoc3, ("first", 1): _first1,
          ("rest", 1): _rest1, ("count", 1): lambda coll: _count([coll]), ("get", 2): lambda c, k: _get([c, k])}


def fixed(name: str, arity: int):
    """`f(arg, ...)` for the built-in `name` called with `arity` arguments, or None."""
    return _FIXED.get((name, arity))


_COLLECTIONS = {
    "count": _count,
    "first": _first,
    "rest": lambda args: as_list(args[0], "rest").rest(),
    "cons": lambda args: as_list(args[1], "cons").cons(args[0]),
    "conj": lambda args: as_list(args[0], "conj").conj(*args[1:]) if len(args) > 1 else as_list(args[0], "conj"),
    "concat": _concat,
    "get": _get,
    "assoc": _assoc,
    "keys": _keys_or_vals("keys"),
    "vals": _keys_or_vals("vals"),
    "range": _range,
    "list": List,
    "vector": List,
    "hash-map": _hash_map,
}


def _table() -> dict:
    table = {}
    for op in ("+", "-", "*", "/"):
        table[op] = (lambda op: lambda args: _arith(op, args))(op)
    for op in ("<", ">", "<=", ">="):
        table[op] = (lambda op: lambda args: _compare(op, args))(op)
    table["="] = lambda args: all(equal(a, b) for a, b in zip(args, args[1:]))
    table["not="] = lambda args: not all(equal(a, b) for a, b in zip(args, args[1:]))
    table["not"] = lambda args: args[0] is None or args[0] is False
    table["str"] = lambda args: "".join(display(a) for a in args)
    table.update(_COLLECTIONS)
    return table


_IMPL = _table()
