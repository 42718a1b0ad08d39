"""Flowmetal values as plain JSON, both ways, for the HTTP API's connectors.

A connector written in any language sees an endpoint call's arguments as
plain JSON and answers with plain JSON; this module is the one place that
decides how the two kinds of values meet (docs/http-api.md, "Values").

Out (`to_json`, a step's arguments) follows `dumps` (SPEC section 5):
`nil`, booleans, numbers and strings as themselves, lists as arrays, maps as
objects (keys written as text), keywords and enum members as their names
without the colon or plus signs, records as objects of their fields, a
callback as its URL. It never fails: a value with no JSON form (a function)
is written as its literal. Because this loses some distinctions (`:a` and
`"a"` look alike), every argument is also given as its exact Flowmetal
literal.

In (`from_json`, a step's result) is directed by the type the endpoint
declares, so the plain JSON a connector naturally writes becomes the value
the program expects: `"reboot"` or `"+reboot+"` becomes the member of an
enum, `{"status": 200, ...}` a `response` record, `"x"` a keyword where a
`keyword?` is expected. In a union the first alternative that fits is taken,
in a fixed order (nil, bool, int, float, number, str, keyword, enums,
records, lists, maps, then `json?`/`any?`); an object that fits more than one
record must name its record with a `"$record"` key. Anything that fits no
alternative is refused with a message naming the place (`result.body`) and
what was expected, and the caller answers 422 without touching the store.

JSON itself is checked first (`check_json`): no value nested deeper than
`MAX_DEPTH` levels (the conversions recurse) and no text that is not valid
Unicode (a lone surrogate cannot be stored).
"""

from __future__ import annotations

import json
import math
import re

from flowmetal.runtime.values import (
    Keyword, List, Map, Member, RecordValue, key_value, literal, map_key,
)
from flowmetal.lang.types import (
    ANY, BOOL, FLOAT, INT, JSON, KEYWORD, NIL, NUMBER, STR, Base, Enum, FnOf, ListOf, MapOf, Record, TVar,
    Type, Union, show,
)

MAX_DEPTH = 100
RECORD_TAG = "$record"


class ConversionError(ValueError):
    """A JSON value that does not fit the type asked for: the message names where and why."""


class JSONShapeError(ValueError):
    """JSON that parses but cannot be taken: nested too deeply, or text that is not Unicode."""


