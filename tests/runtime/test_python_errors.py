"""A Python error while a run computes is a Flowmetal fault: the run fails with its stack
trace, and is never left `running` (docs/language.md, "Values at run time").

On a real store, through the executor that `run`, `worker` and `serve` use, and
as a process for the case that used to leave a run `running` for ever: an
integer too large for a float.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import LeaseLost, SQLiteStore
from procs import flowmetal

POW = """\
(defpackage p
  (defn pow [b : int? e : int?] : int?
    (if (= e 0) 1 (* b (pow b (- e 1)))))
  (defn main [] (/ (pow 10 400) 3)))
"""


def test_an_integer_too_large_for_a_float_fails_the_run_with_a_fault(tmp_path: Path):
    (tmp_path / "pow.flow").write_text(POW)
    ran = flowmetal("run", "pow.flow", "main", cwd=tmp_path, timeout=60)
    assert ran.returncode == 1 and ran.stdout == ""
    (run,) = json.loads(flowmetal("runs", "--format", "json", cwd=tmp_path).stdout)
    assert ran.stderr == (f"flowmetal run: run {run['id']}: main\n"
                          "fault: float overflow: a number is too large for a float (beyond about 1.8e308)\n"
                          "  in p/main, line 4\n")
    assert run["status"] == "failed" and run["error"].startswith("fault: float overflow")
    events = json.loads(flowmetal("trace", run["id"], "--format", "json", cwd=tmp_path).stdout)
    assert [e["kind"] for e in events] == ["run-started", "run-failed"]
    assert events[-1]["trace"] == [{"package": "p", "function": "main", "line": 4}]


PROGRAM = """\
(defpackage errs
  (require [flowmetal.time :refer [sleep! duration +days+]])
  (defendpoint send! [x : any?] : nil? "Performed by a connector.")
  (defn size-of [k] (count k))
  (defn sizes [] (size-of [1 2]))
  (defn fn-to-an-endpoint [] (send! (fn [] 1)))
  (defn nap [n] (sleep! (duration n +days+)))
  (defn total [n : int?] : int? (reduce + 0 (range n)))
  (defn busy [] (total 3000000)))
"""


def start(store: SQLiteStore, entry: str, *args: str) -> str:
    sources = {"errs.flow": PROGRAM}
    return store.create_run(entry, list(args), store.put_sources(sources), code_hash(sources))


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store.db")


@pytest.mark.parametrize("entry, args, error", [
    ("errs/fn-to-an-endpoint", [], "fault: the arguments of `errs/send!` cannot be sent to it: a function value "
                                   "cannot be stored outside a run's state\n  in errs/fn-to-an-endpoint, line 6"),
    ("errs/nap", ['"x"'], 'fault: expected a duration of a whole number of a time unit, not (duration "x" +days+)'),
    ("errs/nap", [str(10 ** 12)], "fault: the duration (duration 1000000000000 +days+) is longer than 10,000 years"),
])
def test_a_python_error_in_a_run_is_a_fault_that_fails_it(store: SQLiteStore, entry, args, error):
    run_id = start(store, entry, *args)
    assert Executor(store).run_once(run_id).status == "failed"
    run = store.get_run(run_id)
    assert (run.status, run.owner) == ("failed", None)
    assert run.error.startswith(error)
    assert store.events(run_id)[-1].kind == "run-failed"


def test_a_python_error_inside_a_built_in_is_a_fault_naming_it(store: SQLiteStore, monkeypatch):
    # No built-in is known to raise one today: a bug of one is what this guards against.
    from flowmetal.runtime import primitives

    def broken(args):
        raise KeyError("oops")
    monkeypatch.setitem(primitives._IMPL, "count", broken)
    monkeypatch.setitem(primitives._FIXED, ("count", 1), lambda coll: broken([coll]))  # compiled code's
    run_id = start(store, "errs/sizes")
    assert Executor(store).run_once(run_id).status == "failed"
    run = store.get_run(run_id)
    assert run.error.startswith("fault: `count`: 'oops' (KeyError)\n  in errs/size-of, line 4\n  in errs/sizes, line 5")


def test_an_error_of_the_drivers_own_is_no_fault_of_the_run_where_a_python_error_is(tmp_path: Path):
    # The store fails under a long pure computation (the lease is lost while the fast path
    # computes): that is no fault of the program, and the run is left for another worker.
    class Lost(SQLiteStore):
        def heartbeat(self, run_id, worker, lease):
            raise LeaseLost(run_id)
    store = Lost(tmp_path / "store.db")
    busy, faulty = start(store, "errs/busy"), start(store, "errs/nap", '"x"')
    assert Executor(store, lease=0.003).run_once(busy).status == "lost"
    assert store.get_run(busy).status == "running"
    assert [e.kind for e in store.events(busy)] == ["run-started"]
    assert Executor(store, lease=0.003).run_once(faulty).status == "failed"
