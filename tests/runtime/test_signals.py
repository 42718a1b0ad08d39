"""Signals on a real store: `(receive! name)` against signals sent before and during its wait,
under `with-timeout!`, in races with the executor's commit, across kill -9 of real worker
processes, through `flowmetal signal` and `replay --verify`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

from procs import flowmetal

PROGRAM = """\
(defpackage sig
  (require [flowmetal.signal :refer [receive!]]
           [flowmetal.time :refer [with-timeout! make-duration +milliseconds+]])
  (defn two [] [(receive! "a") (receive! "b") (receive! "a")])
  (defn timed [] [(with-timeout! (make-duration 100 +milliseconds+) (fn [] (receive! "x")))
                  (receive! "x")])
  (defn patient [] (with-timeout! (make-duration 60000 +milliseconds+) (fn [] (receive! "x"))))
  (defn named [n : str?] (receive! n)))
"""


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(tmp_path / "store.db")


def start(store: SQLiteStore, entry: str, args: list[str] = (), program: str = PROGRAM) -> str:
    sources = {"sig.flow": program}
    return store.create_run(entry, list(args), store.put_sources(sources), code_hash(sources))


def drive(store: SQLiteStore, run_id: str, until: float = 10.0) -> str:
    executor = Executor(store)
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            return run.status
        time.sleep(0.02)
    return store.get_run(run_id).status


def received(store: SQLiteStore, run_id: str) -> list[tuple]:
    return [(e.step, e.data["name"], e.data["body"], e.data["signal"]) for e in store.events(run_id)
            if e.kind == "signal-received"]


def test_signals_sent_before_the_wait_are_kept_in_order_and_one_sent_during_it_wakes_the_run(store):
    run_id = start(store, "sig/two")
    assert store.send_signal(run_id, "a", '{"n": 1}').seq == 1
    assert store.send_signal(run_id, "a", "[2]").seq == 2
    Executor(store).run_once(run_id)
    run = store.get_run(run_id)
    assert run.status == "waiting" and run.wake_at is None  # waiting for "b", with nothing due
    assert store.send_signal(run_id, "b", '"bee"').outcome == "queued"
    assert store.get_run(run_id).wake_at is not None  # woken
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == '[{"n" 1} "bee" [2]]'
    # Each signal by name in arrival order, on the step that took it, then that step's result.
    assert received(store, run_id) == [(1, "a", {"n": 1}, 1), (2, "b", "bee", 3), (3, "a", [2], 2)]
    kinds = [e.kind for e in store.events(run_id) if e.step == 2]
    assert kinds == ["step-requested", "signal-received", "step-completed"]
    assert [(s["seq"], s["step"]) for s in store.signals(run_id)] == [(1, 1), (2, 3), (3, 2)]


def test_a_receive_that_times_out_takes_nothing_and_the_next_receive_gets_the_later_signal(store):
    run_id = start(store, "sig/timed")
    Executor(store).run_once(run_id)
    deadline = time.monotonic() + 10
    while not any(e.kind == "timer-fired" for e in store.events(run_id)):
        Executor(store).run_once(run_id)
        time.sleep(0.02)
        assert time.monotonic() < deadline
    assert store.get_run(run_id).status == "waiting"  # now in the second receive
    assert store.send_signal(run_id, "x", "7").outcome == "queued"
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == "[+timeout+ 7]"
    assert received(store, run_id) == [(3, "x", 7, 1)]
    statuses = dict(store.conn.execute("SELECT step, status FROM steps WHERE run_id=?", (run_id,)).fetchall())
    assert statuses[2] == "cancelled" and statuses[3] == "applied"


def test_a_signal_sent_between_the_executors_look_and_its_commit_still_wakes_the_run(tmp_path):
    store, other = SQLiteStore(tmp_path / "store.db"), SQLiteStore(tmp_path / "store.db")
    run_id = start(store, "sig/named", ['"go"'])
    sent = []

    looks = []

    def look_then_send(run, name, skip=()):
        row = SQLiteStore.next_signal(store, run, name, skip)
        looks.append(row)
        if len(looks) == 2:  # the executor's last look before it commits the wait (`wake`)
            assert row is None
            sent.append(other.send_signal(run, name, '"in between"').outcome)
        return row
    store.next_signal = look_then_send
    Executor(store).run_once(run_id)
    del store.next_signal
    assert sent == ["queued"]  # the run was running: nothing waited for it in the store yet
    run = store.get_run(run_id)
    assert run.status == "waiting" and run.wake_at is not None  # the commit saw it: woken
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == '"in between"'


def test_a_signal_sent_while_its_wait_times_out_is_kept_for_the_next_receive(tmp_path):
    # The executor finds no signal and times the wait out; the signal lands before it commits.
    store, other = SQLiteStore(tmp_path / "store.db"), SQLiteStore(tmp_path / "store.db")
    run_id = start(store, "sig/timed")
    Executor(store).run_once(run_id)
    time.sleep(0.15)  # the timeout is due
    sent = []

    def look_then_send(run, name, skip=()):
        row = SQLiteStore.next_signal(store, run, name, skip)
        if not sent:
            sent.append(other.send_signal(run, name, "8").outcome)
        return row
    store.next_signal = look_then_send
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == "[+timeout+ 8]"
    assert sent == ["queued"]
    assert received(store, run_id) == [(3, "x", 8, 1)]


def test_a_signal_queued_when_the_timeout_is_due_wins(store):
    run_id = start(store, "sig/patient")
    Executor(store).run_once(run_id)
    store.send_signal(run_id, "x", "1")
    store.conn.execute("UPDATE runs SET wake_at=0 WHERE id=?", (run_id,))
    snapshot = store.snapshot(run_id)
    snapshot["timeouts"][0][1] = 0  # the timeout fell due too
    store.conn.execute("UPDATE snapshots SET state=? WHERE run_id=?", (json.dumps(snapshot), run_id))
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == "1"


def test_a_commit_that_never_happens_leaves_the_signal_queued_for_the_next_worker(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = start(store, "sig/two")
    Executor(store, lease=0.2).run_once(run_id)
    store.send_signal(run_id, "a", "1")
    store.send_signal(run_id, "b", "2")
    store.send_signal(run_id, "a", "3")
    dying = SQLiteStore(tmp_path / "store.db")

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # the process ends here: nothing of this advance is committed
    dying.commit = die
    with pytest.raises(KeyboardInterrupt):
        Executor(dying, lease=0.2).run_once(run_id)
    assert [s["step"] for s in store.signals(run_id)] == [None, None, None]
    time.sleep(0.25)  # the lease lapses
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == "[1 2 3]"
    assert received(store, run_id) == [(1, "a", 1, 1), (2, "b", 2, 2), (3, "a", 3, 3)]


def test_sending_with_a_key_twice_queues_once_and_a_key_for_another_signal_is_refused(store):
    run_id = start(store, "sig/two")
    first = store.send_signal(run_id, "a", '{"x": 1, "y": [1.0, true]}', key="k1")
    again = store.send_signal(run_id, "a", '{"y": [1.0, true], "x": 1}', key="k1")  # the same value
    assert (first.outcome, again.outcome, again.seq) == ("queued", "duplicate", first.seq)
    assert store.send_signal(run_id, "a", '{"x": 1, "y": [1, true]}', key="k1").outcome == "conflict"
    assert store.send_signal(run_id, "b", '{"x": 1, "y": [1.0, true]}', key="k1").outcome == "conflict"
    assert store.send_signal(run_id, "a", "1", key="k2").seq == 2
    assert len(store.signals(run_id)) == 2
    assert store.send_signal("no-such-run", "a", "1").outcome == "unknown"
    store.request_cancel(run_id)
    ended = store.send_signal(run_id, "a", "1")
    assert (ended.outcome, ended.status) == ("ended", "cancelled")
    assert store.send_signal(run_id, "a", "1", key="k2").outcome == "duplicate"  # a retry still answers
    assert len(store.signals(run_id)) == 2


def test_a_name_no_signal_can_have_fails_the_run_with_a_clear_fault(store):
    run_id = start(store, "sig/named", ['"two words"'])
    assert drive(store, run_id) == "failed"
    error = store.get_run(run_id).error
    assert 'no signal can be sent by the name "two words" is not a signal name' in error
    assert "in sig/named" in error


# -- real processes ------------------------------------------------------------------------------------

CLI_PROGRAM = """\
(defpackage approve
  (require [flowmetal.signal :refer [receive!]])
  (defn main [] [(receive! "approve") (receive! "approve")]))
