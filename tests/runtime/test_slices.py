"""Slices: the machine stops after a budget of work, in a state that can be stored and
resumed, on the machine and inside compiled pure code alike; the call stack has a limit
(a clear fault, not a process that grows without end); a state too large to store fails
its run. The whole processes (serve, worker) are in test_runaway.py."""

from __future__ import annotations

import pytest

from conftest import ROOT
from flowmetal.runtime import evaluate, fast
from flowmetal.runtime import machine as machine_module
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.machine import Done, Fault, Machine, Slice
from flowmetal.runtime.program import code_hash, load
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage slices
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]])
  (defn count-up [n : int? limit : int?] : int? (if (= n limit) n (count-up (+ n 1) limit)))
  (defn fib [n : int?] : int? (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))
  (defn sum-fibs [n : int?] : int? (reduce (fn [acc k] (+ acc (fib k))) 0 (range n)))
  (defn deep [n : int?] : int? (if (= n 0) 0 (+ 1 (deep (- n 1)))))
  (def big : int? (deep 1000))  ; deeper than Python's stack on the fast path: the machine computes it
  (defn use-big [] : int? (+ big 1))
  (defn hoard [n : int?] : int?
    (let [items (range n)]
      (sleep! (make-duration 1 +milliseconds+))
      (count items))))
