"""Runtime values, how they print, and how they persist.

A Flowmetal value is a Python value:

    nil true false 42 2.5 "text"   None True False int float str
    :kw                            Keyword (interned: `Keyword("kw") is Keyword("kw")`)
    [1 2]                          tuple (lists and vectors alike; immutable)
    {:a 1}                         dict (never mutated: `assoc` copies)
    +red+                          Member (an enum member)
    (point 1 2)                    RecordValue
    functions                      Closure, GlobalFn, BuiltinFn

`literal` prints a value as the Flowmetal literal the reader takes back
(SPEC section 6). `encode`/`decode` turn values into JSON-able data and back, for
the store: tagged where JSON has no type of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


class Keyword:
    __slots__ = ("name",)
    _interned: dict[str, "Keyword"] = {}

    def __new__(cls, name: str) -> "Keyword":
        found = cls._interned.get(name)
        if found is None:
            found = object.__new__(cls)
            found.name = name
            cls._interned[name] = found
        return found

    def __repr__(self) -> str:
        return f":{self.name}"

    def __reduce__(self):
        return (Keyword, (self.name,))


@dataclass(frozen=True, slots=True)
class Member:
    package: str
    enum: str
    name: str  # with its plus signs: "+red+"


@dataclass(frozen=True, slots=True)
class RecordValue:
    package: str
    record: str
    fields: tuple[str, ...]
    values: tuple


@dataclass(eq=False, slots=True)
class Closure:
    """A `fn` value: its code (an expression id of the program) and the environment it closed over."""
    fn_id: int
    env: object
    name: str = "fn"


@dataclass(frozen=True, slots=True)
class GlobalFn:
    """A top-level function, constructor, accessor, predicate or endpoint used as a value."""
    package: str
    name: str


@dataclass(frozen=True, slots=True)
class BuiltinFn:
    name: str


FUNCTIONS = (Closure, GlobalFn, BuiltinFn)


class Env:
    """The names a closure or a call sees: its own, then its parent's (a chain of scopes)."""

    __slots__ = ("vars", "parent")

    def __init__(self, vars: dict, parent: "Env | None" = None) -> None:
        self.vars = vars
        self.parent = parent

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.vars:
                return env.vars[name]
            env = env.parent
        raise KeyError(name)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def _string(text: str) -> str:
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) < 0xE000:  # surrogates: see `loads`
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _float(value: float) -> str:
    """A float in the reader's syntax: digits on both sides of the point, a plain exponent."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        exponent = str(int(exponent))
        return f"{mantissa}e{exponent}"
    return text


class MapKey:
    """`true` and `false` as map keys: Python would take them for 1 and 0."""
    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __eq__(self, other) -> bool:
        return isinstance(other, MapKey) and other.value is self.value

    def __hash__(self) -> int:
        return hash(("bool-key", self.value))


_TRUE_KEY, _FALSE_KEY = MapKey(True), MapKey(False)


def map_key(key):
    """The dict key a Flowmetal map uses for `key`."""
    if key is True:
        return _TRUE_KEY
    if key is False:
        return _FALSE_KEY
    return key


def key_value(key):
    """The Flowmetal value of a dict key."""
    return key.value if isinstance(key, MapKey) else key


def literal(value) -> str:
    """The Flowmetal literal of a value."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, Keyword):
        return f":{value.name}"
    if isinstance(value, tuple):
        return "[" + " ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + " ".join(f"{literal(key_value(k))} {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Member):
        return value.name
    if isinstance(value, RecordValue):
        return f"({value.record}" + "".join(" " + literal(v) for v in value.values) + ")"
    if isinstance(value, Closure):
        return f"#<fn {value.name}>"
    if isinstance(value, (GlobalFn, BuiltinFn)):
        return f"#<fn {value.name}>"
    return f"#<{type(value).__name__}>"


def display(value) -> str:
    """What `str` makes of a value: strings as they are, anything else as its literal."""
    return value if isinstance(value, str) else literal(value)


def type_name(value) -> str:
    """The name of a value's type, for messages."""
    if value is None:
        return "nil?"
    if isinstance(value, bool):
        return "bool?"
    if isinstance(value, int):
        return "int?"
    if isinstance(value, float):
        return "float?"
    if isinstance(value, str):
        return "str?"
    if isinstance(value, Keyword):
        return "keyword?"
    if isinstance(value, tuple):
        return "list?"
    if isinstance(value, dict):
        return "map?"
    if isinstance(value, Member):
        return f"{value.enum}?"
    if isinstance(value, RecordValue):
        return f"{value.record}?"
    return "fn?"


# -- persistence ----------------------------------------------------------------------------------

def encode(value, env_ref=None):
    """JSON-able data for a value. `env_ref(env) -> int` names closures' environments."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"l": [encode(v, env_ref) for v in value]}
    if isinstance(value, dict):
        return {"m": [[encode(key_value(k), env_ref), encode(v, env_ref)] for k, v in value.items()]}
    if isinstance(value, Keyword):
        return {"k": value.name}
    if isinstance(value, Member):
        return {"e": [value.package, value.enum, value.name]}
    if isinstance(value, RecordValue):
        return {"r": [value.package, value.record, list(value.fields), [encode(v, env_ref) for v in value.values]]}
    if isinstance(value, Closure):
        if env_ref is None:
            raise TypeError("a function value cannot be stored outside a run's state")
        return {"c": [value.fn_id, env_ref(value.env), value.name]}
    if isinstance(value, GlobalFn):
        return {"g": [value.package, value.name]}
    if isinstance(value, BuiltinFn):
        return {"b": value.name}
    raise TypeError(f"no stored form for {type(value).__name__}")


def decode(data, env_of=None):
    """The value of `encode`'s data. `env_of(int) -> env` finds closures' environments."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    (tag, body), = data.items()
    if tag == "l":
        return tuple(decode(v, env_of) for v in body)
    if tag == "m":
        return {map_key(decode(k, env_of)): decode(v, env_of) for k, v in body}
    if tag == "k":
        return Keyword(body)
    if tag == "e":
        return Member(*body)
    if tag == "r":
        return RecordValue(body[0], body[1], tuple(body[2]), tuple(decode(v, env_of) for v in body[3]))
    if tag == "c":
        return Closure(body[0], env_of(body[1]), body[2])
    if tag == "g":
        return GlobalFn(*body)
    if tag == "b":
        return BuiltinFn(body)
    raise ValueError(f"unknown stored value tag {tag!r}")
