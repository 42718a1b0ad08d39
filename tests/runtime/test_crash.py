"""Crashes: workers killed with SIGKILL at random instants, again and again, and two
workers sharing one store. Every run still ends with the right value, each step is
applied once, and each run's log is complete and in order. On both kinds of store: an
SQLite file and a PostgreSQL database (`postgres_url`)."""

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
from pathlib import Path

import pytest

from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import open_store
from flowmetal.runtime.values import encode

PROGRAM = """\
(defpackage crash.test
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [flowmetal.log :refer [log!]])
  (defendpoint charge! [amount : int?] : int? "Charge, outside the interpreter.")
  (defn charges [n : int? i : int? total : int?] : int?
    (if (= i 0)
      total
      (let [a (charge! (+ n i))]
        (sleep! (make-duration 20 +milliseconds+))
        (charges n (- i 1) (+ total a)))))
  (defn job [n : int?] : int?
    (let [total (charges n 10 0)]
      (log! (str "done " n))
      total)))
"""
ROUNDS = 10


def expected(n: int) -> int:
    return sum(2 * (n + i) for i in range(1, ROUNDS + 1))


@pytest.fixture(params=["sqlite", "postgresql"])
def path(request, tmp_path) -> str:
    """The store: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


class FakeService(threading.Thread):
    """A connector for `charge!` in this process: answers each pending step, counting what it saw."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.store = open_store(path)
        self.seen: Counter = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for row in self.store.pending_steps("crash.test/charge!"):
                if row["status"] != "pending":
                    continue
                amount = json.loads(row["args"])["amount"]
                self.seen[row["key"]] += 1
                self.store.complete_step(row["run_id"], row["step"], json.dumps(encode(amount * 2)))
            time.sleep(0.005)


def start_runs(path: str, count: int) -> dict[str, int]:
    store = open_store(path)
    sources = {"crash.flow": PROGRAM}
    stored = store.put_sources(sources)
    runs = {store.create_run("crash.test/job", [str(n)], stored, code_hash(sources)): n for n in range(1, count + 1)}
    store.close()
    return runs


def worker(path: str, lease: float, logs: Path) -> subprocess.Popen:
    # Its log (a line for each run it claims and leaves) goes to a file: a pipe nobody reads
    # would fill and stop the worker.
    with open(logs / "workers.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--store", str(path), "--lease",
                                 str(lease), "--poll", "0.01"], stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)


def finish(path: str, logs: Path, service: FakeService, timeout: float = 120) -> None:
    store = open_store(path)
    proc = worker(path, lease=1.0, logs=logs)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = {r.status for r in store.list_runs()}
            if statuses <= {"completed", "failed", "cancelled"}:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        service.stop.set()


def check_outcome(path: str, runs: dict[str, int], service: FakeService) -> None:
    store = open_store(path)
    for run_id, n in runs.items():
        run = store.get_run(run_id)
        assert (run.status, run.result) == ("completed", str(expected(n))), (run_id, run.status, run.error)
        events = store.events(run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].kind == "run-started" and events[-1].kind == "run-completed"
        requested = [e.step for e in events if e.kind == "step-requested"]
        assert requested == sorted(set(requested)) == list(range(1, 2 * ROUNDS + 2)), requested
        completed = Counter(e.step for e in events if e.kind == "step-completed")
        assert all(c == 1 for c in completed.values()) and set(completed) == set(requested)
        assert [e.data["message"] for e in events if e.kind == "log"] == [f"done {n}"]
        charges = [k for k in requested if (store.step(run_id, k) or {"endpoint": None})["endpoint"]
                   == "crash.test/charge!"]  # the others are timers
        assert charges == list(range(1, 2 * ROUNDS, 2))
        assert {store.step(run_id, k)["status"] for k in charges} == {"applied"}
    # The service saw each step with one idempotency key, once.
    assert set(service.seen.values()) == {1}
    assert len(service.seen) == ROUNDS * len(runs)


@pytest.mark.slow
def test_kill_9_at_random_instants(path, tmp_path):
    runs = start_runs(path, 40)
    service = FakeService(path)
    service.start()
    rng = random.Random(20261128)
    store = open_store(path)
    sources = {"crash.flow": PROGRAM}
    stored = store.put_sources(sources)
    progress = []
    # Fewer on PostgreSQL: tests/store/test_fleet.py kills whole fleets there besides.
    cycles = 60 if path.startswith("postgresql") else 200
    for cycle in range(cycles):
        # New runs keep coming, so that the worker is busy whenever it is killed.
        for n in range(2):
            value = 1000 + cycle * 2 + n
            runs[store.create_run("crash.test/job", [str(value)], stored, code_hash(sources))] = value
        proc = worker(path, lease=0.5, logs=tmp_path)
        time.sleep(rng.uniform(0.3, 0.8))  # a worker needs about 0.4 s to start
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        progress.append(sum(r.next_seq for r in store.list_runs()))  # events logged so far
    # The kills fell while there was work to do: the logs grew between most of them.
    assert sum(1 for a, b in zip(progress, progress[1:]) if b > a) > cycles // 2, progress
    finish(path, tmp_path, service, timeout=300)
    check_outcome(path, runs, service)


def test_two_workers_never_run_one_run_at_once(path, tmp_path):
    runs = start_runs(path, 16)
    service = FakeService(path)
    service.start()
    procs = [worker(path, lease=5.0, logs=tmp_path), worker(path, lease=5.0, logs=tmp_path)]
    try:
        store = open_store(path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not {r.status for r in store.list_runs()} <= {"completed"}:
            time.sleep(0.1)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        service.stop.set()
    check_outcome(path, runs, service)
