"""Persistent lists and maps (flowmetal.runtime.values): the same values as before, updated in place of copied.

Every operation is checked against a model (a tuple, a dict) on random sequences
of operations, old versions included; and what the store and the printer see of
a value (its literal, its stored JSON, a snapshot holding it) is unchanged. The
built-ins over them are checked by tests/testdata/eval/collections.flow.
"""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from flowmetal.runtime.machine import Machine, Wait
from flowmetal.runtime.program import load
from flowmetal.runtime.values import EMPTY_LIST, EMPTY_MAP, Keyword, List, Map, decode, encode, literal, map_key

ITEMS = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", 2.5, None, True, False]),
                  st.sampled_from([Keyword("k"), Keyword("j")]))

LIST_OPS = st.lists(st.one_of(
    st.tuples(st.just("conj"), ITEMS), st.tuples(st.just("cons"), ITEMS), st.tuples(st.just("rest")),
    st.tuples(st.just("concat"), st.lists(ITEMS, max_size=6)), st.tuples(st.just("concat-onto"), st.lists(ITEMS, max_size=6)),
), max_size=40)


def _apply(value: List, model: tuple, op) -> tuple[List, tuple]:
    kind = op[0]
    if kind == "conj":
        return value.conj1(op[1]), model + (op[1],)
    if kind == "cons":
        return value.cons(op[1]), (op[1],) + model
    if kind == "rest":
        return value.rest(), model[1:]
    if kind == "concat":
        return value.concat(List(op[1])).conj(*op[1][:2]), model + tuple(op[1]) + tuple(op[1][:2])
    return List(op[1]).concat(value), tuple(op[1]) + model


@settings(max_examples=300, deadline=None)
@given(LIST_OPS)
def test_lists_behave_as_tuples_and_keep_their_old_versions(ops):
    value, model = EMPTY_LIST, ()
    history = [(value, model)]
    for op in ops:
        value, model = _apply(value, model, op)
        assert type(value) is List
        history.append((value, model))
    for value, model in history:  # every version, after all the updates made from it
        assert tuple(value) == model and len(value) == len(model)
        assert [value[i] for i in range(len(model))] == list(model)
        assert [value[i] for i in range(-len(model), 0)] == list(model)
        assert value == model and value == List(model) and hash(value) == hash(model)
        assert literal(value) == literal(model)
        assert encode(value) == {"l": [encode(v) for v in model]}
        assert decode(json.loads(json.dumps(encode(value)))) == value


MAP_OPS = st.lists(st.tuples(st.one_of(ITEMS, st.just(1.0)), ITEMS), max_size=40)


@settings(max_examples=300, deadline=None)
@given(MAP_OPS)
def test_maps_behave_as_dicts_in_insertion_order_and_keep_their_old_versions(ops):
    value, model = EMPTY_MAP, {}
    history = [(value, dict(model))]
    for key, item in ops:
        value = value.assoc(map_key(key), item)
        model = dict(model)
        model[map_key(key)] = item  # a key already there (by value: 1 and 1.0) keeps its place
        history.append((value, model))
    for value, model in history:
        assert list(value.items()) == list(model.items()) and len(value) == len(model)
        assert value == model and value == Map(model)
        assert all(value.get(k) == v and k in value for k, v in model.items())
        assert list(value.keys()) == list(model) and list(value.values()) == list(model.values())
        assert literal(value) == literal(model)
        assert encode(value) == encode(model)  # the stored form: pairs in insertion order, as dicts gave
        assert decode(json.loads(json.dumps(encode(value)))) == value


def test_values_as_map_keys_are_found_by_value():
    inner = EMPTY_MAP.assoc(Keyword("a"), List([1, 2]))
    m = EMPTY_MAP.assoc(inner, "map").assoc(List([1, 2]), "list")
    same = Map([(Keyword("a"), List([1]).conj1(2))])
    assert m.get(same) == "map"
    assert m.get(List([0, 1, 2]).rest()) == "list" and m.get(List([7]).cons(0).rest().rest().conj1(2).cons(1)) == "list"
    assert m.get(List([2, 1])) is None
    assert literal(m) == "{{:a [1 2]} \"map\" [1 2] \"list\"}"


def test_values_built_in_python_are_stored_and_printed_as_before():
    """Code outside the runtime (a connector's result) may hand tuples and dicts: the same forms."""
    assert encode((1, (2,), {"k": Keyword("v")})) == encode(List([1, List([2]), Map({"k": Keyword("v")})]))
    assert literal({True: (1, 2)}) == literal(Map([(map_key(True), List([1, 2]))])) == "{true [1 2]}"


SNAPSHOT_PROGRAM = """\
(defpackage snap
  (require [flowmetal.time :refer [sleep! make-duration +seconds+]])
  (defn main [] : (list? any?)
    (let [xs (cons 0 (conj (rest [9 1 2]) 3))
          m (assoc (assoc {:b 1} :a 2) :b 3)]
      (sleep! (make-duration 1 +seconds+))
      [xs m (conj xs 4) (assoc m :c 5) (keys m)])))
"""


def test_a_snapshot_holding_lists_and_maps_restores_to_the_same_values():
    program = load({"snap.flow": SNAPSHOT_PROGRAM})
    machine = Machine(program)
    machine.start("snap/main", [])
    assert isinstance(machine.run(), Wait)
    data = json.loads(json.dumps(machine.snapshot()))
    stored = json.dumps(data)
    assert '{"l": [0, 1, 2, 3]}' in stored  # lists and maps are stored as they always were
    assert '{"m": [[{"k": "b"}, 3], [{"k": "a"}, 2]]}' in stored
    restored = Machine.restore(program, data)
    restored.resume(None)
    value = restored.run().value
    assert literal(value) == "[[0 1 2 3] {:b 3 :a 2} [0 1 2 3 4] {:b 3 :a 2 :c 5} [:b :a]]"
    assert type(value) is List and type(value[1]) is Map
