"""Wake-ups by LISTEN/NOTIFY on a real PostgreSQL store (`postgres_url`).

What each transaction that makes work runnable says (channel and payload, read on a
listening connection of the test's own), that nothing is said by one that rolls back, and
real `flowmetal worker` processes polling only every 30 s that still take a run at once
when a signal is sent or a callback delivered, also after their listening connection was
killed (`pg_terminate_backend`). The bounds are a few seconds against a 30 s poll: a
worker that polled would miss them by far, a woken one meets them with room to spare.
SQLite keeps polling: its store listens to nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_kit import PROGRAM  # noqa: E402

from flowmetal.runtime.program import load_new  # noqa: E402
from flowmetal.runtime.store import RUNS_CHANNEL, STEPS_CHANNEL, SQLiteStore, open_store  # noqa: E402
from flowmetal.runtime.values import encode  # noqa: E402
from flowmetal.runtime.wakeups import Wakeup  # noqa: E402

from test_postgres_processes import flowmetal, spawn, wait_until  # noqa: E402

SIGNALLED = """\
(defpackage sig
  (require [flowmetal.signal :refer [receive!]]
           [http.callback :refer [make-callback! get-callback!]])
  (defn named [n : str?] (receive! n))
  (defn hook [] : str? (let [cb (make-callback!)] (str "got " (get-callback! cb)))))
"""

WOKEN = 5.0   # seconds: the bound on a woken worker (polling alone: 30 s)


class Heard:
    """A listening connection of the test's own: every (channel, payload) said, in order."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        for channel in (RUNS_CHANNEL, STEPS_CHANNEL):
            self.conn.execute(f'LISTEN "{channel}"')

    def until(self, wanted: tuple[str, str], timeout: float = 10.0) -> list[tuple[str, str]]:
        """What was said up to `wanted` (included), which must come."""
        got: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for note in self.conn.notifies(timeout=0.2):
                got.append((note.channel, note.payload))
                if got[-1] == wanted:
                    return got
        raise AssertionError(f"{wanted} was not heard; heard {got}")

    def close(self) -> None:
        self.conn.close()


def _program(store, text: str, name: str):
    program = load_new({name: text})
    return store.put_sources(program.stored), program.stored_hash


def test_each_transaction_making_work_runnable_notifies_and_a_rollback_does_not(postgres_url: str):
    store = open_store(postgres_url)
    heard = Heard(postgres_url)
    try:
        sources, code = _program(store, PROGRAM, "shop.flow")
        # A transaction that rolls back says nothing: what it said goes with it.
        with pytest.raises(RuntimeError):
            with store.transaction() as conn:
                store._woke(conn, "rolled-back")
                store._notify(conn, STEPS_CHANNEL, "shop/rolled-back!")
                raise RuntimeError("rolled back")
        run_id = store.create_run("shop/buy", ['"tea"', "2"], sources, code)
        said = heard.until((RUNS_CHANNEL, run_id))
        assert (RUNS_CHANNEL, "rolled-back") not in said and (STEPS_CHANNEL, "shop/rolled-back!") not in said
        # A worker's commit of a step for a connector names the endpoint.
        run = store.claim("w", 30)
        store.commit(run, "w", [("step-requested", 1, {"endpoint": "shop/price!"}, None)], status="waiting",
                     steps=[(1, "shop/price!", json.dumps({}), f"{run_id}:1")], release=True)
        heard.until((STEPS_CHANNEL, "shop/price!"))
        # Its result wakes the run.
        [claimed] = store.claim_steps(["shop/price!"], "c", 30)
        assert store.complete_claimed_step(run_id, claimed["step"], "c", json.dumps(encode(3)))
        heard.until((RUNS_CHANNEL, run_id))
        # A run given back (a stopping worker) is runnable again.
        run = store.claim("w", 30)
        store.commit(run, "w", [], status="pending", wake_at=store.clock(), release=True)
        heard.until((RUNS_CHANNEL, run_id))
        # A step given back by a stopping connector is pending again.
        run = store.claim("w", 30)
        store.commit(run, "w", [("step-requested", 2, {"endpoint": "shop/ping!"}, None)], status="waiting",
                     steps=[(2, "shop/ping!", json.dumps({}), f"{run_id}:2")], release=True)
        heard.until((STEPS_CHANNEL, "shop/ping!"))
        [claimed] = store.claim_steps(["shop/ping!"], "c", 30)
        assert store.release_steps("c", [(run_id, claimed["step"])]) == 1
        heard.until((STEPS_CHANNEL, "shop/ping!"))
        # A signal sent to a run waiting for it.
        sources, code = _program(store, SIGNALLED, "sig.flow")
        waiting = store.create_run("sig/named", ['"go"'], sources, code)
        run = store.claim("w", 30, run_id=waiting)
        store.commit(run, "w", [], status="waiting", release=True,
                     steps=[(1, "flowmetal.signal/receive!", json.dumps({"name": "go"}), f"{waiting}:1")])
        heard.until((RUNS_CHANNEL, waiting))
        assert store.send_signal(waiting, "go", "1").outcome == "queued"
        heard.until((RUNS_CHANNEL, waiting))
    finally:
        heard.close()
        store.close()


