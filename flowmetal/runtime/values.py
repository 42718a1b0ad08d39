"""Runtime values, how they print, and how they persist.

A Flowmetal value is a Python value:

    nil true false 42 2.5 "text"   None True False int float str
    :kw                            Keyword (interned: `Keyword("kw") is Keyword("kw")`)
    [1 2]                          List (lists and vectors alike; persistent)
    {:a 1}                         Map (persistent; insertion order)
    +red+                          Member (an enum member)
    (point 1 2)                    RecordValue
    functions                      Closure, GlobalFn, BuiltinFn

`literal` prints a value as the Flowmetal literal the reader takes back
(SPEC section 6). `encode`/`decode` turn values into JSON-able data and back, for
the store: tagged where JSON has no type of its own.

Lists and maps are persistent: an update makes a new value sharing all but
O(log n) of the old one, so building a list with `conj` or a map with `assoc`,
one item at a time, costs O(n log n) in all rather than the O(n^2) of copying.
`List` is a deque of two of pyrsistent's vectors: `conj`, `cons` and `rest`
are O(log n) (`rest` O(1)), `concat` copies the shorter list. `Map` is a hash
array mapped trie (the `immutables` package, in C, as in CPython's own
`contextvars`; pyrsistent's map is Python code, four times as slow to build a
map of 16,000 keys: docs/performance.md), with the order in which keys were
first added (the order literals, `keys` and JSON show) in a vector beside it.
Both are immutable and hashable, so any value can be a map key. For Python code (tests, connectors)
they compare equal to tuples and dicts of the same items; `encode` and
`literal` also take tuples and dicts, so a value built in Python needs no
conversion to be stored or printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import immutables
from pyrsistent import pvector

_NO_ITEMS = pvector()
_new = object.__new__


class List:
    """A Flowmetal list. Its items are `front[:nf]` in reverse order (what `cons` added),
    then `back[start:]` (`rest` moves `nf` down, then `start` up, never copying)."""

    __slots__ = ("_front", "_nf", "_back", "_start", "_hash")

    def __init__(self, items=()) -> None:
        self._front, self._nf, self._start, self._hash = _NO_ITEMS, 0, 0, None
        self._back = pvector(items)

    @classmethod
    def _of(cls, front, nf: int, back, start: int) -> "List":
        new = object.__new__(cls)
        new._front, new._nf, new._back, new._start, new._hash = front, nf, back, start, None
        return new

    def __len__(self) -> int:
        return self._nf + len(self._back) - self._start

    def __getitem__(self, i):
        if isinstance(i, slice):
            return List(tuple(self)[i])
        nf = self._nf
        if i < 0:
            i += len(self)
        if 0 <= i < nf:
            return self._front[nf - 1 - i]
        if i >= 0:
            j = i - nf + self._start
            if j < len(self._back):
                return self._back[j]
        raise IndexError("list index out of range")

    def __iter__(self):
        back = self._back[self._start:] if self._start else self._back
        if not self._nf:
            return iter(back)
        front = self._front if self._nf == len(self._front) else self._front[:self._nf]
        return chain(reversed(front), back)

    def conj1(self, item) -> "List":
        """`conj` of one item (the common case, without the tuple of items)."""
        new = _new(List)
        new._front, new._nf, new._back, new._start, new._hash = (
            self._front, self._nf, self._back.append(item), self._start, None)
        return new

    def conj(self, *items) -> "List":
        """The list with `items` added at its end."""
        back = self._back.append(items[0]) if len(items) == 1 else self._back.extend(items)
        return List._of(self._front, self._nf, back, self._start)

    def cons(self, item) -> "List":
        """The list with `item` added at its start."""
        nf, start = self._nf, self._start
        if not nf and start:  # a slot `rest` left at the start of `back`
            return List._of(self._front, 0, self._back.set(start - 1, item), start - 1)
        front = self._front.append(item) if nf == len(self._front) else self._front.set(nf, item)
        return List._of(front, nf + 1, self._back, start)

    def rest(self) -> "List":
        """The list without its first item (empty when it is empty)."""
        if self._nf:
            return List._of(self._front, self._nf - 1, self._back, self._start)
        if self._start < len(self._back):
            return List._of(self._front, 0, self._back, self._start + 1)
        return self

    def concat(self, other: "List") -> "List":
        """The items of this list then those of `other`: the shorter one is copied."""
        if not len(other):
            return self
        if not len(self):
            return other
        if len(other) <= len(self):
            return List._of(self._front, self._nf, self._back.extend(other), self._start)
        front = other._front if other._nf == len(other._front) else other._front[:other._nf]
        front = front.extend(reversed(tuple(self)))
        return List._of(front, len(front), other._back, other._start)

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if isinstance(other, List) or type(other) is tuple:
            return len(self) == len(other) and tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self))  # as a tuple of the same items: they are equal
        return self._hash

    def __repr__(self) -> str:
        return f"List({list(self)!r})"

    def __reduce__(self):
        return (List, (tuple(self),))


class Map:
    """A Flowmetal map: `entries` (a persistent hash map of map keys to values, see `map_key`)
    and `order`, its keys in the order they were first added."""

    __slots__ = ("_entries", "_order", "_hash")

    def __init__(self, entries=()) -> None:
        """From a dict or (key, value) pairs, keys already made map keys (`map_key`); a key given
        twice keeps its first place and its last value."""
        entries = dict(entries)
        self._entries, self._order, self._hash = immutables.Map(entries), pvector(entries), None

    @classmethod
    def _of(cls, entries, order) -> "Map":
        new = object.__new__(cls)
        new._entries, new._order, new._hash = entries, order, None
        return new

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __getitem__(self, key):
        return self._entries[key]

    def get(self, key, default=None):
        return self._entries.get(key, default)

    def __iter__(self):
        return iter(self._order)

    def keys(self):
        return iter(self._order)

    def values(self):
        return map(self._entries.__getitem__, self._order)

    def items(self):
        return zip(self._order, map(self._entries.__getitem__, self._order))

    def assoc(self, key, value) -> "Map":
        """The map with `key` (a map key) set to `value`: an existing key keeps its place."""
        entries = self._entries.set(key, value)
        if len(entries) == len(self._order):
            return Map._of(entries, self._order)
        return Map._of(entries, self._order.append(key))

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if isinstance(other, Map):
            return self._entries == other._entries
        if type(other) is dict:
            return len(self) == len(other) and all(k in other and other[k] == v for k, v in self.items())
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._entries)
        return self._hash

    def __repr__(self) -> str:
        return f"Map({dict(self.items())!r})"

    def __reduce__(self):
        return (Map, (dict(self.items()),))


EMPTY_LIST = List()
EMPTY_MAP = Map()


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


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task of this run (`flowmetal.task/spawn!`): its number, 0 being the entry's own."""
    task: int


