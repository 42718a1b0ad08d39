"""A run with tasks stored in parts (`Machine.snapshot_parts`, docs/architecture.md) on a real store.

A resume reads and writes what it touches: the other tasks' rows are not written
again (a trigger on the store's connection records every row written). Shared
environments keep their identity across parts, a `let` bound after a resume is
written, a state stored as one blob before parts existed still resumes, and the
rows of ended tasks and unreachable environments do not pile up. On both stores: an SQLite
file and a PostgreSQL database (`postgres_url`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flowmetal.runtime import machine as machine_module
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.machine import Machine
from flowmetal.runtime.program import code_hash, load
from flowmetal.runtime.replay import replay
from flowmetal.runtime.store import SQLiteStore, Store, open_store
from flowmetal.runtime.values import Env

import pytest

FINAL = ("completed", "failed", "cancelled")


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    """The store: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")

MANY = """\
(defpackage many
  (require [flowmetal.task :refer [spawn!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+ +days+]])
  (defn main [n : int?]
    (map (fn [i] (spawn! (fn [] (sleep! (duration 1 +days+)) i))) (range n))
    (sleep! (duration 50 +milliseconds+))
    (sleep! (duration 1 +days+))))
"""


def start(store: Store, sources: dict[str, str], entry: str, args: list[str] = ()) -> str:
    return store.create_run(entry, list(args), store.put_sources(sources), code_hash(sources))


def drive(location: str, run_id: str, deadline: float = 30.0):
    """Advance the run until it ends, each time on a new store connection and executor (a new process's)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        store = open_store(location)
        Executor(store).run_once(run_id)
        run = store.get_run(run_id)
        store.close()
        if run.status in FINAL:
            return run
        if run.wake_at is not None:
            time.sleep(max(0.0, min(run.wake_at - time.time(), 0.05)))
    raise AssertionError(f"run {run_id} did not end in {deadline} s")


def part_keys(store: Store, run_id: str, prefix: str) -> set[str]:
    return {r[0] for r in store._all("SELECT key FROM snapshot_parts WHERE run_id=? AND key LIKE ?",
                                     (run_id, prefix + "%"))}


def note_writes(store: Store) -> None:
    """Have every row written to `snapshot_parts` from now on noted in a table `written`."""
    if isinstance(store, SQLiteStore):  # on the store's connection, which the executor uses too
        store.conn.execute("CREATE TEMP TABLE written(key TEXT)")
        for when in ("INSERT", "UPDATE"):
            store.conn.execute(f"CREATE TEMP TRIGGER note_{when} AFTER {when} ON snapshot_parts "
                               f"BEGIN INSERT INTO written VALUES(new.key); END")
        return
    with store.transaction() as conn:  # the test's own database: every connection's writes
        conn.execute("CREATE TABLE written(key TEXT)")
        conn.execute("CREATE FUNCTION note_written() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN INSERT INTO written VALUES(NEW.key); RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER note_written AFTER INSERT OR UPDATE ON snapshot_parts FOR EACH ROW "
                     "EXECUTE FUNCTION note_written()")


def test_a_resume_writes_only_the_parts_it_touched(location: str):
    store = open_store(location)
    run_id = start(store, {"many.flow": MANY}, "many/main", ["200"])
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).status == "waiting"
    assert len(part_keys(store, run_id, "t")) == 200  # the entry's, and all but the one in the head
    note_writes(store)
    time.sleep(max(0.0, store.get_run(run_id).wake_at - time.time()) + 0.01)
    Executor(store).run_once(run_id)  # the entry's short timer: it sleeps again, the tasks still wait
    run = store.get_run(run_id)
    assert run.status == "waiting" and run.wake_at > time.time() + 3600
    written = [r[0] for r in store._all("SELECT key FROM written")]
    # The task that was in the head moves to a part; the entry's wait is new: nothing else.
    assert [k for k in written if k.startswith("t")] == ["t200"], written
    assert len(written) <= 6, written
    assert len(part_keys(store, run_id, "t")) == 200
    assert store.snapshot(run_id)["machine"]["tasks"]["task"] == 0
    # The state replay reaches is the one stored in parts (read whole to compare).
    assert replay(store, run_id, verify=True).divergence is None


SHARED = """\
(defpackage shared
  (require [flowmetal.task :refer [spawn! await!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+ +days+]])
  (defn main []
    (let [captured {:n 1}
          f (fn [] (sleep! (duration 1 +days+)) (get captured :n))
          a (spawn! f)
          b (spawn! f)]
      (sleep! (duration 1 +days+))
      (+ (await! a) (await! b)))))
"""


def test_environments_shared_by_tasks_keep_their_identity_when_read_from_parts(location: str):
    store = open_store(location)
    sources = {"shared.flow": SHARED}
    run_id = start(store, sources, "shared/main")
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).status == "waiting"
    fresh = open_store(location)  # another process's view of the store
    program = load(sources)
    machine = Machine.restore(program, fresh.snapshot(run_id)["machine"],
                              lambda keys: fresh.snapshot_parts(run_id, keys))
    scopes = []
    for tid in (2, 0, 1):  # the one in the head, then each read from its own part, on demand
        machine.switch_to(tid)
        scopes.append(captured_scope(machine))
    assert scopes[0] is not None and scopes[0] is scopes[1] is scopes[2]
    fresh.close()


def captured_scope(machine: Machine):
    """The scope holding `captured` that the current task's frames reach."""
    envs = [machine.env, machine.call_env, *(v for f in machine.stack for v in f[1:] if isinstance(v, Env))]
    for env in envs:
        while env is not None:
            if "captured" in env.vars:
                return env
            env = env.parent
    return None