"""


def program():
    return load({"slices.flow": PROGRAM})


def sliced(entry: str, args: list, budget: int, restore_each_time: bool = False, pause=None):
    """Run `entry` slice by slice: (its value, how many slices it took)."""
    prog = program()
    machine = Machine(prog)
    machine.start(entry, args)
    slices = 0
    while True:
        outcome = machine.run(budget, pause)
        if isinstance(outcome, Done):
            return outcome.value, slices
        assert isinstance(outcome, Slice), outcome
        slices += 1
        if restore_each_time:  # another process could go on from here
            machine = Machine.restore(prog, machine.snapshot())


@pytest.mark.parametrize("entry, args, expected", [
    ("slices/count-up", [0, 50_000], 50_000),  # a loop of tail calls: stopped at each slice, goes on from there
    ("slices/fib", [18], 2584),            # pure: the fast path
    ("slices/sum-fibs", [18], 4180),       # fast path inside `reduce`, called from the machine
])
def test_a_budget_cuts_a_run_into_slices_that_end_with_the_same_value(entry, args, expected):
    whole = Machine(program())
    whole.start(entry, args)
    assert whole.run() == Done(expected)
    value, slices = sliced(entry, args, budget=1000)
    assert value == expected and slices > 5
    value, slices = sliced(entry, args, budget=1000, restore_each_time=True)
    assert value == expected and slices > 5


def test_a_pure_call_longer_than_the_budget_goes_on_while_pause_says_so(monkeypatch):
    monkeypatch.setattr(fast, "CHUNK", 16)  # the budget looked at every 16 calls, not 4096
    asked = []

    def go_on(resumable: bool) -> bool:
        asked.append(resumable)
        return False

    # fib 18 makes 8,361 calls: with a budget of 100 the fast path asks often, and is never stopped.
    value, slices = sliced("slices/fib", [18], budget=100, pause=go_on)
    assert value == 2584
    assert len(asked) > 50
    assert slices < len(asked)


def test_a_pure_call_stopped_by_pause_is_made_again_by_the_machine(monkeypatch):
    monkeypatch.setattr(fast, "CHUNK", 16)
    answers = iter([True] * 3)  # stop the first three times it asks, then let it go on

    def pause(resumable: bool) -> bool:
        return next(answers, False)

    value, slices = sliced("slices/fib", [18], budget=1000, pause=pause)
    assert value == 2584
    assert slices >= 3  # each stop ended a slice


def test_a_constant_longer_than_the_budget_asks_pause_and_stops_only_when_told():
    asked = []

    def go_on(resumable: bool) -> bool:
        asked.append(resumable)
        return False

    value, _ = sliced("slices/use-big", [], budget=1000, pause=go_on)
    assert value == 1001
    assert len(asked) > 10 and not any(asked)  # stopping it would lose its work: pause is told so
    answers = iter([True, True])
    value, slices = sliced("slices/use-big", [], budget=1000, pause=lambda resumable: next(answers, False))
    assert value == 1001 and slices >= 2


@pytest.mark.slow
def test_recursion_within_the_limit_works():
    assert machine_module.MAX_DEPTH >= 100_000
    assert f"At most {machine_module.MAX_DEPTH:,} calls" in (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert evaluate(PROGRAM, "slices/deep", [100_000], name="slices.flow") == 100_000


def test_recursion_past_the_limit_is_a_fault_with_a_trimmed_trace(monkeypatch):
    monkeypatch.setattr(machine_module, "MAX_DEPTH", 500)
    machine = Machine(program())
    machine.start("slices/deep", [10_000_000])
    with pytest.raises(Fault) as caught:
        while not isinstance(machine.run(10_000), Done):
            pass
    fault = caught.value
    assert fault.message.startswith("call stack too deep: more than 500 frames")
    assert len(fault.trace) == machine_module.TRACE_KEEP
    assert fault.trace[0] == ("slices", "deep", 6)
    assert fault.omitted == 500 - machine_module.TRACE_KEEP
    assert fault.render().endswith(f"... and {fault.omitted} more calls")


def test_a_state_too_large_to_store_fails_the_run(tmp_path, monkeypatch):
    from flowmetal.runtime import executor as ex
    monkeypatch.setattr(ex, "MAX_SNAPSHOT", 64 << 10)
    store = SQLiteStore(tmp_path / "store.db")
    sources = {"slices.flow": PROGRAM}
    stored = store.put_sources(sources)
    small = store.create_run("slices/hoard", ["100"], stored, code_hash(sources))
    large = store.create_run("slices/hoard", ["100000"], stored, code_hash(sources))
    Executor(store).run_once(small)
    assert store.get_run(small).status == "waiting"
    Executor(store).run_once(large)
    run = store.get_run(large)
    assert run.status == "failed"
    assert "the run's state is too large to store" in run.error and "more than the limit of 64 KiB" in run.error
    assert store.events(large)[-1].kind == "run-failed"
    assert store.snapshot(large) is None  # nothing unstorable was written


def test_replaying_a_run_cancelled_while_it_computed_stops_past_its_log(tmp_path, monkeypatch):
    # Its log ends in the middle of a computation without end: replay (and the editor's
    # state at an event, which walks the same way) stops after a while instead of looping.
    import threading

    from flowmetal.runtime import replay as replay_module
    monkeypatch.setattr(replay_module, "PAST_LOG_SECONDS", 0.5)
    store = SQLiteStore(tmp_path / "store.db")
    sources = {"spin.flow": "(defpackage spin (defn spin [n : int?] : int? (spin (+ n 1))))\n"}
    run_id = store.create_run("spin/spin", ["0"], store.put_sources(sources), code_hash(sources))
    worker = threading.Thread(target=lambda: Executor(SQLiteStore(tmp_path / "store.db")).run_once(run_id))
    worker.start()
    while store.get_run(run_id).status != "running":
        pass
    assert store.request_cancel(run_id) == "cancelling"
    worker.join(30)
    assert not worker.is_alive() and store.get_run(run_id).status == "cancelled"
    result = replay_module.replay(store, run_id, verify=True)
    assert result.divergence is None and result.value is None and result.fault is None
    assert "past the log's last step" in result.lines[-1]
    from flowmetal.runtime.inspect import state_at
    events = store.events(run_id)
    state = state_at(program_of(store, run_id), store.get_run(run_id), events, events[-1].seq)
    assert state.kind == "run-cancelled"


def program_of(store, run_id):
    return load(store.get_sources(store.get_run(run_id).program))
