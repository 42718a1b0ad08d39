"""The API's value conversion (plain JSON to and from Flowmetal values, directed by the
declared type), and its documents: docs/openapi.json is exactly what the server serves,
and every route of the application is described there and in docs/http-api.md."""

from __future__ import annotations

import json
import re

import pytest

from conftest import ROOT
from flowmetal.runtime.program import load
from flowmetal.runtime.values import Keyword, Member, RecordValue
from flowmetal.server.app import make_app
from flowmetal.server.jsonvalues import ConversionError, JSONShapeError, check_json, from_json, to_json
from flowmetal.server.openapi import document, text

TYPES = """\
(defpackage t
  (require [http.request :refer [response? error?]])
  (defenum size +small+ +large+)
  (defrecord offer [price : int? size : size? tags : (list? keyword?)])
  (defrecord note-a [message : str?])
  (defrecord note-b [message : str?])
  (defendpoint offer! [] : offer? "x")
  (defendpoint maybe! [] : (union? [offer? nil?]) "x")
  (defendpoint either! [] : (union? [note-a? note-b?]) "x")
  (defendpoint http! [] : (union? [response? error?]) "x")
  (defendpoint counts! [] : (map? keyword? int?) "x")
  (defendpoint sized! [] : (map? size? float?) "x")
  (defendpoint num! [] : (union? [int? str?]) "x")
  (defendpoint flt! [] : float? "x")
  (defendpoint any! [] : json? "x")
  (defendpoint fn! [] : fn? "x"))
"""


@pytest.fixture(scope="module")
def ret():
    program = load({"t.flow": TYPES})
    return lambda name: program.scopes["t"].decls[name].sig.ret


def test_results_are_converted_by_the_declared_type(ret):
    offer = from_json({"price": 3, "size": "large", "tags": ["a", ":b"]}, ret("offer!"))
    assert offer == RecordValue("t", "offer", ("price", "size", "tags"),
                                (3, Member("t", "size", "+large+"), (Keyword("a"), Keyword("b"))))
    assert from_json({"$record": "offer", "price": 3, "size": "+small+", "tags": []}, ret("offer!")).values[1] == \
        Member("t", "size", "+small+")
    assert from_json(None, ret("maybe!")) is None
    assert from_json({"message": "x", "$record": "t/note-b"}, ret("either!")).record == "note-b"
    assert from_json({"status": 200, "headers": {"a": "b"}, "body": ""}, ret("http!")).record == "response"
    assert from_json({"response": {"status": 500, "headers": {}, "body": "no"}}, ret("http!")).record == \
        "response-error"
    assert from_json({"$record": "dns-error", "message": "no host"}, ret("http!")).record == "dns-error"
    assert from_json({"x": 1, ":y": 2}, ret("counts!")) == {Keyword("x"): 1, Keyword("y"): 2}
    assert from_json({"small": 1}, ret("sized!")) == {Member("t", "size", "+small+"): 1.0}
    assert from_json(2, ret("num!")) == 2 and from_json("2", ret("num!")) == "2"
    assert from_json(2, ret("flt!")) == 2.0 and isinstance(from_json(2, ret("flt!")), float)
    assert from_json({"a": [1, {"b": None}]}, ret("any!")) == {"a": (1, {"b": None})}


@pytest.mark.parametrize("name, data, says", [
    ("offer!", {"price": 3.0, "size": "large", "tags": []}, "result.price: expected int?, got 3.0"),
    ("offer!", {"price": True, "size": "large", "tags": []}, "result.price: expected int?, got true"),
    ("offer!", {"price": 3, "size": "medium", "tags": []}, "result.size: expected size? (one of: small large)"),
    ("offer!", {"price": 3, "size": "large", "tags": [1]}, "result.tags[0]: expected keyword?"),
    ("offer!", {"price": 3, "size": "large"}, "lacks `tags`"),
    ("offer!", {"price": 3, "size": "large", "tags": [], "more": 1}, "has no field `more`"),
    ("offer!", {"$record": "other", "price": 3, "size": "large", "tags": []}, "got a `\"other\"` record"),
    ("offer!", [], "expected offer?, got an array"),
    ("either!", {"message": "x"}, "fits more than one record (note-a note-b)"),
    ("counts!", {"x y": 1}, "result key: expected keyword?, got \"x y\""),
    ("num!", 2.5, "expected (union? [int? str?]), got 2.5"),
    ("flt!", 10 ** 400, "too large for a float"),
    ("fn!", "x", "a function cannot be sent"),
])
def test_results_that_do_not_fit_are_refused_naming_the_place(ret, name, data, says):
    with pytest.raises(ConversionError) as error:
        from_json(data, ret(name))
    assert says in str(error.value)


def test_arguments_are_written_as_dumps_writes_them():
    value = {Keyword("k"): (Member("p", "e", "+red+"), RecordValue("p", "r", ("x", "y"), (1, None))),
             "s": RecordValue("http.callback", "callback", ("url",), ("http://h/callback/t",)), 3: 2.5}
    assert to_json(value) == {"k": ["red", {"x": 1, "y": None}], "s": "http://h/callback/t", "3": 2.5}
    assert isinstance(to_json(float("inf")), str)  # JSON has no infinity: the literal instead
    json.dumps(to_json((float("nan"), float("-inf"))), allow_nan=False)


def test_json_shape_checks():
    check_json({"a": [[["ok"]]]})
    deep = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(JSONShapeError, match="nested deeper"):
        check_json(deep)
    with pytest.raises(JSONShapeError, match="not valid Unicode"):
        check_json({"a": "\ud800"})
    with pytest.raises(JSONShapeError, match="not valid Unicode"):
        check_json({"\udc00": 1})


def test_docs_openapi_json_is_the_served_document():
    assert (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8") == text(), (
        "docs/openapi.json is out of date: python -m flowmetal.server.openapi > docs/openapi.json")


def _routes() -> set[tuple[str, str]]:
    app = make_app(":memory:")
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)
        out.add((route.method, path))
    return out


def test_every_route_is_documented():
    doc = document()
    prose = (ROOT / "docs" / "http-api.md").read_text(encoding="utf-8")
    routes = _routes()
    assert len(routes) == 13
    for method, path in routes:
        assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} is not in the OpenAPI document"
        prose_path = path.replace("/runs/{run_id}", "/runs/{id}")
        assert f"### `{method} {prose_path}`" in prose or f"## `{method} {prose_path}`" in prose, (
            f"{method} {path} is not described in docs/http-api.md")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
