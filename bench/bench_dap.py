"""Debugging a long run with `flowmetal dap`'s session (`flowmetal.dap.session`), in process.

- `dap-first-stop`: from `launch` of a recorded run whose log holds 10,000 events to
  the first stop at a breakpoint near its end (a line reached once, after the loop),
  against replaying the same run (`flowmetal replay`'s `replay`). The debugger replays
  one evaluation step at a time with the fast path off and keeps checkpoints; target
  <= 2x.
- `dap-step`: then each step forward (`next`) and back (`stepBack`) there, median;
  target <= 50 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from flowmetal.dap.session import Session
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.replay import replay
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage bench.dap
  (require [flowmetal.log :refer [log!]])
  (defn chatty [n : int? acc : int?] : int?
    (if (= n 0)
      acc
      (do (log! (str "step " n))
          (chatty (- n 1) (+ acc n)))))
  (defn main [steps : int?] : int?
    (let [total (chatty steps 0)]
      (log! "done")
      (+ total 1))))
"""
STOP_LINE = 10   # `(log! "done")`: reached once, at the end


def _recorded(folder: Path, steps: int) -> tuple[Path, str]:
    path = folder / "dap.db"
    store = SQLiteStore(path)
    sources = {"dap.flow": PROGRAM}
    run_id = store.create_run("bench.dap/main", [str(steps)], store.put_sources(sources), code_hash(sources))
    executor = Executor(store, lease=600)
    while store.get_run(run_id).status != "completed":
        executor.run_once(run_id)
    store.close()
    return path, run_id


def run(quick: bool = False) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-dap-"))
    events = 1_000 if quick else 10_000
    path, run_id = _recorded(folder, events // 3)   # three events a step: requested, the line, completed
    store = SQLiteStore(path)
    count = len(store.events(run_id))
    replays, stops, forward, back = [], [], [], []
    for _ in range(1 if quick else 3):
        start = time.perf_counter()
        replay(store, run_id)
        replays.append(time.perf_counter() - start)
        session = Session()
        start = time.perf_counter()
        session.launch_run(run_id, str(path))
        name = next(iter(session.program.sources))
        session.set_breakpoints(session.path_of(name), [(STOP_LINE, None)])
        stop = session.start()
        stops.append(time.perf_counter() - start)
        assert stop.reason == "breakpoint", stop
        for _ in range(5 if quick else 20):
            start = time.perf_counter()
            session.step_back()
            back.append(time.perf_counter() - start)
        for _ in range(5 if quick else 20):
            start = time.perf_counter()
            session.step()
            forward.append(time.perf_counter() - start)
        session.close()
    store.close()
    stop_time, replay_time = statistics.median(stops), statistics.median(replays)
    step_time = statistics.median(forward + back)
    return [
        {"name": "dap-first-stop", "value": stop_time, "reference": replay_time, "ratio": stop_time / replay_time,
         "target": 2.0, "unit": "x replaying",
         "detail": f"launch to the first stop near the end of a run of {count} events: {stop_time * 1000:.0f} ms; "
                   f"replaying it {replay_time * 1000:.0f} ms (median)"},
        {"name": "dap-step", "value": step_time, "reference": 1.0, "ratio": step_time * 1000, "target": 50.0,
         "unit": "ms a step",
         "detail": f"a step forward {statistics.median(forward) * 1000:.2f} ms, back "
                   f"{statistics.median(back) * 1000:.1f} ms (median of {len(forward) + len(back)})"},
    ]