LET = """\
(defpackage later
  (require [flowmetal.task :refer [spawn! await!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+]])
  (defn main []
    (let [a 1
          t (spawn! (fn [] (sleep! (duration 40 +milliseconds+)) a))
          w (sleep! (duration 10 +milliseconds+))
          b (+ a 10)
          u (spawn! (fn [] (sleep! (duration 10 +milliseconds+)) (+ a b)))]
      (+ (await! t) (await! u)))))
"""


def test_a_let_bound_after_a_resume_is_seen_by_the_tasks_that_capture_it(location: str):
    store = open_store(location)
    run_id = start(store, {"later.flow": LET}, "later/main")
    run = drive(location, run_id)
    assert (run.status, run.result) == ("completed", "13"), run.error
    assert replay(store, run_id, verify=True).divergence is None


def old_form(store: Store, program, run_id: str) -> None:
    """Rewrite the run's stored state as the code before parts wrote it: one blob, every task
    and every environment in it, all the waits in `waits`, and no parts."""
    head = store.snapshot(run_id)
    machine = Machine.restore(program, head["machine"], lambda keys: store.snapshot_parts(run_id, keys))
    blob = machine.snapshot(full=True)
    assert "envs" in blob and "others" in blob["tasks"]
    waits = dict(head["waits"])
    for r in store._all("SELECT key, state FROM snapshot_parts WHERE run_id=? AND key LIKE 'w%'", (run_id,)):
        waits[r["key"][1:]] = json.loads(r["state"])
    state = {"machine": blob, "waiting": head["waiting"], "timeouts": [t[:2] for t in head["timeouts"]],
             "waits": waits, "lines": {}}
    with store.transaction() as conn:
        conn.execute("UPDATE snapshots SET state=? WHERE run_id=?", (json.dumps(state), run_id))
        conn.execute("DELETE FROM snapshot_parts WHERE run_id=?", (run_id,))


OLD = """\
(defpackage old
  (require [flowmetal.task :refer [spawn! await-all!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+]])
  (defn main []
    (let [base 100]
      (reduce + 0 (await-all! (map (fn [i] (spawn! (fn [] (sleep! (duration (* 20 i) +milliseconds+)) (+ base i))))
                                   (range 5)))))))
"""


def test_a_run_waiting_in_a_one_blob_snapshot_resumes(location: str):
    store = open_store(location)
    sources = {"old.flow": OLD}
    run_id = start(store, sources, "old/main")
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).status == "waiting"
    old_form(store, load(sources), run_id)
    assert "envs" in store.snapshot(run_id)["machine"] and not part_keys(store, run_id, "")
    store.close()
    store = open_store(location)
    Executor(store).run_once(run_id)  # the first resume writes it in parts
    if store.get_run(run_id).status == "waiting":
        assert "envs" not in store.snapshot(run_id)["machine"] and part_keys(store, run_id, "t")
    run = drive(location, run_id)
    assert (run.status, run.result) == ("completed", "510"), run.error
    assert replay(store, run_id, verify=True).divergence is None


ENDING = """\
(defpackage ending
  (require [flowmetal.task :refer [spawn! await!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+ +days+]])
  (defn round [i : int?]
    (await! (spawn! (fn [] (let [twice (* 2 i)]
                             (sleep! (duration 1 +milliseconds+))
                             twice)))))
  (defn main [n : int?]
    (let [done (map round (range n))]
      (sleep! (duration 1 +days+))
      (count done))))
"""


def test_the_rows_of_ended_tasks_and_of_scopes_nobody_sees_do_not_pile_up(location: str, monkeypatch):
    monkeypatch.setattr(machine_module, "COMPACT_SLACK", 8)
    store = open_store(location)
    run_id = start(store, {"ending.flow": ENDING}, "ending/main", ["40"])
    written = 0
    end = time.monotonic() + 30
    while time.monotonic() < end:
        Executor(store).run_once(run_id)
        written = max(written, int(store.snapshot(run_id)["machine"]["tasks"]["parts"]["next"]))
        run = store.get_run(run_id)
        if run.wake_at > time.time() + 3600:
            break
        time.sleep(max(0.0, min(run.wake_at - time.time(), 0.05)))
    assert run.status == "waiting"
    # Every task ended: no part is left of them; the entry (in the head) waits on its timer.
    assert not part_keys(store, run_id, "t") and part_keys(store, run_id, "w") == {"w0"}
    envs = part_keys(store, run_id, "e")
    assert written > 80  # the forty tasks' scopes were written, one after the other
    assert len(envs) <= 2 * store.snapshot(run_id)["machine"]["tasks"]["parts"]["compacted"] + 8 + 4
    assert len(envs) < 24, sorted(envs)  # not the forty tasks' scopes: those nobody sees were deleted
