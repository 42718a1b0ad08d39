"""Fuzzing the numeric and collection built-ins: every run ends, completed or failed with a
fault, never stuck and never with a Python error.

Hypothesis writes programs of nested built-in calls over three parameters and
runs them with random arguments (numbers at and beyond the edges of their
range among them) through the executor, on a real SQLite store. Arguments reach
the built-ins through `(id x)`, a function of `any?`, so the checker lets every
combination through to run time; `id` and `pow` are compiled by the fast path,
the rest evaluated by the machine, so both are exercised. Whatever a run gives
must be a literal the reader takes back, and what `dumps` writes must be JSON.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowmetal.lang.forms import INT_LIMIT
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.literals import read_literal
from flowmetal.runtime.program import code_hash, load
from flowmetal.runtime.store import SQLiteStore
from flowmetal.runtime.values import Keyword, literal

# Built-ins and the numbers of arguments each takes (the checker refuses other counts).
ARITY = {
    "+": (1, 2, 3), "-": (1, 2, 3), "*": (1, 2, 3), "/": (1, 2, 3), "mod": (2,), "quot": (2,), "rem": (2,),
    "<": (2, 3), ">": (2, 3), "<=": (2, 3), ">=": (2, 3), "=": (2, 3), "not=": (2, 3), "not": (1,),
    "str": (0, 1, 2, 3), "count": (1,), "first": (1,), "rest": (1,), "cons": (2,), "conj": (2, 3),
    "concat": (0, 1, 2, 3), "get": (2, 3), "assoc": (3,), "keys": (1,), "vals": (1,), "range": (1, 2),
    "list": (0, 1, 2, 3), "vector": (0, 1, 2, 3), "hash-map": (0, 2, 4), "dumps": (1,), "loads": (1,),
    "pow": (2,), "int?": (1,), "float?": (1,), "number?": (1,), "json?": (1,),
}
HIGHER = ["(map str {})", "(filter number? {})", "(reduce + 0 {})", "(reduce * 1 {})", "(map - {})"]

PRELUDE = """\
(defpackage fuzz
  (require [flowmetal.json :refer [loads dumps]])
  (defn id [x] x)
  (defn pow [b e] (if (= e 0) 1 (* b (pow b (- e 1)))))
  (defn main [a b c]
    {}))
"""

EDGE_INTS = [0, 1, -1, 2 ** 53 + 1, 2 ** 63, -(2 ** 63), 10 ** 308, 10 ** 309, INT_LIMIT - 1, -(INT_LIMIT - 1),
             INT_LIMIT // 2, 2 ** 1024]
EDGE_FLOATS = [0.0, -0.0, 1.5, 1e-308, 5e-324, 1e308, -1.7976931348623157e308, 1.7976931348623157e308, 0.1]

numbers = st.one_of(st.integers(-1000, 1000), st.sampled_from(EDGE_INTS),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGE_FLOATS))
scalars = st.one_of(
    numbers, st.text(max_size=5),
    st.sampled_from(['{"a": [1, 2.5e300]}', "NaN", "[1e999]", "Infinity", "{", "12", "1" * 1300]),
    st.sampled_from([None, True, False, Keyword("k")]),
)
values = st.one_of(numbers, numbers, st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(tuple),
    st.dictionaries(st.one_of(st.text(max_size=3), st.sampled_from([Keyword("a"), Keyword("b")])), inner,
                    max_size=3)), max_leaves=8))


def expressions() -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["a", "b", "c"])

    def call(args: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        def build(name: str, data) -> str:
            count = data.draw(st.sampled_from(ARITY[name]))
            parts = data.draw(st.lists(args, min_size=count, max_size=count))
            return f"(id ({name} {' '.join(parts)}))".replace(" )", ")")
        plain = st.builds(build, st.sampled_from(sorted(ARITY)), st.data())
        higher = st.builds(lambda template, coll: f"(id {template.format(coll)})", st.sampled_from(HIGHER), args)
        return st.one_of(plain, plain, higher)
    return st.recursive(leaf, call, max_leaves=6)


STORE_DIR = Path(tempfile.mkdtemp(prefix="flowmetal-fuzz-"))
STORE = SQLiteStore(STORE_DIR / "store.db")


def no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(), st.tuples(values, values, values))
def test_every_run_of_the_builtins_ends_completed_or_with_a_fault(body, args):
    source = PRELUDE.format(body)
    sources = {"fuzz.flow": source}
    program = load(sources)  # every program generated checks
    texts = [literal(v) for v in args]
    assert [literal(read_literal(t, program, "fuzz")) for t in texts] == texts
    run_id = STORE.create_run("fuzz/main", texts, STORE.put_sources(sources), code_hash(sources))
    executor = Executor(STORE)
    for _ in range(100):  # a run of these never waits: each round goes on where a slice stopped
        executor.run_once(run_id)
        run = STORE.get_run(run_id)
        if run.status in ("completed", "failed"):
            break
    else:
        raise AssertionError(f"the run is still {run.status}")
    assert run.owner is None
    if run.status == "failed":
        assert run.error.startswith("fault: ") and "internal error" not in run.error, run.error
        assert STORE.events(run_id)[-1].kind == "run-failed"
        return
    value = read_literal(run.result, program, "fuzz")  # prints as a literal that reads back
    assert literal(value) == run.result
    for number in _numbers(value):
        assert (-INT_LIMIT < number < INT_LIMIT) and not (isinstance(number, float) and math.isnan(number))
    if body.startswith("(id (dumps"):
        json.loads(value, parse_constant=no_constants)


def _numbers(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, tuple):
            stack += v
        elif isinstance(v, dict):
            stack += v.values()
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield v
