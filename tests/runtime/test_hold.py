"""A run held for a connector's quick answer (`executor.HOLD`): on both stores, the request
committed before anyone can perform it, the answer given in memory without the run being
released and claimed again, and a run whose answer does not come within the hold waiting as
before, its endpoint not held for again for a while."""

from __future__ import annotations

import threading

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import open_store

PROGRAM = """\
(defpackage quick
  (defendpoint tick! [n : int?] : int? "Answered by a connector.")
  (defn main [] (+ (tick! 1) (tick! 2) (tick! 3))))
"""
SOURCES = {"quick.flow": PROGRAM}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


def start(store) -> str:
    return store.create_run("quick/main", [], store.put_sources(SOURCES), code_hash(SOURCES))


class QuickConnector(threading.Thread):
    """Answers `quick/tick!` from a store of its own, as another process would: n * 10. It
    notes the run's status and step row when it claims, to show what was committed then."""

    def __init__(self, location: str, run_id: str) -> None:
        super().__init__(daemon=True)
        self.location, self.run_id = location, run_id
        self.stop = threading.Event()
        self.seen: list[tuple] = []

    def run(self) -> None:
        store = open_store(self.location)
        try:
            while not self.stop.is_set():
                for step in store.claim_steps(["quick/tick!"], "quick", 30, runs=[self.run_id]):
                    self.seen.append((store.get_run(self.run_id).status, step["step"], step["args"]))
                    assert store.complete_claimed_step(self.run_id, step["step"], "quick",
                                                       str(step["args"]["n"] * 10))
                self.stop.wait(0.001)
        finally:
            store.close()


def test_a_quick_answer_is_given_to_the_run_it_holds_without_letting_it_go(location):
    store = open_store(location)
    run_id = start(store)
    connector = QuickConnector(location, run_id)
    connector.start()
    try:
        executor = Executor(store, worker="holder", hold=5.0)  # long enough for a loaded machine
        progress = executor.run_once(run_id)
    finally:
        connector.stop.set()
        connector.join()
    assert progress.status == "completed"
    run = store.get_run(run_id)
    assert (run.status, run.result, run.epoch) == ("completed", "60", 1)  # claimed once: never released
    # Each request was committed, the run held ("running"), before the connector could take it.
    assert [(status, step) for status, step, _ in connector.seen] == [("running", 1), ("running", 2),
                                                                       ("running", 3)]
    kinds = [(e.kind, e.step) for e in store.events(run_id) if e.kind.startswith("step-")]
    assert kinds == [("step-requested", 1), ("step-completed", 1), ("step-requested", 2), ("step-completed", 2),
                     ("step-requested", 3), ("step-completed", 3)]
    assert [store.step(run_id, n)["status"] for n in (1, 2, 3)] == ["applied"] * 3
    store.close()


def test_a_run_whose_answer_does_not_come_within_the_hold_waits_and_its_endpoint_is_not_held_for_again(location):
    store = open_store(location)
    first, second = start(store), start(store)
    executor = Executor(store, worker="holder", hold=0.01)
    assert executor.run_once(first).status == "waiting"
    run = store.get_run(first)
    assert (run.status, run.owner, run.wake_at) == ("waiting", None, None)
    assert store.step(first, 1)["status"] == "pending"
    assert "quick/tick!" in executor.slow
    looks = []
    finished = store.finished_steps
    store.finished_steps = lambda run_id, steps=None: looks.append(run_id) or finished(run_id, steps)
    assert executor.run_once(second).status == "waiting"
    assert looks == [second]  # the scheduler's one look; a hold would look again
    # Answered later, the first run goes on as any waiting run does.
    assert store.complete_step(first, 1, "10")
    assert executor.run_once(first).status == "waiting"
    assert store.get_run(first).epoch == 2
    store.close()


def test_a_cancel_asked_for_while_the_run_is_held_ends_it(location):
    store = open_store(location)
    run_id = start(store)
    looks = store.finished_steps

    def cancel_while_held(run_id, steps=None):  # asked for from another process while the run is held
        if store.get_run(run_id).status == "running" and store.step(run_id, 1) is not None:
            assert store.request_cancel(run_id) == "cancelling"
        return looks(run_id, steps)
    store.finished_steps = cancel_while_held
    assert Executor(store, worker="holder", hold=0.01).run_once(run_id).status == "cancelled"
    run = store.get_run(run_id)
    assert (run.status, run.owner) == ("cancelled", None)
    assert store.step(run_id, 1)["status"] == "cancelled"
    store.close()
