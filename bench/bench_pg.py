"""PostgreSQL: what a durable step costs against DBOS Transact on the same server, and runs/s by workers.

    .venv/bin/python bench/bench_pg.py [--quick] [--store URL|PATH] [--postgres URL]

- `pg-step-cost`: a Flowmetal run of N sequential `now!` steps on a store opened
  with `open_store(URL)` for a database of the PostgreSQL server, from creating
  the run to its completion, per step, against a DBOS Transact workflow of N
  sequential steps (each returns `time.time()`) on its own database of the same
  server, per step. Target: <= 1/3.
- `pg-connector-step`: the same with each step answered outside the run, as a
  `flowmetal connector` does (claim the step, record its result under the
  claim) on a store connection of its own, as another process would: every
  step's request and result are committed durably before the run goes on, as
  every DBOS step is. Informational: two flushed commits a step (the request,
  handed to another process, and its result), where a DBOS step makes one.
- `pg-inline-step`: the same run, each `tick!` step performed by a Python
  endpoint hosted by the worker executing the run (`flowmetal worker
  --connector`: `Executor(inline=InlineSteps(...))`), held by the run's lease
  as a DBOS step is held by its workflow's process: the commit that records a
  step's request writes the run's snapshot waiting on it, the function runs in
  the worker's process, and its result (the step's row, written once) is
  recorded with the next step's request (or the run's end): every step's request and result are durable, and nothing that
  depends on a result leaves the process before it is committed, in one
  commit a step, as DBOS commits each step's output once. Target: <= 1/3.
- `pg-runs-W` (W = 1, 2, 4): 1,000 runs of 10 `now!` steps, created first, then
  W `flowmetal worker --once` processes on the store until all have ended: runs
  a second, start-up of the processes included, and the time against 1 worker
  (informational).
- `pg-wake-latency`: claim latency after a wake-up. One idle `flowmetal worker`
  (its default `--poll`) holds runs waiting for a signal; the benchmark sends
  each its signal (`send_signal`, the transaction `POST /api/runs/{id}/signals`
  makes) and times from just before that call to the worker's log line saying
  it claimed the run (read from its stderr as it comes): the median over 200
  runs (20 with `--quick`), each sent once the worker is idle again. Target:
  <= 50 ms. On PostgreSQL the worker is woken by the commit's notification; on
  SQLite it finds the run at its next poll.

What is compared, and why it is fair. A DBOS step's result is durable before
the workflow goes on (DBOS commits each step's output). A `now!` step's result
is durable before anything that depends on it leaves the process: the run goes
on in memory and its events are committed together when the run waits, ends,
or has gathered 500 of them (flowmetal/runtime/executor.py). Both guarantee
that a crash never shows the world a step that is then computed again
differently; Flowmetal pays for it in fewer commits. A step answered by a
connector cannot be batched (its request must be durable before anyone
performs it), so `pg-connector-step` is the per-step commit path; its
connector's side runs in this process, through the store calls
`flowmetal connector` makes, at the moment the run first looks for the answer
(the executor holds a run for a quick answer: `executor.HOLD`), so that
neither a polling interval nor the scheduling of threads on a busy machine is
measured.

Which store: `--store` takes a `postgresql://` URL or an SQLite path; by default
a database `flowmetal_bench` of the PostgreSQL server. Where `open_store`
refuses a `postgresql://` URL, the benchmark prints "PostgreSQL store not
available" and measures Flowmetal on an SQLite file (WAL, synchronous=FULL)
instead, under figures named `...-sqlite`, against DBOS on PostgreSQL still.
The PostgreSQL server: `--postgres`, else `FLOWMETAL_TEST_POSTGRES`, else a
throwaway one started with `scripts/postgres` for the benchmark. DBOS runs in
this python when it has DBOS (`pip install -e '.[bench]'`), else in
`bench/.venv-dbos` (see bench_steps.py), as a subprocess (`dbos_side.py`) that
times one workflow after an untimed warm-up. Each round runs one Flowmetal run
and then one DBOS process, so that the machine's noise falls on both alike; the
figure is the ratio of medians.

`--quick` runs 50 steps once, and 40 runs for the workers; without DBOS it does
not install it, and compares with DBOS's documented 850 µs a step instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from flowmetal.connectors.inline import InlineSteps  # noqa: E402
from flowmetal.runtime.executor import Executor  # noqa: E402
from flowmetal.runtime.program import code_hash  # noqa: E402
from flowmetal.runtime.store import StoreError, open_store  # noqa: E402

import bench_steps  # noqa: E402

FINAL = {"completed", "failed", "cancelled"}
NOT_AVAILABLE = "PostgreSQL store not available"
PROGRAM = """\
(defpackage bench.pg
  (require [flowmetal.time :refer [now!]]
           [flowmetal.signal :refer [receive!]])
  (defendpoint tick! [] : int?
    "Answered by the benchmark, as a connector would.")
  (defn clock [n : int? acc : int?] : int?
    (if (= n 0) acc (clock (- n 1) (+ acc (mod (now!) 2)))))
  (defn ticks [n : int? acc : int?] : int?
    (if (= n 0) acc (ticks (- n 1) (+ acc (tick!)))))
  (defn main [n : int?] : int?
    (clock n 0))
  (defn connector [n : int?] : int?
    (ticks n 0))
  (defn woken [] (receive! "go")))
