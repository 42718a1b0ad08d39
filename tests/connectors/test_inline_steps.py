"""Steps performed in the worker's own process: `flowmetal worker --connector MODULE`, as real
processes, on a real SQLite file and a real PostgreSQL database.

The same program run through the connector path (a worker and `flowmetal connector`) and
inline gives the same results and the same trace; a worker killed (-9) at random instants
in the middle of runs of inline steps leaves every run completed once, with the right
value, each step's result applied once and each function called again only across a crash,
with the same idempotency key; a worker paused past its lease cannot commit an inline
result once another worker took the run over; a function slower than the lease is not
performed twice; a bad `--connector` module is one line and exit 2."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from flowmetal.runtime.driving import prepare, record_run
from flowmetal.runtime.store import open_store

HERE = Path(__file__).resolve().parent
SOURCES = {"inline.flow": (HERE / "inline.flow").read_text(encoding="utf-8")}
MODULE = str(HERE / "inline_endpoints.py")
FINAL = ("completed", "failed", "cancelled")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def calls(tmp_path, monkeypatch):
    path = tmp_path / "calls"
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("INLINE_CALLS", str(path))
    monkeypatch.setenv("INLINE_MARKS", str(marks))
    return path


def counted(path: Path) -> Counter:
    """Calls of the endpoint functions, by idempotency key."""
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line.strip())


class Proc:
    """A `flowmetal` command as a process of its own session; its stderr kept in a file."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.log = tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", *args], cwd=tmp, env=env,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill9()
            return -9


def create(location: str, entry: str, *args: str) -> str:
    code, _, name = prepare(SOURCES, entry, list(args))
    store = open_store(location)
    try:
        return record_run(store, SOURCES, name, list(args), code)
    finally:
        store.close()


def wait_ended(location: str, run_ids: list[str], timeout: float = 90.0, procs=()) -> dict:
    store = open_store(location)
    try:
        deadline = time.monotonic() + timeout
        while True:
            runs = {r: store.get_run(r) for r in run_ids}
            if all(run.status in FINAL for run in runs.values()):
                return runs
            if time.monotonic() > deadline:
                logs = "\n".join(p.logged()[-3000:] for p in procs)
                raise AssertionError(f"runs not ended: {[(r.id, r.status) for r in runs.values()]}\n{logs}")
            time.sleep(0.05)
    finally:
        store.close()


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def steps_of(location: str, run_id: str) -> list[dict]:
    store = open_store(location)
    try:
        return [dict(row) for row in store._all("SELECT step, endpoint, status, result, error, claimed_by, "
                                                 "claim_epoch FROM steps WHERE run_id=? ORDER BY step", (run_id,))]
    finally:
        store.close()