def check_json(data) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, or holding text that is not valid Unicode."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _unicode(value)
        elif isinstance(value, (list, dict)):
            if depth > MAX_DEPTH:
                raise JSONShapeError(f"the JSON is nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _unicode(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONShapeError("the JSON holds text that is not valid Unicode (a lone surrogate)") from None


# -- out ---------------------------------------------------------------------------------------------

def to_json(value):
    """A value as plain JSON, as `dumps` writes it; a value with no JSON form as its literal."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else literal(value)
    if isinstance(value, Keyword):
        return value.name
    if isinstance(value, Member):
        return value.name.strip("+")
    if isinstance(value, (List, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (Map, dict)):
        return {_key_text(key_value(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, RecordValue):
        if value.record == "callback" and value.fields == ("url",):
            return value.values[0]
        return {f: to_json(v) for f, v in zip(value.fields, value.values)}
    return literal(value)


def _key_text(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, Keyword):
        return key.name
    if isinstance(key, Member):
        return key.name.strip("+")
    return literal(key)


# -- in ----------------------------------------------------------------------------------------------

def from_json(data, t: Type, where: str = "result"):
    """The Flowmetal value of JSON `data` as type `t` (ConversionError when it does not fit)."""
    if t is ANY or t is JSON or isinstance(t, TVar):
        return _plain(data)
    if isinstance(t, Base):
        return _base(data, t, where)
    if isinstance(t, Union):
        return _union(data, t, where)
    if isinstance(t, ListOf):
        if not isinstance(data, list):
            raise _mismatch(data, t, where)
        return List([from_json(item, t.elem, f"{where}[{i}]") for i, item in enumerate(data)])
    if isinstance(t, MapOf):
        if not isinstance(data, dict):
            raise _mismatch(data, t, where)
        return Map([(map_key(_key(k, t.key, where)), from_json(v, t.val, f"{where}.{k}")) for k, v in data.items()])
    if isinstance(t, Enum):
        return _member(data, t, where)
    if isinstance(t, Record):
        return _record(data, t, where)
    if isinstance(t, FnOf):
        raise ConversionError(f"{where}: a function cannot be sent over the API")
    raise ConversionError(f"{where}: no JSON form for the type {show(t)}")


def _plain(data):
    if isinstance(data, list):
        return List([_plain(v) for v in data])
    if isinstance(data, dict):
        return Map([(k, _plain(v)) for k, v in data.items()])
    return data


def _is_int(data) -> bool:
    return isinstance(data, int) and not isinstance(data, bool)


def _base(data, t: Base, where: str):
    if t is NIL and data is None:
        return None
    if t is BOOL and isinstance(data, bool):
        return data
    if t is INT and _is_int(data):
        return data
    if t is FLOAT and (_is_int(data) or isinstance(data, float)):
        try:
            return float(data)
        except OverflowError:
            raise ConversionError(f"{where}: {data} is too large for a float") from None
    if t is NUMBER and (_is_int(data) or isinstance(data, float)):
        return data
    if t is STR and isinstance(data, str):
        return data
    if t is KEYWORD and isinstance(data, str):
        name = data[1:] if data.startswith(":") else data
        if name and not any(c.isspace() for c in name):
            return Keyword(name)
    raise _mismatch(data, t, where)


def _member(data, t: Enum, where: str):
    if isinstance(data, str):
        name = data if data.startswith("+") else f"+{data}+"
        if name in t.members:
            return Member(t.package, t.name, name)
    members = " ".join(m.strip("+") for m in t.members)
    raise ConversionError(f"{where}: expected {show(t)} (one of: {members}), got {_brief(data)}")


def _record(data, t: Record, where: str):
    if not isinstance(data, dict):
        raise _mismatch(data, t, where)
    tag = data.get(RECORD_TAG)
    if tag is not None and tag not in (t.name, f"{t.package}/{t.name}"):
        raise ConversionError(f"{where}: expected {show(t)}, got a `{_brief(tag)}` record")
    fields = [name for name, _ in t.fields]
    given = [k for k in data if k != RECORD_TAG]
    missing = [f for f in fields if f not in data]
    extra = [k for k in given if k not in fields]
    if missing or extra:
        parts = []
        if missing:
            parts.append("lacks " + ", ".join(f"`{f}`" for f in missing))
        if extra:
            parts.append("has no field " + ", ".join(f"`{k}`" for k in extra))
        raise ConversionError(f"{where}: expected {show(t)} (fields: {' '.join(fields)}); the object "
                              + " and ".join(parts))
    values = tuple(from_json(data[name], ftype, f"{where}.{name}") for name, ftype in t.fields)
    return RecordValue(t.package, t.name, tuple(fields), values)


def _key(key: str, t: Type, where: str):
    if t is ANY or t is JSON or t is STR or isinstance(t, TVar):
        return key
    if t is KEYWORD:
        return _base(key, t, f"{where} key")
    if t is INT and re.fullmatch(r"-?[0-9]{1,18}", key):
        return int(key)
    if isinstance(t, Enum):
        return _member(key, t, f"{where} key")
    if isinstance(t, Union):
        for member in _ordered(t):
            try:
                return _key(key, member, where)
            except ConversionError:
                continue
    raise ConversionError(f"{where}: the key {_brief(key)} is no {show(t)}")


_RANK = {NIL: 0, BOOL: 1, INT: 2, FLOAT: 3, NUMBER: 4, STR: 5, KEYWORD: 6}


def _rank(t: Type) -> int:
    if t in _RANK:
        return _RANK[t]
    if isinstance(t, Enum):
        return 7
    if isinstance(t, Record):
        return 8
    if isinstance(t, ListOf):
        return 9
    if isinstance(t, MapOf):
        return 10
    return 11


def _ordered(t: Union) -> list[Type]:
    return sorted(t.members, key=lambda m: (_rank(m), show(m)))


def _union(data, t: Union, where: str):
    members = _ordered(t)
    records = [m for m in members if isinstance(m, Record)]
    if isinstance(data, dict) and records:
        tag = data.get(RECORD_TAG)
        fits = []
        for record in records:
            if tag is not None and tag not in (record.name, f"{record.package}/{record.name}"):
                continue
            try:
                fits.append(_record(data, record, where))
            except ConversionError:
                continue
        if len(fits) == 1:
            return fits[0]
        if len(fits) > 1:
            names = " ".join(f"{r.record}" for r in fits)
            raise ConversionError(f"{where}: the object fits more than one record ({names}): name one with "
                                  f"a \"{RECORD_TAG}\" key")
    for member in members:
        if isinstance(member, Record):
            continue
        try:
            return from_json(data, member, where)
        except ConversionError:
            continue
    raise _mismatch(data, t, where)


def _mismatch(data, t: Type, where: str) -> ConversionError:
    return ConversionError(f"{where}: expected {show(t)}, got {_brief(data)}")


def _brief(data) -> str:
    if isinstance(data, dict):
        return "an object"
    if isinstance(data, list):
        return "an array"
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["ConversionError", "JSONShapeError", "MAX_DEPTH", "RECORD_TAG", "check_json",
           "from_json", "to_json"]
