"""Durable steps: what one step of a run costs, against DBOS Transact, side by side.

- `step-cost`: a Flowmetal run of 1,000 sequential `now!` steps, from creating
  the run to its completion (executor in this process, store file with WAL and
  `synchronous=FULL`, the store's defaults), per step, against a DBOS Transact
  workflow of 1,000 sequential steps (each returns `time.time()`) on DBOS's
  SQLite system database with the same settings, per step. The figure is
  Flowmetal's per-step cost over DBOS's. Target: <= 1/3.
- `step-commit`: the raw cost of one durable SQLite commit (one INSERT in its
  own transaction, WAL, `synchronous=FULL`) on the same disk, in microseconds:
  the floor under every durable figure on this machine (informational).

DBOS runs in its own virtual environment, `bench/.venv-dbos` (made on first
use with `python3 -m venv` and `pip install dbos`; `FLOWMETAL_BENCH_DBOS_VENV`
names another), as a subprocess that prints its timing as JSON
(`bench/dbos_side.py`, which sets the pragmas: DBOS leaves SQLite's
`journal_mode` at its default). Each round runs one Flowmetal run and then one
DBOS process that times one workflow after an untimed warm-up, so that the
machine's noise falls on both alike; the figure is the ratio of medians.
Flowmetal's program is loaded and checked once, by an untimed first run, before
any timing: the executor caches programs by code hash, as a worker does.

`--quick` runs 100 steps, once each; when DBOS's environment does not exist yet
it does not make it (that takes a network install) and compares Flowmetal with
DBOS's documented 850 µs per step instead, saying so in the detail.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

HERE = Path(__file__).resolve().parent
DBOS_SIDE = HERE / "dbos_side.py"
DBOS_REFERENCE = 850e-6   # seconds per step: DBOS's documented figure, used only when it cannot run here
FINAL = {"completed", "failed", "cancelled"}

PROGRAM = """\
(defpackage bench.steps
  (require [flowmetal.time :refer [now!]])
  (defn loop [n : int? acc : int?] : int?
    (if (= n 0)
      acc
      (loop (- n 1) (+ acc (mod (now!) 2)))))
  (defn main [n : int?] : int?
    (loop n 0)))
"""


# -- Flowmetal ---------------------------------------------------------------------------------------

class _Flowmetal:
    """One store file and one executor, whose program cache is warm."""

    def __init__(self, directory: Path) -> None:
        self.store = SQLiteStore(directory / "flowmetal.db")
        sources = {"steps.flow": PROGRAM}
        self.stored = self.store.put_sources(sources)
        self.hash = code_hash(sources)
        self.executor = Executor(self.store)
        self.commits = 0
        transaction = self.store.transaction

        def counted():  # every write transaction of the store goes through here
            self.commits += 1
            return transaction()
        self.store.transaction = counted
        self.run(10)  # untimed: loads and checks the program

    def run(self, steps: int) -> tuple[float, int]:
        """Seconds from creating a run of `steps` steps to its completion, and the commits made."""
        commits = self.commits
        start = time.perf_counter()
        run_id = self.store.create_run("bench.steps/main", [str(steps)], self.stored, self.hash)
        while True:
            progress = self.executor.run_once(run_id)
            if progress is not None and progress.status in FINAL:
                break
        elapsed = time.perf_counter() - start
        run = self.store.get_run(run_id)
        assert run.status == "completed" and 0 <= int(run.result) <= steps, (run.status, run.error)
        requested = self.store.conn.execute("SELECT COUNT(*) FROM events WHERE run_id=? AND kind='step-requested'",
                                            (run_id,)).fetchone()[0]
        assert requested == steps, requested
        return elapsed, self.commits - commits

    def pragmas(self) -> tuple[str, int]:
        conn = self.store.conn
        return conn.execute("PRAGMA journal_mode").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0]


# -- DBOS ------------------------------------------------------------------------------------------------

def _dbos_venv() -> Path:
    return Path(os.environ.get("FLOWMETAL_BENCH_DBOS_VENV") or HERE / ".venv-dbos")


def _dbos_python(make: bool) -> Path | None:
    """The python of DBOS's environment; made (with `pip install dbos`) if `make` and missing."""
    venv = _dbos_venv()
    python = venv / "bin" / "python"
    ok = python.exists() and subprocess.run([str(python), "-c", "import dbos"], capture_output=True).returncode == 0
    if ok:
        return python
    if not make:
        return None
    print(f"making {venv} with dbos (once)", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "dbos"], check=True)
    return python


def _dbos_run(python: Path, directory: Path, steps: int) -> dict:
    """One DBOS process: an untimed warm-up workflow, then one timed workflow of `steps` steps."""
    result = subprocess.run([str(python), str(DBOS_SIDE), str(directory), str(steps), "1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{DBOS_SIDE.name} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- a raw durable commit ---------------------------------------------------------------------------------

def _commit_cost(directory: Path, count: int) -> float:
    """Median seconds of one INSERT in its own IMMEDIATE transaction, WAL, synchronous=FULL."""
    conn = sqlite3.connect(directory / "commit.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, time REAL, data TEXT)")
    times = []
    for i in range(count):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t(time, data) VALUES(?, ?)", (time.time(), f"row {i}"))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - start)
    conn.close()
    return statistics.median(times)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def run(quick: bool = False) -> list[dict]:
    steps = 100 if quick else 1_000
    repeats = 1 if quick else 3
    python = _dbos_python(make=not quick)
    with tempfile.TemporaryDirectory(prefix="flowmetal-bench-") as tmp:
        directory = Path(tmp)
        (directory / "dbos").mkdir()
        flowmetal = _Flowmetal(directory)
        journal, synchronous = flowmetal.pragmas()
        assert (journal, synchronous) == ("wal", 2), (journal, synchronous)
        flow_times, commits, dbos_times, dbos_info = [], [], [], None
        for _ in range(repeats):
            elapsed, made = flowmetal.run(steps)
            flow_times.append(elapsed)
            commits.append(made)
            if python is not None:
                dbos_info = _dbos_run(python, directory / "dbos", steps)
                assert (dbos_info["journal_mode"], dbos_info["synchronous"]) == ("wal", "FULL"), dbos_info
                dbos_times += dbos_info["times"]
        flowmetal.store.close()
        commit = _commit_cost(directory, 50 if quick else 300)

    flow = statistics.median(flow_times) / steps
    made = statistics.median(commits)
    how = f"median of {repeats}" if repeats > 1 else "one run"
    flow_text = (f"Flowmetal {_us(flow)}/step ({statistics.median(flow_times) * 1000:.0f} ms for {steps} now! steps, "
                 f"{made:.0f} commits)")
    if python is not None:
        dbos = statistics.median(dbos_times) / steps
        detail = (f"{flow_text}, DBOS {dbos_info['dbos']} {_us(dbos)}/step "
                  f"({statistics.median(dbos_times) * 1000:.0f} ms); both SQLite WAL, synchronous=FULL; {how}")
    else:
        dbos = DBOS_REFERENCE
        detail = (f"{flow_text} against DBOS's documented {_us(dbos)}/step: DBOS not measured "
                  f"({_dbos_venv()} not made in quick mode); {how}")
    return [
        {"name": "step-cost", "value": flow, "reference": dbos, "ratio": flow / dbos, "target": 0.333,
         "unit": "x DBOS", "detail": detail},
        {"name": "step-commit", "value": commit, "reference": None, "ratio": commit * 1e6, "target": 1000.0,
         "unit": "µs", "detail": f"one INSERT in its own transaction, WAL, synchronous=FULL, median of "
                                 f"{50 if quick else 300} (informational)"},
    ]