def trace_json(location: str, run_id: str, cwd: Path) -> list[dict]:
    """The run's trace as `flowmetal trace --format json` gives it, without times and with the
    run's id as RUN."""
    out = flowmetal("trace", run_id, "--store", location, "--format", "json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    events = json.loads(out.stdout.replace(run_id, "RUN"))
    for event in events:
        event.pop("time", None)
        if event["kind"] == "run-failed":
            # A failure given to a run restored from its snapshot is placed on the enclosing form
            # (a connector's answer that came after the hold), one given in memory on the call
            # itself (a held answer, or inline): the same line either way.
            event.pop("span", None)
    return events


def trace_human(location: str, run_id: str, cwd: Path) -> list[str]:
    out = flowmetal("trace", run_id, "--store", location, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return [re.sub(r" span=\S+", "", re.sub(r"\d\d:\d\d:\d\d\.\d+", "T", line)).replace(run_id, "RUN")
            if "run-failed" in line else re.sub(r"\d\d:\d\d:\d\d\.\d+", "T", line).replace(run_id, "RUN")
            for line in out.stdout.splitlines()]


def inline_claims(location: str, run_id: str) -> list[str]:
    """Who claimed each of the run's steps (a worker's executor: `HOST:PID:HEX`; its connector
    thread: `worker:...:python`; `flowmetal connector`: `connector:...`)."""
    return [row["claimed_by"] for row in steps_of(location, run_id)]


# -- the same program both ways ---------------------------------------------------------------------------

def test_inline_steps_give_the_connector_paths_results_and_trace(location, calls, tmp_path):
    # The connector path: a worker that hosts nothing, and `flowmetal connector`.
    by_connector = [create(location, "acme.count/main", "5"), create(location, "acme.count/fails", "3")]
    worker = Proc(tmp_path, "plain", "worker", "--no-connectors", "--store", location, "--poll", "0.05")
    connector = Proc(tmp_path, "connector", "connector", MODULE, "--store", location, "--poll", "0.05")
    try:
        first = wait_ended(location, by_connector, procs=(worker, connector))
    finally:
        worker.stop()
        connector.stop()
    # Inline: one worker hosting the module, until nothing is left.
    inline = [create(location, "acme.count/main", "5"), create(location, "acme.count/fails", "3")]
    done = flowmetal("worker", "--once", "--no-connectors", "--connector", MODULE, "--store", location,
                     "--poll", "0.05", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Python endpoints acme.count/boom!, acme.count/double!, acme.count/pause!, acme.count/slow! " \
           "performed here" in done.stderr
    second = wait_ended(location, inline, timeout=10)

    for a, b in zip(by_connector, inline):
        assert (first[a].status, first[a].result, first[a].error) == (second[b].status, second[b].result,
                                                                        second[b].error)
        assert trace_json(location, a, tmp_path) == trace_json(location, b, tmp_path)
        assert trace_human(location, a, tmp_path) == trace_human(location, b, tmp_path)
        for run_id in (a, b):
            verify = flowmetal("replay", run_id, "--verify", "--store", location, cwd=tmp_path)
            assert verify.returncode == 0, verify.stderr
        # Same rows in the store: each step applied with its result or error.
        strip = [{k: v for k, v in row.items() if k not in ("claimed_by", "claim_epoch")}
                 for row in steps_of(location, a)]
        assert strip == [{k: v for k, v in row.items() if k not in ("claimed_by", "claim_epoch")}
                         for row in steps_of(location, b)]
        assert all(c.startswith("connector:") for c in inline_claims(location, a))
        # Inline: claimed by the worker's executor, not by a connector (nor its own connector thread).
        assert all(not c.startswith(("connector:", "worker:")) for c in inline_claims(location, b))
    assert first[by_connector[0]].result == "30" and first[by_connector[1]].status == "failed"
    assert "`acme.count/boom!` raised ValueError: no double for 3" in second[inline[1]].error
    assert set(counted(calls).values()) == {1}


# -- kill -9 at random instants ---------------------------------------------------------------------------

def test_a_worker_killed_at_random_instants_loses_and_repeats_nothing(location, calls, tmp_path):
    steps = 25
    runs = [create(location, "acme.count/main", str(steps)) for _ in range(3)]
    rng = random.Random(int(os.environ.get("INLINE_SEED", "0")) or None)
    command = ("worker", "--connector", MODULE, "--no-connectors", "--store", location, "--lease", "1",
               "--poll", "0.05")
    kills = 0
    for _ in range(8):
        worker = Proc(tmp_path, "worker", *command)
        time.sleep(rng.uniform(0.6, 2.0))  # start-up included: some kills land before a claim, most after
        worker.kill9()
        kills += 1
    last = Proc(tmp_path, "worker", *command)
    try:
        ended = wait_ended(location, runs, timeout=120, procs=(last,))
    finally:
        last.stop()
    store = open_store(location)
    try:
        for run_id in runs:
            assert ended[run_id].status == "completed", ended[run_id].error
            assert ended[run_id].result == str(steps * (steps + 1))
            events = store.events(run_id)
            assert [e.kind for e in events].count("run-completed") == 1
            completed = Counter(e.step for e in events if e.kind == "step-completed")
            requested = Counter(e.step for e in events if e.kind == "step-requested")
            assert set(completed.values()) == {1} and set(requested.values()) == {1}  # each step once
            doubles = [e.step for e in events if e.kind == "step-requested" and e.data["endpoint"] ==
                       "acme.count/double!"]
            assert len(doubles) == steps and all(completed[s] == 1 for s in doubles)
            rows = steps_of(location, run_id)
            assert len(rows) == steps and {r["status"] for r in rows} == {"applied"}
            assert sorted(int(r["result"]) for r in rows) == [2 * n for n in range(1, steps + 1)]
    finally:
        store.close()
    made = counted(calls)
    keys = {f"{run_id}:{step}" for run_id in runs for step in range(2, steps + 2)}  # step 1 is log!
    assert set(made) == keys  # every step's function called, with its run's key, and nothing else
    repeats = sum(n - 1 for n in made.values())
    assert repeats <= kills  # again only across a crash: at most the step in hand at each kill


# -- a paused worker is fenced ----------------------------------------------------------------------------

def test_a_worker_paused_past_its_lease_cannot_commit_an_inline_result(location, calls, tmp_path):
    run_id = create(location, "acme.count/paused", "7")
    command = ("worker", "--connector", MODULE, "--no-connectors", "--store", location, "--lease", "1",
               "--poll", "0.05")
    first = Proc(tmp_path, "first", *command)
    second = None
    try:
        marks = Path(os.environ["INLINE_MARKS"])
        deadline = time.monotonic() + 60
        while not any(marks.iterdir()):  # the first call of pause! sleeps 4 s in the first worker
            assert time.monotonic() < deadline and first.proc.poll() is None, first.logged()
            time.sleep(0.02)
        first.signal(signal.SIGSTOP)
        second = Proc(tmp_path, "second", *command)
        ended = wait_ended(location, [run_id], timeout=60, procs=(first, second))
        first.signal(signal.SIGCONT)  # its function returns, and it tries to go on with the run
        deadline = time.monotonic() + 30
        while "left to another worker" not in first.logged():
            assert time.monotonic() < deadline, first.logged()
            time.sleep(0.05)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert ended[run_id].status == "completed" and ended[run_id].result == str(2 + 14 + 4)
    rows = {row["step"]: row for row in steps_of(location, run_id)}
    pause = next(r for r in rows.values() if r["endpoint"] == "acme.count/pause!")
    assert pause["status"] == "applied" and pause["result"] == "14"
    # The first worker held the step by the run's lease alone: the second asked a connector (its own) once.
    assert pause["claim_epoch"] == 1 and pause["claimed_by"].startswith("worker:")
    made = counted(calls)
    assert made[f"{run_id}:{pause['step']}"] == 2  # performed again after the first lost it, same key
    store = open_store(location)
    try:
        events = store.events(run_id)
    finally:
        store.close()
    assert Counter(e.step for e in events if e.kind == "step-completed")[pause["step"]] == 1
    assert [e.kind for e in events].count("run-completed") == 1


# -- slow functions ---------------------------------------------------------------------------------------

def test_a_function_slower_than_the_lease_keeps_its_step(location, calls, tmp_path):
    run_id = create(location, "acme.count/slowly", "2.5")
    # Another process serves the endpoint too: it would perform the step again if its lease lapsed.
    connector = Proc(tmp_path, "connector", "connector", MODULE, "--store", location, "--poll", "0.05",
                     "--lease", "1")
    try:
        done = flowmetal("worker", "--once", "--no-connectors", "--connector", MODULE, "--store", location,
                         "--lease", "1", "--poll", "0.05", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    finally:
        connector.stop()
    ended = wait_ended(location, [run_id], timeout=10)
    assert ended[run_id].status == "completed" and ended[run_id].result == "2.5"
    assert counted(calls) == Counter({f"{run_id}:1": 1})
    assert not inline_claims(location, run_id)[0].startswith(("connector:", "worker:"))


def test_a_stopping_worker_gives_a_slow_step_back_for_a_connector(tmp_path, calls):
    location = str(tmp_path / "store.db")
    run_id = create(location, "acme.count/slowly", "8.0")
    worker = Proc(tmp_path, "worker", "worker", "--no-connectors", "--connector", MODULE, "--store", location,
                  "--poll", "0.05")
    deadline = time.monotonic() + 60
    while not counted(calls):
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.logged()
        time.sleep(0.02)
    assert worker.stop() == 0  # after the grace (5 s), not the function's 8 s
    rows = steps_of(location, run_id)
    assert [(r["status"], r["claimed_by"]) for r in rows] == [("pending", None)]
    store = open_store(location)
    try:
        assert store.get_run(run_id).status == "waiting"
    finally:
        store.close()


# -- refused at the start ---------------------------------------------------------------------------------

@pytest.mark.parametrize("module, message", [
    ("empty_module.py", "empty_module.py: no @endpoint functions"),
    ("no/such/file.py", "no such file"),
    ("no_such_module_anywhere", "no module named `no_such_module_anywhere`"),
    ("bad_endpoint_module.py", "importing it failed: ValueError: an endpoint name is `package/name!`"),
])
def test_a_module_the_worker_cannot_host_is_one_line_and_exit_2(tmp_path, module, message):
    done = flowmetal("worker", "--once", "--connector", module, "--store", str(tmp_path / "s.db"), cwd=HERE)
    assert done.returncode == 2
    assert done.stderr.startswith("flowmetal worker: error: ") and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