"""


def test_the_signal_command_wakes_a_run_a_worker_drives(tmp_path):
    (tmp_path / "approve.flow").write_text(CLI_PROGRAM)
    store_path = str(tmp_path / "store.db")
    started = flowmetal("run", "approve.flow", "approve/main", "--detach", "--store", store_path, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    # Before any worker: kept in order.
    first = flowmetal("signal", run_id[:6], "approve", '{"by": "ann"}', "--store", store_path, cwd=tmp_path)
    assert (first.returncode, first.stdout) == (0, f"{run_id} signal #1 approve queued\n"), first.stderr
    worker = subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--store", store_path, "--poll", "0.05"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        store = SQLiteStore(store_path)
        deadline = time.monotonic() + 30
        while not (store.get_run(run_id).status == "waiting" and received(store, run_id)):
            assert time.monotonic() < deadline, store.get_run(run_id)
            time.sleep(0.05)
        keyed = ["signal", run_id, "approve", '"bob"', "--key", "retry-1", "--store", store_path]
        second = flowmetal(*keyed, cwd=tmp_path)
        assert (second.returncode, second.stdout) == (0, f"{run_id} signal #2 approve queued\n"), second.stderr
        while store.get_run(run_id).status != "completed":
            assert time.monotonic() < deadline, store.get_run(run_id)
            time.sleep(0.05)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert store.get_run(run_id).result == '[{"by" "ann"} "bob"]'
    # Sent again with its key: nothing is queued again, and the run has ended anyway.
    again = flowmetal(*keyed, cwd=tmp_path)
    assert again.returncode == 0 and "already" in again.stdout
    # The run has ended: no signal can reach it.
    ended = flowmetal("signal", run_id, "approve", "1", "--store", store_path, cwd=tmp_path)
    assert ended.returncode == 1 and f"run `{run_id}` has ended (completed)" in ended.stderr
    assert len(store.signals(run_id)) == 2
    unknown = flowmetal("signal", "nosuchrun", "approve", "1", "--store", store_path, cwd=tmp_path)
    assert unknown.returncode == 1 and "no run `nosuchrun`" in unknown.stderr
    bad = flowmetal("signal", run_id, "approve", "{nope", "--store", store_path, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == ("flowmetal signal: error: the body is not JSON: Expecting property name enclosed in "
                          "double quotes: line 1 column 2 (char 1)\n")
    name = flowmetal("signal", run_id, "a/b", "1", "--store", store_path, cwd=tmp_path)
    assert name.returncode == 2 and '"a/b" is not a signal name' in name.stderr
    conflict = flowmetal("signal", run_id, "approve", '"eve"', "--key", "retry-1", "--store", store_path,
                         cwd=tmp_path)
    assert conflict.returncode == 1 and "was used for another signal" in conflict.stderr
    # The log shows the signals, and replay reproduces the run from it.
    trace = flowmetal("trace", run_id, "--store", store_path, cwd=tmp_path)
    assert 'signal-received name=approve body={"by": "ann"} signal=1' in trace.stdout
    verify = flowmetal("replay", run_id, "--verify", "--store", store_path, cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
    assert "replay reproduces the run (2 steps)" in verify.stderr


CRASH_PROGRAM = """\
(defpackage sig.crash
  (require [flowmetal.signal :refer [receive!]]
           [flowmetal.log :refer [log!]])
  (defn spin [n : int? acc : int?] : int? (if (= n 0) acc (spin (- n 1) (+ acc 1))))
  (defn take [i total]
    (if (= i 0)
      total
      (let [b (receive! "n")]
        (log! (str "got " b " " (spin 50000 0)))
        (take (- i 1) (+ total (if (int? b) b 0))))))
  (defn main [k : int?] (take k 0)))
