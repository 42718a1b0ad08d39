"""The runtime's own endpoints on a real store: timers, timeouts, callbacks, cancellation,
and resuming from snapshots in another executor (another process would do the same)."""

from __future__ import annotations

import json
import time

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage ep
  (require [flowmetal.time :refer [sleep! make-duration with-timeout! timeout? +milliseconds+ now!]]
           [http.callback :refer [make-callback! get-callback! callback-url]]
           [flowmetal.log :refer [log!]])
  (defn quick [] : (union? [int? timeout?])
    (with-timeout! (make-duration 5000 +milliseconds+) (fn [] 42)))
  (defn slow [] : (union? [str? timeout?])
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (with-timeout! (make-duration 300 +milliseconds+)
        (fn [] (get-callback! cb)))))
  (defn answered [] : (union? [str? timeout?])
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (with-timeout! (make-duration 60000 +milliseconds+)
        (fn [] (get-callback! cb)))))
  (defn posted [] : str?
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (sleep! (make-duration 1 +milliseconds+))  ; a wait: the URL is committed, as when it is posted
      (get-callback! cb)))
  (defn twice [] : str?
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (with-timeout! (make-duration 200 +milliseconds+) (fn [] (get-callback! cb)))
      (sleep! (make-duration 300 +milliseconds+))
      (get-callback! cb)))
  (defn nap [] : int?
    (sleep! (make-duration 200 +milliseconds+))
    (let [t (now!)] (if (> t 0) 1 0))))
"""


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(tmp_path / "store.db")


def start(store: SQLiteStore, entry: str) -> str:
    sources = {"ep.flow": PROGRAM}
    return store.create_run(entry, [], store.put_sources(sources), code_hash(sources))


def drive(store: SQLiteStore, run_id: str, executor: Executor | None = None, until: float = 10.0) -> str:
    executor = executor or Executor(store)
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            return run.status
        time.sleep(0.02)
    return store.get_run(run_id).status


def token_of(store: SQLiteStore, run_id: str) -> str:
    (log,) = [e for e in store.events(run_id) if e.kind == "log"]
    return log.data["message"].rsplit("/", 1)[1]


def test_with_timeout_gives_the_value_when_in_time_and_cancels_its_timer(store):
    run_id = start(store, "ep/quick")
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == "42"
    kinds = [e.kind for e in store.events(run_id)]
    assert "timer-set" in kinds and "timer-cancelled" in kinds and "timer-fired" not in kinds
    assert store.timer(run_id, 1)["status"] == "cancelled"


def test_with_timeout_gives_timeout_and_abandons_the_wait(store):
    run_id = start(store, "ep/slow")
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).status == "waiting"
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == "+timeout+"
    # The abandoned get-callback! step is cancelled; a late delivery changes nothing in the run.
    waits = store.conn.execute("SELECT status FROM steps WHERE run_id=? AND endpoint='http.callback/get-callback!'",
                               (run_id,)).fetchall()
    assert [w["status"] for w in waits] == ["cancelled"]
    # The run has ended: a late delivery is refused as unused and changes nothing.
    assert store.deliver_callback(token_of(store, run_id), "late") == "gone"
    assert store.get_run(run_id).result == "+timeout+"
    assert store.callback(token_of(store, run_id))["delivered"] is None


def test_a_body_delivered_between_the_executors_look_and_its_commit_still_wakes_the_run(tmp_path):
    # The executor looks the callback up, finds no body, and records its wait; a delivery from
    # another process lands exactly in between. Delivery and wait must still meet.
    store = SQLiteStore(tmp_path / "store.db")
    other = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, "ep/posted")
    executor = Executor(store)
    executor.run_once(run_id)
    assert store.get_run(run_id).status == "waiting"  # the nap; the callback's URL is out
    time.sleep(0.01)
    looked = []

    def look_then_deliver(token):
        row = SQLiteStore.callback(store, token)
        assert row["delivered"] is None
        looked.append(other.deliver_callback(token, "in between"))
        return row
    store.callback = look_then_deliver
    executor.run_once(run_id)
    assert looked == ["kept"]  # nothing waited yet when it came
    run = store.get_run(run_id)
    assert run.status == "waiting" and run.wake_at is not None  # woken, not waiting forever
    del store.callback
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == json.dumps("in between")


def test_a_body_delivered_after_a_wait_timed_out_is_kept_for_the_next_wait(store):
    run_id = start(store, "ep/twice")
    Executor(store).run_once(run_id)
    token = token_of(store, run_id)
    deadline = time.monotonic() + 10
    while not [e for e in store.events(run_id) if e.kind == "timer-fired"]:  # the first wait timed out
        Executor(store).run_once(run_id)
        time.sleep(0.02)
        assert time.monotonic() < deadline
    assert store.deliver_callback(token, "second time lucky") == "kept"
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == json.dumps("second time lucky")


def test_a_delivery_to_a_cancelled_run_is_refused_and_recorded_nowhere(store):
    run_id = start(store, "ep/answered")
    Executor(store).run_once(run_id)
    token = token_of(store, run_id)
    assert store.request_cancel(run_id) == "cancelled"
    assert store.deliver_callback(token, "too late") == "gone"
    assert store.callback(token)["delivered"] is None


def test_a_callback_completes_the_wait_once_and_a_second_delivery_is_refused(store):
    run_id = start(store, "ep/answered")
    Executor(store).run_once(run_id)
    token = token_of(store, run_id)
    assert len(token) >= 22  # at least 128 random bits
    assert store.deliver_callback(token, '{"ok": true}') == "delivered"
    assert store.deliver_callback(token, "again") == "duplicate"
    assert store.deliver_callback("no-such-token", "x") == "unknown"
    # Another executor (as another process would) resumes the run from its snapshot.
    assert drive(store, run_id, Executor(store, worker="elsewhere")) == "completed"
    assert store.get_run(run_id).result == json.dumps('{"ok": true}')


def test_timers_are_durable_and_fire_for_whoever_claims_the_run(store):
    run_id = start(store, "ep/nap")
    Executor(store, worker="first").run_once(run_id)
    run = store.get_run(run_id)
    assert run.status == "waiting" and run.wake_at > time.time()
    assert Executor(store, worker="early").run_once(run_id) is None  # not due yet: nothing to claim
    time.sleep(0.25)
    assert drive(store, run_id, Executor(store, worker="later")) == "completed"
    kinds = [e.kind for e in store.events(run_id)]
    assert kinds.count("timer-set") == 1 and kinds.count("timer-fired") == 1
    assert store.get_run(run_id).result == "1"


def test_cancelling_a_waiting_run_cancels_its_steps_and_timers(store):
    run_id = start(store, "ep/answered")
    Executor(store).run_once(run_id)
    assert store.request_cancel(run_id) == "cancelled"
    assert store.get_run(run_id).status == "cancelled"
    statuses = {r["status"] for r in store.conn.execute("SELECT status FROM steps WHERE run_id=?", (run_id,))}
    assert statuses == {"cancelled"}
    assert store.request_cancel(run_id) == "cancelled"  # again: nothing changes
    assert Executor(store).run_once(run_id) is None


LONG = """\
(defpackage long
  (require [flowmetal.time :refer [now!]])
  (defn loop [n : int? acc : int?] : int?
    (if (= n 0) acc (loop (- n 1) (+ acc (if (> (now!) 0) 1 0)))))
  (defn main [] : int? (loop 300 0)))
"""


class _Died(BaseException):
    """The process dying: no error of the run (an `Exception` from the driver fails the run)."""


def test_a_worker_dying_after_a_checkpoint_resumes_from_it_not_from_the_start(tmp_path, monkeypatch):
    from flowmetal.runtime import executor as ex
    monkeypatch.setattr(ex, "COMMIT_EVERY", 50)
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    sources = {"long.flow": LONG}
    run_id = store.create_run("long/main", [], store.put_sources(sources), code_hash(sources))

    class Dying(SQLiteStore):
        beats = 0

        def heartbeat(self, *args, **kwargs):
            super().heartbeat(*args, **kwargs)
            Dying.beats += 1
            if Dying.beats == 3:  # after the third checkpoint's commit: the process "dies"
                raise _Died()

    with pytest.raises(_Died):
        Executor(Dying(path), worker="doomed", lease=0.2).run_once(run_id)
    committed = [e for e in store.events(run_id) if e.kind == "step-requested"]
    assert len(committed) >= 60  # three checkpoints of work are in the log
    time.sleep(0.3)  # the dead worker's lease runs out
    assert drive(store, run_id, Executor(store, worker="heir", lease=5)) == "completed"
    assert store.get_run(run_id).result == "300"
    events = store.events(run_id)
    requested = [e.step for e in events if e.kind == "step-requested"]
    assert requested == list(range(1, 301))  # none requested twice: the heir went on from the checkpoint
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
