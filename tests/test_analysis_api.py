"""The analysis API the language server stands on: plain data about a workspace."""

from __future__ import annotations

import pytest

from flowmetal.lang.analysis import Workspace
from flowmetal.lang.types import show

LIB = """(defpackage acme.lib
  (defrecord point [x : int?, y : int?] "A point on the grid.")
  (defn norm [p : point? :default (point 0 0) scale : int? :default 1] : int?
    "The taxicab norm of `p`, times `scale`."
    (* scale (+ (point-x p) (point-y p)))))
"""

APP = """(defpackage acme.app
  (require [acme.lib :refer [point norm]]
           [flowmetal.time :as t])
  (defn describe [v : (union? [int? str? nil?])] : str?
    (if (int? v)
      (str "number " (+ v 1))
      (if v
        (str "text " v)
        "nothing")))
  (defn main [] : int?
    (let [p (point 3 4)]
      (t/sleep! (t/make-duration 1 t/+seconds+))
      (norm p :scale 2))))
"""


@pytest.fixture
def ws():
    workspace = Workspace()
    workspace.set_file("lib.flow", LIB)
    workspace.set_file("app.flow", APP)
    assert workspace.all_diagnostics() == []
    return workspace


def at(text: str, needle: str, nth: int = 0, plus: int = 0) -> int:
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    return i + plus


def test_definition_across_files_and_into_the_standard_packages(ws):
    norm = ws.definition_at("app.flow", at(APP, "(norm p", plus=2))
    assert norm.name == "norm" and norm.kind == "function" and norm.package == "acme.lib"
    assert norm.node.source.name == "lib.flow" and norm.node.span.line == 3
    assert norm.doc == "The taxicab norm of `p`, times `scale`."
    assert [(p.name, show(p.type), p.optional) for p in norm.sig.params] == [("p", "point?", True),
                                                                            ("scale", "int?", True)]
    assert show(norm.sig.ret) == "int?"
    sleep = ws.definition_at("app.flow", at(APP, "t/sleep!", plus=3))
    assert sleep.name == "sleep!" and sleep.is_durable
    assert sleep.node.source.name.endswith("flowmetal.time.flow")


def test_references_index(ws):
    point = ws.definition_at("lib.flow", at(LIB, "defrecord point", plus=11))
    places = [(t.source.name, t.span.line) for t in ws.references(point)]
    assert places[0] == ("lib.flow", 2)  # the definition first
    assert ("lib.flow", 3) in places and ("app.flow", 2) in places and ("app.flow", 11) in places


def test_type_at_an_offset_after_narrowing(ws):
    # `v` is (union? [int? str? nil?]); after (int? v) it is int?, in the else branch's
    # truthy test it is str?.
    assert show(ws.type_at("app.flow", at(APP, "(+ v 1)", plus=3))[1]) == "int?"
    assert show(ws.type_at("app.flow", at(APP, '"text " v', plus=8))[1]) == "str?"
    assert show(ws.type_at("app.flow", at(APP, "(if (int? v)", plus=10))[1]) == "(union? [int? nil? str?])"
    assert show(ws.type_at("app.flow", at(APP, "(point 3 4)", plus=1))[1]) == "(fn? [int? int?] : point?)"


def test_names_in_scope(ws):
    names = ws.scope_at("app.flow", at(APP, "(norm p :scale", plus=1))
    assert {"p", "point", "norm", "describe", "main", "count"} <= set(names)
    assert names["p"].kind == "local"
    assert "v" not in names  # describe's parameter is not in scope in main
    assert "v" in ws.scope_at("app.flow", at(APP, "(+ v 1)"))


def test_signature_of_the_call_around_an_offset(ws):
    sig = ws.signature_at("app.flow", at(APP, "(norm p :scale 2)", plus=6))
    assert sig.callee.name == "norm"
    assert [p.name for p in sig.sig.params] == ["p", "scale"]
    assert sig.active == 0
    sig = ws.signature_at("app.flow", at(APP, "(point 3 4)", plus=9))
    assert sig.callee.name == "point" and sig.active == 1


def test_symbols_of_a_file(ws):
    names = {(s.name, s.kind) for s in ws.symbols("lib.flow")}
    assert names == {("point", "constructor"), ("point?", "type"), ("point-x", "accessor"),
                     ("point-y", "accessor"), ("norm", "function")}
