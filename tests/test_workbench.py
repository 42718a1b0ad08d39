"""The workbench's feed of changes (`flowmetal.ide.workbench.Workbench.changes`), on a real store.

Runs progress in another thread (its own store connection, as another process
would) while the feed is read as fast as it can be: every event of every run
must be reported exactly once, in order, and every run's last report must be
its final state.
"""

from __future__ import annotations

import threading
import time

from flowmetal.ide.workbench import Workbench
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage feed
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [flowmetal.log :refer [log!]])
  (defn ticks [n : int?] : int?
    (if (= n 0)
      0
      (do (log! (str "tick " n))
          (sleep! (make-duration 1 +milliseconds+))
          (+ 1 (ticks (- n 1)))))))
"""


def test_every_event_is_reported_once_in_order_while_runs_progress(tmp_path):
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    sources = {"feed.flow": PROGRAM}
    stored = store.put_sources(sources)
    bench = Workbench(str(path))
    assert bench.changes().runs == []  # the first look takes stock

    run_ids = [store.create_run("feed/ticks", [str(n)], stored, code_hash(sources)) for n in (30, 40, 50)]
    done = threading.Event()

    def work() -> None:
        own = SQLiteStore(path)
        executor = Executor(own)
        while not all(own.get_run(r).status == "completed" for r in run_ids):
            if executor.run_once() is None:
                time.sleep(0.001)
        own.close()
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    reported: dict[str, list[int]] = {r: [] for r in run_ids}
    last: dict[str, str] = {}
    looks = 0
    while True:
        finished = done.is_set()
        changes = bench.changes()
        looks += 1
        for run in changes.runs:
            last[run.id] = run.status
        for run, event in changes.events:
            reported[run.id].append(event.seq)
            assert event.span is not None, (run.id, event.kind)
        if finished:
            break
    worker.join()
    for run_id in run_ids:
        logged = [e.seq for e in store.events(run_id)]
        assert reported[run_id] == logged, run_id
        assert last[run_id] == "completed"
    assert looks > 10  # the feed was read while the runs went on, not once at the end
    bench.close()
    store.close()
