"""Runs at scale: resuming does not grow with history, and waiting runs cost a worker nothing.

- `resume-100k`: the time to resume (claim, restore, finish) a run whose log holds
  100,000 events, against one whose log holds 10, both woken from the same
  `sleep!`. Resuming reads the latest snapshot, never the log. Target: <= 1.5x.
- `worker-memory-10k`: a worker's peak memory (a whole `flowmetal worker --once`
  process) on a store holding 10,000 waiting runs, against one holding 10.
  Target: <= 1.2x (flat in the number of waiting runs).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage bench.runs
  (require [flowmetal.time :refer [now! sleep! make-duration +hours+ +milliseconds+]])
  (defn busy [n : int? acc : int?] : int?
    (if (= n 0) acc (busy (- n 1) (+ acc (if (> (now!) 0) 1 0)))))
  (defn main [steps : int? wait : int?] : int?
    (let [done (busy steps 0)]
      (sleep! (make-duration wait +milliseconds+))
      done))
  (defn idle [] : nil?
    (sleep! (make-duration 1 +hours+))))
"""


def _store(folder: Path, name: str) -> tuple[SQLiteStore, dict, str]:
    store = SQLiteStore(folder / name)
    sources = {"runs.flow": PROGRAM}
    return store, store.put_sources(sources), code_hash(sources)


def _resume_time(folder: Path, steps: int, name: str) -> tuple[float, int]:
    store, stored, digest = _store(folder, name)
    run_id = store.create_run("bench.runs/main", [str(steps), "50"], stored, digest)
    executor = Executor(store, lease=600)
    while store.get_run(run_id).status != "waiting":
        executor.run_once(run_id)
    events = store.get_run(run_id).next_seq - 1
    time.sleep(0.06)
    resumer = Executor(store, worker="resumer")
    resumer.program(store.get_run(run_id))  # the program is checked once per process: not what we measure
    start = time.perf_counter()
    resumer.run_once(run_id)
    elapsed = time.perf_counter() - start
    assert store.get_run(run_id).status == "completed"
    return elapsed, events


def _worker_peak(folder: Path, count: int) -> int:
    store, stored, digest = _store(folder, f"idle-{count}.db")
    executor = Executor(store, lease=600)
    for _ in range(count):
        run_id = store.create_run("bench.runs/idle", [], stored, digest)
        executor.run_once(run_id)
    store.close()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", (
        "import resource, sys; from flowmetal.cli import main; main(['worker', '--once', '--store', sys.argv[1]]);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"), str(folder / f"idle-{count}.db")],
        capture_output=True, text=True, check=True)
    del before
    return int(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-runs-"))
    big = 2_000 if quick else 100_000
    small_times, big_times = [], []
    for i in range(1 if quick else 3):
        t, small_events = _resume_time(folder, 3, f"small-{i}.db")
        small_times.append(t)
        t, big_events = _resume_time(folder, big // 2, f"big-{i}.db")  # two events a step
        big_times.append(t)
    small, large = statistics.median(small_times), statistics.median(big_times)
    waiting = 500 if quick else 10_000
    few, many = _worker_peak(folder, 10), _worker_peak(folder, waiting)
    return [
        {"name": f"resume-{big // 1000}k", "value": large, "reference": small, "ratio": large / small,
         "target": 1.5, "unit": "x 10 events",
         "detail": f"resume after {big_events} events {large * 1000:.1f} ms, after {small_events} events "
                   f"{small * 1000:.1f} ms (median)"},
        {"name": f"worker-memory-{waiting // 1000}k" if waiting >= 1000 else f"worker-memory-{waiting}",
         "value": many, "reference": few, "ratio": many / few, "target": 1.2, "unit": "x 10 runs",
         "detail": f"peak RSS {many / 1024:.0f} MiB with {waiting} waiting runs, {few / 1024:.0f} MiB with 10"},
    ]