@dataclass(frozen=True, slots=True)
class ChildRef:
    """A child run (`flowmetal.run/start-run!`): its run id."""
    run: str


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
    if isinstance(value, (List, tuple)):
        return "[" + " ".join(literal(v) for v in value) + "]"
    if isinstance(value, (Map, dict)):
        return "{" + " ".join(f"{literal(key_value(k))} {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Member):
        return value.name
    if isinstance(value, RecordValue):
        return f"({value.record}" + "".join(" " + literal(v) for v in value.values) + ")"
    if isinstance(value, Closure):
        return f"#<fn {value.name}>"
    if isinstance(value, (GlobalFn, BuiltinFn)):
        return f"#<fn {value.name}>"
    if isinstance(value, TaskRef):
        return f"#<task {value.task}>"
    if isinstance(value, ChildRef):
        return f"#<run {value.run}>"
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
    if isinstance(value, (List, tuple)):
        return "list?"
    if isinstance(value, (Map, dict)):
        return "map?"
    if isinstance(value, Member):
        return f"{value.enum}?"
    if isinstance(value, RecordValue):
        return f"{value.record}?"
    if isinstance(value, TaskRef):
        return "task?"
    if isinstance(value, ChildRef):
        return "child?"
    return "fn?"


# -- persistence ----------------------------------------------------------------------------------

def encode(value, env_ref=None):
    """JSON-able data for a value. `env_ref(env) -> int` names closures' environments."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (List, tuple)):
        return {"l": [encode(v, env_ref) for v in value]}
    if isinstance(value, (Map, dict)):
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
    if isinstance(value, TaskRef):  # only a run's own state holds one: it means nothing elsewhere
        if env_ref is None:
            raise TypeError("a task cannot be stored outside its run's state")
        return {"t": value.task}
    if isinstance(value, ChildRef):
        return {"cr": value.run}
    raise TypeError(f"no stored form for {type(value).__name__}")


def decode(data, env_of=None):
    """The value of `encode`'s data. `env_of(int) -> env` finds closures' environments."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    (tag, body), = data.items()
    if tag == "l":
        return List([decode(v, env_of) for v in body])
    if tag == "m":
        return Map([(map_key(decode(k, env_of)), decode(v, env_of)) for k, v in body])
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
    if tag == "t":
        return TaskRef(body)
    if tag == "cr":
        return ChildRef(body)
    raise ValueError(f"unknown stored value tag {tag!r}")