def test_a_subscription_is_woken_by_a_commit_and_not_by_a_rollback(postgres_url: str):
    store = open_store(postgres_url)
    woken = threading.Event()
    wakeup = Wakeup(store, runs=True, event=woken)
    try:
        wait_until(lambda: wakeup.listening, "the listener")
        time.sleep(0.2)
        woken.clear()  # the wake-up every (re)connection gives
        with pytest.raises(RuntimeError):
            with store.transaction() as conn:
                store._woke(conn, "rolled-back")
                raise RuntimeError("rolled back")
        # Said after the rollback on another connection: once it is heard, the rollback's would
        # have been heard before it (notifications come in commit order).
        heard = Heard(postgres_url)
        try:
            with store.transaction() as conn:
                store._notify(conn, STEPS_CHANNEL, "shop/ping!")  # a channel this subscription ignores
            heard.until((STEPS_CHANNEL, "shop/ping!"))
        finally:
            heard.close()
        time.sleep(0.3)  # the listener's thread had the same time to hear it
        assert not woken.is_set()
        sources, code = _program(store, PROGRAM, "shop.flow")
        store.create_run("shop/nap", ["1"], sources, code)
        assert woken.wait(WOKEN)
    finally:
        wakeup.close()
        store.close()


def _listeners(url: str) -> list[int]:
    """The server processes of Flowmetal's listening connections to the store's database."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name='flowmetal-listener' AND "
            "datname=current_database()").fetchall()]


def _idle_worker(tmp_path: Path, url: str) -> subprocess.Popen:
    """A worker that polls only every 30 s, once its listening connection is up."""
    worker = spawn("worker", "--poll", "30", "--no-connectors", "--store", url, cwd=tmp_path)
    wait_until(lambda: _listeners(url), "the worker's listening connection", timeout=30)
    return worker


def _waiting(store, run_id: str) -> bool:
    run = store.get_run(run_id)
    return run.status == "waiting" and store.open_steps_of(run_id)


def _stopped(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        worker.terminate()
    _, err = worker.communicate(timeout=30)
    return err


def test_an_idle_worker_polling_every_30_s_takes_a_run_at_once_when_a_signal_is_sent(tmp_path: Path,
                                                                                     postgres_url: str):
    (tmp_path / "sig.flow").write_text(SIGNALLED)
    store = open_store(postgres_url)
    worker = _idle_worker(tmp_path, postgres_url)
    try:
        made = flowmetal("run", "sig.flow", "named", '"go"', "--detach", "--store", postgres_url, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        run_id = made.stdout.strip()
        wait_until(lambda: _waiting(store, run_id), "the new run to be taken and wait", timeout=WOKEN)
        sent = flowmetal("signal", run_id, "go", '{"ok": true}', "--store", postgres_url, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: store.get_run(run_id).status == "completed", "the signalled run to end", timeout=WOKEN)
        assert store.get_run(run_id).result == '{"ok" true}'
    finally:
        err = _stopped(worker)
        store.close()
    assert worker.returncode == 0, err


def test_an_idle_worker_takes_a_run_woken_by_a_callback_after_its_listening_connection_was_killed(
        tmp_path: Path, postgres_url: str):
    store = open_store(postgres_url)
    worker = _idle_worker(tmp_path, postgres_url)
    try:
        sources, code = _program(store, SIGNALLED, "sig.flow")
        run_id = store.create_run("sig/hook", [], sources, code)
        wait_until(lambda: _waiting(store, run_id), "the new run to be taken and wait", timeout=WOKEN)
        [before] = _listeners(postgres_url)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (before,)).fetchone()[0]
        wait_until(lambda: [pid for pid in _listeners(postgres_url) if pid != before], "the listener to reconnect",
                   timeout=30)
        token = store._one("SELECT token FROM callbacks WHERE run_id=?", (run_id,))["token"]
        assert store.deliver_callback(token, "yes") == "delivered"
        wait_until(lambda: store.get_run(run_id).status == "completed", "the woken run to end", timeout=WOKEN)
        assert store.get_run(run_id).result == '"got yes"'
    finally:
        err = _stopped(worker)
        store.close()
    assert worker.returncode == 0, err


CONNECTORS = Path(__file__).resolve().parents[1] / "connectors"


def test_an_idle_connector_polling_every_30_s_performs_a_new_step_at_once(tmp_path: Path, postgres_url: str):
    (tmp_path / "billing.flow").write_text((CONNECTORS / "billing.flow").read_text())
    store = open_store(postgres_url)
    worker = _idle_worker(tmp_path, postgres_url)
    connector = spawn("connector", str(CONNECTORS / "billing_endpoints.py"), "--poll", "30", "--store", postgres_url,
                      cwd=tmp_path)
    try:
        wait_until(lambda: len(_listeners(postgres_url)) == 2, "the connector's listening connection", timeout=30)
        made = flowmetal("run", "billing.flow", "pay", "5", "--detach", "--store", postgres_url, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        run_id = made.stdout.strip()
        # Two steps, each performed by the connector and resumed by the worker, each woken in turn.
        wait_until(lambda: store.get_run(run_id).status == "completed", "the run to end", timeout=2 * WOKEN)
        assert store.get_run(run_id).result == "13"
    finally:
        connector.terminate()
        connector.communicate(timeout=30)
        err = _stopped(worker)
        store.close()
    assert worker.returncode == 0, err


def test_an_sqlite_store_listens_to_nothing_and_its_loops_poll(tmp_path: Path):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        assert store.listen(threading.Event(), runs=True) is None
        wakeup = Wakeup(store, runs=True)
        assert not wakeup.listening and wakeup.interval(0.2) == 0.2
        stop = threading.Event()
        stop.set()
        assert wakeup.sleep(30, stop) is False  # an SQLite loop's sleep is its stop's wait, as before
    finally:
        store.close()

