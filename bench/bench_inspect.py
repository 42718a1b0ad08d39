"""Looking into runs from the editor: the state at an event, and a long run's trace.

- `state-at-mid`: the time to answer `flowmetal/stateAt` at the middle step of
  a 1,000-step run (the workbench replays the log up to that step), against the
  time the executor took to run the whole run. Replay answers each step from
  the log with no commits, so it should cost less than running did. Target:
  <= 1x. The states of the step after it (stepping forward: the kept replay
  goes on) and of two steps back (from the nearest checkpoint) are reported
  beside it.
- `trace-10k`: the time to answer `flowmetal/trace` for a run whose log holds
  10,000 events (read, with the source span of every event), against reading
  the same events from the store alone. Target: <= 3x.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from flowmetal.ide.workbench import Workbench
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage bench.inspect
  (require [flowmetal.log :refer [log!]]
           [http.callback :refer [make-callback! get-callback!]])
  (defn chatty [n : int? acc : int?] : int?
    (if (= n 0)
      acc
      (do (log! (str "step " n))
          (chatty (- n 1) (+ acc n)))))
  (defn main [steps : int?] : str?
    (let [total (chatty steps 0)
          cb (make-callback!)]
      (get-callback! cb))))
"""


def _waiting_run(folder: Path, name: str, steps: int) -> tuple[Path, str, float]:
    path = folder / name
    store = SQLiteStore(path)
    sources = {"inspect.flow": PROGRAM}
    run_id = store.create_run("bench.inspect/main", [str(steps)], store.put_sources(sources), code_hash(sources))
    executor = Executor(store, lease=600)
    executor.program(store.get_run(run_id))
    start = time.perf_counter()
    while store.get_run(run_id).status != "waiting":
        executor.run_once(run_id)
    elapsed = time.perf_counter() - start
    store.close()
    return path, run_id, elapsed


def run(quick: bool = False) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-inspect-"))
    steps = 100 if quick else 1_000
    states, runs, nexts, backs = [], [], [], []
    for i in range(1 if quick else 5):
        path, run_id, ran = _waiting_run(folder, f"state-{i}.db", steps)
        bench = Workbench(str(path))
        run = bench.find(run_id)
        bench.program(run)  # checked once per workspace: not what we measure
        middle = next(e.seq for e in bench.store.events(run_id) if e.step == steps // 2)
        start = time.perf_counter()
        _, _, state = bench.state_at(run_id, middle)
        states.append(time.perf_counter() - start)
        runs.append(ran)
        assert state.source == "replay" and state.step == steps // 2
        following = next(e.seq for e in bench.store.events(run_id) if e.step == steps // 2 + 1)
        start = time.perf_counter()
        _, _, state = bench.state_at(run_id, following)  # stepping forward: the replay goes on
        nexts.append(time.perf_counter() - start)
        assert state.step == steps // 2 + 1
        earlier = next(e.seq for e in bench.store.events(run_id) if e.step == steps // 2 - 1)
        start = time.perf_counter()
        _, _, state = bench.state_at(run_id, earlier)  # stepping back: from the nearest checkpoint
        backs.append(time.perf_counter() - start)
        assert state.step == steps // 2 - 1
        bench.close()
    state_time, run_time = statistics.median(states), statistics.median(runs)
    next_time, back_time = statistics.median(nexts), statistics.median(backs)

    big = 1_000 if quick else 10_000
    path, run_id, _ = _waiting_run(folder, "trace.db", big // 3)  # three events a step
    bench = Workbench(str(path))
    bench.program(bench.find(run_id))
    traces, reads = [], []
    for _ in range(1 if quick else 5):
        start = time.perf_counter()
        _, _, events = bench.trace(run_id)
        traces.append(time.perf_counter() - start)
        start = time.perf_counter()
        bench.store.events(run_id)
        reads.append(time.perf_counter() - start)
    assert all(e.span is not None for e in events)
    trace_time, read_time = statistics.median(traces), statistics.median(reads)
    bench.close()
    return [
        {"name": "state-at-mid", "value": state_time, "reference": run_time, "ratio": state_time / run_time,
         "target": 1.0, "unit": "x running",
         "detail": f"state at step {steps // 2} of {steps}: {state_time * 1000:.1f} ms; running the {steps} "
                   f"steps took {run_time * 1000:.1f} ms; then the next step's state {next_time * 1000:.1f} ms, "
                   f"two steps back {back_time * 1000:.1f} ms (median)"},
        {"name": f"trace-{len(events) // 1000}k" if len(events) >= 1000 else "trace", "value": trace_time,
         "reference": read_time, "ratio": trace_time / read_time, "target": 3.0, "unit": "x reading",
         "detail": f"trace of {len(events)} events with spans {trace_time * 1000:.1f} ms; reading them "
                   f"{read_time * 1000:.1f} ms (median)"},
    ]