"""
SOURCES = {"pg.flow": PROGRAM}


# -- the PostgreSQL server and its databases -----------------------------------------------------------

@contextlib.contextmanager
def _server(url: str | None):
    """The server's superuser URL, or (None, why not): `url`, $FLOWMETAL_TEST_POSTGRES, else a throwaway one."""
    url = url or os.environ.get("FLOWMETAL_TEST_POSTGRES")
    if url:
        yield url, None
        return
    directory = tempfile.mkdtemp(prefix="flowmetal-bench-pg-", dir="/tmp")
    started = subprocess.run([str(ROOT / "scripts" / "postgres"), "start", directory],
                             capture_output=True, text=True)
    try:
        if started.returncode != 0:
            yield None, started.stderr.strip().splitlines()[-1] if started.stderr.strip() else "it did not start"
        else:
            yield started.stdout.strip(), None
    finally:
        subprocess.run([str(ROOT / "scripts" / "postgres"), "stop", directory], capture_output=True)


def _fresh_database(server: str, name: str) -> str:
    """The URL of database `name` on the server, made empty."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/{name}"))


# -- Flowmetal --------------------------------------------------------------------------------------------

class _Flowmetal:
    """One store and one executor whose program cache is warm; the store's commits counted."""

    def __init__(self, location: str) -> None:
        self.store = open_store(location)
        self.connector = open_store(location)  # the connector's own connection, as another process's
        self.answering: str | None = None     # the run whose tick! steps are answered
        self.requested = False
        looks = self.store.finished_steps

        def finished_steps(run_id, steps=None):  # the run looks for answers: the connector answers first
            self.answer()
            return looks(run_id, steps)
        self.store.finished_steps = finished_steps
        self.stored = self.store.put_sources(SOURCES)
        self.hash = code_hash(SOURCES)
        self.executor = Executor(self.store, worker="bench")
        # A worker hosting the endpoint: `flowmetal worker --connector` (the function returns 1).
        self.inline = InlineSteps({"bench.pg/tick!": lambda: 1})
        self.inline_executor = Executor(self.store, worker="bench-inline", inline=self.inline)
        self.commits = 0
        commit = self.store.commit

        def counted(*args, **kwargs):  # every checkpoint of a run goes through here
            self.commits += 1
            self.requested = True  # (a commit may request a step: the connector looks once after it)
            return commit(*args, **kwargs)
        self.store.commit = counted
        self.run("main", 10)  # untimed: loads and checks the program
        self.run("connector", 2)
        self.run("inline", 2)

    def run(self, entry: str, steps: int) -> tuple[float, int]:
        """Seconds from creating a run of `steps` steps to its completion, and the checkpoints committed."""
        commits = self.commits
        start = time.perf_counter()
        inline = entry == "inline"
        run_id = self.store.create_run(f"bench.pg/{'connector' if inline else entry}", [str(steps)], self.stored,
                                       self.hash)
        self.answering = run_id if entry == "connector" else None
        executor = self.inline_executor if inline else self.executor
        try:
            while True:
                progress = executor.run_once(run_id)
                if progress is not None and progress.status in FINAL:
                    break
                self.answer()  # the hold passed first (a slow moment): answered, the run wakes
        finally:
            self.answering = None
        elapsed = time.perf_counter() - start
        run = self.store.get_run(run_id)
        assert run.status == "completed", (run.status, run.error)
        assert 0 <= int(run.result) <= steps, run.result
        requested = len(self.store.events(run_id, kind="step-requested"))
        assert requested == steps, requested
        if inline:  # every step performed here, its result recorded under the worker's claim
            rows = self.store._all("SELECT status, claimed_by, result FROM steps WHERE run_id=?", (run_id,))
            assert len(rows) == steps and all((r["status"], r["claimed_by"], r["result"]) ==
                                              ("applied", "bench-inline", "1") for r in rows), rows[:3]
        return elapsed, self.commits - commits

    def answer(self) -> None:
        """What `flowmetal connector` does for `tick!`, through the same store calls, on a store
        connection of its own: claim what is pending, record each result under the claim."""
        if self.answering is None or not self.requested:
            return
        self.requested = False
        for step in self.connector.claim_steps(["bench.pg/tick!"], "bench-connector", 30.0, runs=[self.answering]):
            assert self.connector.complete_claimed_step(step["run_id"], step["step"], "bench-connector", "1")

    def close(self) -> None:
        self.inline.close()
        self.connector.close()
        self.store.close()