"""
RUNS, SIGNALS = 6, 8


def test_kill_9_while_signals_arrive_loses_none_and_delivers_none_twice(tmp_path):
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    runs = [start(store, "sig.crash/main", [str(SIGNALS)], CRASH_PROGRAM) for _ in range(RUNS)]
    bodies = {run_id: [(i + 1) * (r + 2) for i in range(SIGNALS)] for r, run_id in enumerate(runs)}
    to_send = [(run_id, body) for i in range(SIGNALS) for run_id in runs for body in [bodies[run_id][i]]]
    rng = random.Random(20260515)

    def worker() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--store", str(path), "--lease", "0.5",
                                 "--poll", "0.01"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)

    def sender(batch: list[tuple[str, int]]) -> None:
        other, pace = SQLiteStore(path), random.Random(len(to_send))
        for run_id, body in batch:
            assert other.send_signal(run_id, "n", json.dumps(body)).outcome == "queued"
            time.sleep(pace.uniform(0, 0.05))
        other.close()

    kills = caught = 0
    while to_send:
        batch, to_send = to_send[:8], to_send[8:]
        proc = worker()
        thread = threading.Thread(target=sender, args=(batch,))
        thread.start()
        # Killed a moment after it took a run in hand (it needs about 0.4 s to start).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(store.get_run(r).status == "running" for r in runs):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.08))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        caught += any(store.get_run(r).status == "running" for r in runs)  # killed with a run in hand
        thread.join()
    proc = worker()
    try:
        deadline = time.monotonic() + 60
        while {store.get_run(r).status for r in runs} != {"completed"}:
            assert time.monotonic() < deadline, [store.get_run(r).status for r in runs]
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert kills >= 5 and caught >= 1, (kills, caught)
    for run_id in runs:
        assert store.get_run(run_id).result == str(sum(bodies[run_id]))
        events = store.events(run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        got = received(store, run_id)
        # Each signal received once, in the order sent, each on its own step.
        assert [body for _, _, body, _ in got] == bodies[run_id]
        assert [seq for _, _, _, seq in got] == list(range(1, SIGNALS + 1))
        assert Counter(step for step, *_ in got).most_common(1)[0][1] == 1
        assert [e.data["message"].split()[1] for e in events if e.kind == "log"] == [str(b) for b in bodies[run_id]]
        consumed = [(s["seq"], s["step"]) for s in store.signals(run_id)]
        assert consumed == [(seq, step) for step, _, _, seq in got]
    verify = flowmetal("replay", runs[0], "--verify", "--store", str(path), cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr
