"""Child runs across real processes: `flowmetal worker`s on one store file.

A parent's children are runs of their own, claimed by any worker: one worker starts
them and stops, another runs them to their end and wakes the parent. `flowmetal
cancel` of a waiting parent cancels its children, theirs too, in one transaction. A
worker killed with SIGKILL right after a `start-run!` step (before or after its commit)
leaves exactly one child for the step once another worker has finished the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flowmetal.runtime.store import SQLiteStore, child_id
from tests.runtime.procs import flowmetal
from tests.waits import until

PROGRAM = """\
(defpackage fam
  (require [flowmetal.run :refer [start-run! await-run!]]
           [flowmetal.task :refer [spawn! await-all!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+]])

  (defn job [n : int? ms : int?] : int?
    (sleep! (duration ms +milliseconds+))
    (* n 10))

  (defn spin [i : int? acc : int?] : int?
    (if (= i 0) acc (spin (- i 1) (+ acc 1))))

  (defn main [ms : int?] : (list? int?)
    (await-all! (map (fn [n] (spawn! (fn [] (await-run! (start-run! job n ms))))) (range 3))))

  (defn crashy [n : int?] : int?
    (let [c (start-run! job 7 0)]
      (spin n 0)
      (await-run! c))))
"""


def worker(tmp_path: Path, name: str, lease: float = 30.0) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    with open(tmp_path / f"{name}.log", "ab") as log:  # a pipe nobody reads would stop it
        return subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--no-connectors", "--poll", "0.02",
                                 "--lease", str(lease)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)


def detach(tmp_path: Path, *args: str) -> str:
    (tmp_path / "fam.flow").write_text(PROGRAM)
    done = flowmetal("run", "--detach", "fam.flow", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def store_of(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / ".flowmetal" / "store.db")


def all_waiting(store: SQLiteStore, run_id: str, children: int):
    kids = store.children(run_id)
    return (store.get_run(run_id).status == "waiting" and len(kids) == children
            and all(k.status == "waiting" for k in kids) and kids)


def test_children_started_by_one_worker_are_run_by_another_which_wakes_the_parent(tmp_path):
    parent = detach(tmp_path, "main", "2000")
    store = store_of(tmp_path)
    first = worker(tmp_path, "first")
    try:
        kids = until(lambda: all_waiting(store, parent, 3), "the parent and its three children to wait")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    assert f"run {parent} fam/main: claimed" in (tmp_path / "first.log").read_text()
    # Each child is a run of its own: its id derived from its parent's and the step.
    assert [k.parent for k in kids] == [parent] * 3
    started = [e for e in store.events(parent) if e.kind == "child-started"]
    assert sorted(e.data["child"] for e in started) == sorted(k.id for k in kids)
    assert all(e.data["child"] == child_id(parent, e.step) for e in started)
    assert all(store.events(k.id)[0].data["parent"] == parent for k in kids)
    second = worker(tmp_path, "second")
    try:
        run = until(lambda: (r := store.get_run(parent)).status == "completed" and r, "the parent to complete")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    assert run.result == "[0 10 20]"
    log = (tmp_path / "second.log").read_text()
    assert all(f"run {k.id} fam/job: claimed" in log for k in kids), log
    assert f"run {parent} fam/main: claimed" in log  # woken by its children's ends
    # For programs and people: `parent` on every run, children listed after their parent.
    listed = json.loads(flowmetal("runs", "--format", "json", cwd=tmp_path).stdout)
    assert {r["id"]: r["parent"] for r in listed} == {parent: None, **{k.id: parent for k in kids}}
    lines = [line.split("\t") for line in flowmetal("runs", cwd=tmp_path).stdout.splitlines()]
    assert [(f[0], f[5]) for f in lines] == [(parent, "")] + [(k.id, parent) for k in kids]
    trace = flowmetal("trace", kids[0].id, cwd=tmp_path).stdout
    assert f"run-started entry=fam/job args=[\"0\", \"2000\"]" in trace and f"parent={parent}" in trace
    trace = flowmetal("trace", parent, cwd=tmp_path).stdout
    assert trace.count("child-started child=") == 3
    assert flowmetal("replay", parent, "--verify", cwd=tmp_path).returncode == 0


def test_cancelling_a_waiting_parent_cancels_its_waiting_children(tmp_path):
    parent = detach(tmp_path, "main", "600000")
    store = store_of(tmp_path)
    proc = worker(tmp_path, "worker")
    try:
        kids = until(lambda: all_waiting(store, parent, 3), "the parent and its three children to wait")
        cancelled = flowmetal("cancel", parent, cwd=tmp_path)
        assert cancelled.returncode == 0, cancelled.stderr
        assert store.get_run(parent).status == "cancelled"
        for kid in kids:
            assert store.get_run(kid.id).status == "cancelled"
            assert store.events(kid.id)[-1].kind == "run-cancelled"
            timers = store.conn.execute("SELECT status FROM timers WHERE run_id=?", (kid.id,)).fetchall()
            assert [t["status"] for t in timers] == ["cancelled"]
        # Nothing is left for the worker: no run of the family wakes again.
        time.sleep(0.3)
        assert {store.get_run(r).status for r in [parent, *(k.id for k in kids)]} == {"cancelled"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_kill_9_after_a_start_run_step_leaves_one_child_for_the_step(tmp_path):
    parent = detach(tmp_path, "crashy", "3000000")  # two seconds of computing after the step
    store = store_of(tmp_path)
    for pause in (0.3, 1.0):  # inside the computing, the step not yet committed
        proc = worker(tmp_path, "killed", lease=0.5)
        until(lambda: store.get_run(parent).status == "running", "the parent to be claimed")
        time.sleep(pause)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert store.children(parent) == []  # the step's child is created with the step's commit
    proc = worker(tmp_path, "last", lease=0.5)
    try:
        # Killed once more right after the wait that commits the step, before the child ran.
        until(lambda: store.children(parent), "the child to be created")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = worker(tmp_path, "last", lease=0.5)
        run = until(lambda: (r := store.get_run(parent)).status in ("completed", "failed") and r,
                    "the parent to end")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (run.status, run.result) == ("completed", "70"), run.error
    (kid,) = store.children(parent)
    assert kid.id == child_id(parent, 1) and (kid.status, kid.result) == ("completed", "70")
    assert [e.data["child"] for e in store.events(parent) if e.kind == "child-started"] == [kid.id]
    assert flowmetal("replay", parent, "--verify", cwd=tmp_path).returncode == 0