def _open_flowmetal(location: str, fallback: Path) -> tuple[_Flowmetal, str]:
    """The Flowmetal side on `location`, and what it is on; on an SQLite file in `fallback` when
    `open_store` refuses a PostgreSQL URL."""
    if not location.startswith(("postgresql://", "postgres://")):
        return _Flowmetal(location), "Flowmetal on SQLite"
    try:
        return _Flowmetal(location), "Flowmetal on PostgreSQL"
    except StoreError as error:
        print(f"{NOT_AVAILABLE} ({error}): Flowmetal measured on SQLite instead", file=sys.stderr)
        return _Flowmetal(str(fallback / "flowmetal.db")), f"Flowmetal on SQLite ({NOT_AVAILABLE})"


# -- DBOS -------------------------------------------------------------------------------------------------

def _dbos_python(quick: bool) -> Path | None:
    """A python that has DBOS: this one (the bench extra), else DBOS's own environment (made unless quick)."""
    if subprocess.run([sys.executable, "-c", "import dbos"], capture_output=True).returncode == 0:
        return Path(sys.executable)
    return bench_steps._dbos_python(make=not quick)


def _dbos_run(python: Path, database: str, steps: int) -> dict:
    result = subprocess.run([str(python), str(bench_steps.DBOS_SIDE), database, str(steps), "1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"dbos_side.py exited {result.returncode}:\n{result.stdout}{result.stderr}"
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert (info["fsync"], info["synchronous_commit"]) == ("on", "on"), info
    return info


# -- workers ----------------------------------------------------------------------------------------------

def _throughput(location: str, runs: int, workers: int) -> float:
    """Runs a second: `runs` runs of 10 `now!` steps, then `workers` worker processes until all have ended."""
    store = open_store(location)
    stored = store.put_sources(SOURCES)
    digest = code_hash(SOURCES)
    ids = [store.create_run("bench.pg/main", ["10"], stored, digest) for _ in range(runs)]
    command = [sys.executable, "-m", "flowmetal", "worker", "--once", "--no-connectors", "--store", location]
    start = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
    elapsed = time.perf_counter() - start
    statuses = [store.get_run(run_id).status for run_id in ids]
    store.close()
    assert statuses == ["completed"] * runs, {s: statuses.count(s) for s in set(statuses)}
    return runs / elapsed


# -- claim latency after a wake-up ------------------------------------------------------------------------

class _WorkerLog(threading.Thread):
    """A worker's stderr, read as it comes: when each run was claimed and left (monotonic times)."""

    def __init__(self, process: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.claimed: dict[str, list[float]] = {}
        self.left: dict[str, list[str]] = {}
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def run(self) -> None:
        for line in self.process.stderr:
            at = time.monotonic()
            words = line.split()
            with self.changed:
                self.lines.append(line)
                if len(words) >= 5 and words[2] == "run":  # flowmetal worker: run ID ...
                    run_id = words[3].rstrip(":")
                    if line.rstrip().endswith(": claimed"):
                        self.claimed.setdefault(run_id, []).append(at)
                    else:
                        self.left.setdefault(run_id, []).append(line)
                self.changed.notify_all()

    def wait(self, predicate, what: str, timeout: float = 60.0) -> None:
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise AssertionError(f"the worker did not log {what} in {timeout:.0f} s:\n" + "".join(self.lines[-20:]))


def _listening(location: str) -> bool:
    """Whether a Flowmetal listening connection is open on the store's database (PostgreSQL)."""
    import psycopg
    with psycopg.connect(location, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name='flowmetal-listener' "
                            "AND datname=current_database()").fetchone()[0] > 0


def _wake_latency(location: str, count: int, on_postgres: bool) -> list[float]:
    """Seconds from sending a waiting run its signal to an idle worker's claim of it, for `count` runs
    (after 3 untimed)."""
    store = open_store(location)
    stored = store.put_sources(SOURCES)
    digest = code_hash(SOURCES)
    worker = subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--no-connectors", "--store", location],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = _WorkerLog(worker)
    log.start()
    times = []
    try:
        deadline = time.monotonic() + 60
        while on_postgres and not _listening(location):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker's listener never connected"
            time.sleep(0.05)
        for i in range(count + 3):
            run_id = store.create_run("bench.pg/woken", [], stored, digest)
            log.wait(lambda: len(log.left.get(run_id, ())) >= 1, f"run {run_id} waiting")
            assert "waiting" in log.left[run_id][0], log.left[run_id]
            time.sleep(0.05)  # the worker back asleep
            start = time.monotonic()
            assert store.send_signal(run_id, "go", str(i)).outcome == "queued"
            log.wait(lambda: len(log.claimed.get(run_id, ())) >= 2, f"run {run_id} claimed again")
            if i >= 3:
                times.append(log.claimed[run_id][1] - start)
            log.wait(lambda: len(log.left.get(run_id, ())) >= 2, f"run {run_id} ended")
            assert store.get_run(run_id).status == "completed", store.get_run(run_id)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:  # the figure is measured: say so, and do not leave it running
            print("bench_pg: the idle worker did not stop within 30 s of SIGTERM; killed", file=sys.stderr)
            worker.kill()
            worker.wait(30)
        store.close()
    return times


# -- the figures ------------------------------------------------------------------------------------------

def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def run(quick: bool = False, store: str | None = None, postgres: str | None = None) -> list[dict]:
    steps = 50 if quick else 1_000
    repeats = 1 if quick else 3
    runs = 40 if quick else 1_000
    python = _dbos_python(quick)
    with _server(postgres) as (server, why_not), tempfile.TemporaryDirectory(prefix="flowmetal-bench-") as tmp:
        folder = Path(tmp)
        location = store or (_fresh_database(server, "flowmetal_bench") if server else str(folder / "flowmetal.db"))
        flowmetal, on = _open_flowmetal(location, folder)
        on_postgres = on == "Flowmetal on PostgreSQL"
        dbos_database = _fresh_database(server, "dbos_bench") if server and python else None
        times = {"main": [], "connector": [], "inline": []}
        commits = {"main": [], "connector": [], "inline": []}
        dbos_times, dbos_info = [], None
        for _ in range(repeats):
            for entry in times:
                elapsed, made = flowmetal.run(entry, steps)
                times[entry].append(elapsed)
                commits[entry].append(made)
            if dbos_database:
                dbos_info = _dbos_run(python, dbos_database, steps)
                dbos_times += dbos_info["times"]
        flowmetal.close()

        wake_location = _fresh_database(server, "flowmetal_wake") if on_postgres and not store else (
            store if on_postgres else str(folder / "wake.db"))
        wakes = _wake_latency(wake_location, 20 if quick else 200, on_postgres)

        rates = {}
        for workers in (1, 2, 4):
            if on_postgres:
                where = store or _fresh_database(server, f"flowmetal_runs_{workers}")
            else:
                where = str(folder / f"runs-{workers}.db")
            rates[workers] = _throughput(where, runs, workers)

    if dbos_info:
        dbos = statistics.median(dbos_times) / steps
        against = (f"DBOS {dbos_info['dbos']} {_us(dbos)}/step on PostgreSQL "
                   f"{dbos_info['server_version'].split()[0]} (fsync and synchronous_commit on)")
    else:
        dbos = bench_steps.DBOS_REFERENCE
        reason = "DBOS not installed: pip install -e '.[bench]'" if server else (why_not or "no PostgreSQL server")
        against = f"DBOS's documented {_us(dbos)}/step: DBOS not measured ({reason})"
    how = f"median of {repeats}" if repeats > 1 else "one run"
    suffix = "" if on_postgres else "-sqlite"
    results = []
    for name, entry, what in (("pg-step-cost", "main", "now! steps"),
                              ("pg-connector-step", "connector", "steps answered as a connector does"),
                              ("pg-inline-step", "inline", "steps performed by a Python endpoint hosted by the "
                                                           "worker")):
        flow = statistics.median(times[entry]) / steps
        # A connector's step is handed to another process and back: two flushed commits where a
        # DBOS step makes one. The per-step target is for the steps performed in the run's process.
        informational = entry == "connector"
        results.append({
            "name": name + suffix, "value": flow, "reference": dbos, "ratio": flow / dbos,
            "target": float("inf") if informational else 0.333, "unit": "x DBOS",
            "detail": f"{on}: {_us(flow)}/step ({statistics.median(times[entry]) * 1000:.0f} ms for {steps} "
                      f"{what}, {statistics.median(commits[entry]):.0f} checkpoints); {against}; {how}"
                      + (" (informational)" if informational else "")})
    for workers, rate in rates.items():
        results.append({
            "name": f"pg-runs-{workers}{suffix}", "value": rate, "reference": rates[1], "ratio": rates[1] / rate,
            "target": 1.0, "unit": "x 1 worker",
            "detail": f"{on}: {rate:.0f} runs/s, {runs} runs of 10 now! steps, {workers} flowmetal worker --once "
                      f"process{'es' if workers > 1 else ''}, start-up included; time against 1 worker "
                      f"(informational)"})
    wake = statistics.median(wakes) * 1000
    results.append({
        "name": f"pg-wake-latency{suffix}", "value": wake, "reference": 50.0, "ratio": wake, "target": 50.0,
        "unit": "ms",
        "detail": f"{on}: median {wake:.1f} ms (min {min(wakes) * 1000:.1f}, max {max(wakes) * 1000:.1f}) from "
                  f"sending a waiting run its signal to an idle flowmetal worker's claim of it (default --poll), "
                  f"over {len(wakes)} runs"})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one pass: a smoke test")
    parser.add_argument("--store", help="Flowmetal's store: a postgresql:// URL or an SQLite path "
                                        "(default: a database of the PostgreSQL server)")
    parser.add_argument("--postgres", help="the PostgreSQL server's superuser URL (default: "
                                           "$FLOWMETAL_TEST_POSTGRES, else a throwaway server)")
    args = parser.parse_args(argv)
    for r in run(quick=args.quick, store=args.store, postgres=args.postgres):
        print(f"{r['name']:<24} {r['ratio']:8.2f} {r['unit']:<10} {r['detail']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
