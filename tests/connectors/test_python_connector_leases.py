"""Python connectors and time: a function slower than its step's lease keeps the lease renewed,
so it is called once however many `flowmetal connector` processes share the store; slow
functions do not hold up fast ones; a result is recorded only while the claim is the
connector's own (a cancelled run's, or a step taken over, is dropped with a log line); and
SIGINT or SIGTERM gives the steps still running back for the next connector. Real processes
on a real store; each call of a function is counted in a file."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from connector_helpers import drive, start_run
from flowmetal.connectors.sdk import Connector, endpoints_of, load_module
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import SQLiteStore

HERE = Path(__file__).resolve().parent
SOURCES = {"slow.flow": (HERE / "slow.flow").read_text(encoding="utf-8")}
MODULE = HERE / "slow_endpoints.py"


def wait_until(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Process:
    """`flowmetal connector slow_endpoints.py` on the store, its stderr in a file."""

    def __init__(self, store: Path, log: Path, *options: str) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "connector", str(MODULE), "--store",
                                          str(store), "--poll", "0.02", *options], cwd=HERE, env=env,
                                         stdout=subprocess.DEVNULL, stderr=out, start_new_session=True)
        assert wait_until(lambda: "serving" in self.output() or self.proc.poll() is not None), self.output()
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "store.db")
    yield s
    s.close()


@pytest.fixture
def connectors(tmp_path, store):
    """Starts connector processes on the store; stops those still running at the end."""
    started: list[Process] = []

    def start(*options: str) -> Process:
        process = Process(Path(store.path), tmp_path / f"connector-{len(started)}.log", *options)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def calls_in(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def waiting(store: SQLiteStore, entry: str, *args: str) -> str:
    """A run of `entry` that has asked for its step 1 and waits (not held for the answer: the
    functions here are slow). A connector running may have claimed the step already."""
    run_id = start_run(store, SOURCES, entry, list(args))
    Executor(store, hold=0).run_once(run_id)
    assert store.step(run_id, 1)["status"] in ("pending", "claimed")
    return run_id


def test_a_function_slower_than_its_lease_runs_once_with_two_connectors_on_the_store(store, connectors,
                                                                                      tmp_path):
    calls = tmp_path / "calls"
    # The lease (1 s) runs out three times over while the function sleeps 3 s.
    connectors("--lease", "1")
    connectors("--lease", "1")
    run_id = waiting(store, "acme.slow/once", json.dumps(str(calls)), "3.0")
    assert drive(store, run_id, until=20) == "completed"
    assert store.get_run(run_id).result == '"slept 3 s"'
    assert len(calls_in(calls)) == 1, calls_in(calls)


def test_a_slow_function_does_not_hold_up_a_fast_one(store, connectors, tmp_path):
    calls, release = tmp_path / "calls", tmp_path / "release"
    connectors("--lease", "1")
    held = waiting(store, "acme.slow/hold", json.dumps(str(calls)), json.dumps(str(release)))
    assert wait_until(lambda: calls_in(calls)), "the slow function was never called"
    fast = waiting(store, "acme.slow/quick", "41")
    assert drive(store, fast) == "completed"
    assert store.get_run(fast).result == "42"
    # It went through while the slow one was still running, its claim kept.
    assert store.step(held, 1)["status"] == "claimed"
    release.touch()
    assert drive(store, held) == "completed"
    assert store.get_run(held).result == '"released"'
    assert len(calls_in(calls)) == 1


def test_the_result_of_a_step_whose_run_was_cancelled_meanwhile_is_dropped_with_a_log_line(store, connectors,
                                                                                            tmp_path):
    calls, release = tmp_path / "calls", tmp_path / "release"
    process = connectors("--lease", "1")
    run_id = waiting(store, "acme.slow/hold", json.dumps(str(calls)), json.dumps(str(release)))
    assert wait_until(lambda: calls_in(calls))
    assert store.request_cancel(run_id) == "cancelled"
    release.touch()
    assert wait_until(lambda: "result is dropped" in process.output()), process.output()
    line = next(line for line in process.output().splitlines() if "result is dropped" in line)
    assert run_id in line and "acme.slow/held!" in line and "cancelled" in line
    row = store.step(run_id, 1)
    assert (row["status"], row["result"]) == ("cancelled", None)
    assert store.get_run(run_id).status == "cancelled"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_gives_back_the_steps_still_running_for_the_next_connector(store, connectors, tmp_path,
                                                                             signum):
    calls, release = tmp_path / "calls", tmp_path / "release"
    process = connectors("--grace", "0.2")
    run_id = waiting(store, "acme.slow/hold", json.dumps(str(calls)), json.dumps(str(release)))
    assert wait_until(lambda: calls_in(calls))
    assert process.stop(signum) == 128 + signum, process.output()
    assert "gave back 1 step(s)" in process.output()
    row = store.step(run_id, 1)
    assert (row["status"], row["claimed_by"], row["lease_until"]) == ("pending", None, None)
    # Taken at once by the next connector, with no lease to wait out, and performed again.
    release.touch()
    with Connector(endpoints_of(load_module(str(MODULE))), store, worker="next") as heir:
        assert heir.run_once() == 1
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == '"released"'
    assert len(calls_in(calls)) == 2


def test_stopping_lets_a_function_finish_within_the_grace_and_records_it(store, connectors, tmp_path):
    calls = tmp_path / "calls"
    process = connectors()  # the grace is 5 s
    run_id = waiting(store, "acme.slow/once", json.dumps(str(calls)), "1.0")
    assert wait_until(lambda: calls_in(calls))
    assert process.stop(signal.SIGTERM) == 128 + signal.SIGTERM, process.output()
    assert "gave back" not in process.output()
    assert store.step(run_id, 1)["status"] == "completed"
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == '"slept 1 s"'
    assert len(calls_in(calls)) == 1


# -- in this process: a claim taken over, and the bound ---------------------------------------------------


def test_a_step_taken_over_after_the_lease_lapsed_is_recorded_by_its_new_holder_only(store, tmp_path, caplog):
    calls, release = tmp_path / "calls", tmp_path / "release"
    endpoints = endpoints_of(load_module(str(MODULE)))
    run_id = waiting(store, "acme.slow/hold", json.dumps(str(calls)), json.dumps(str(release)))
    with Connector(endpoints, store, worker="stalled", lease=0.3) as stalled:
        assert stalled.claim(stalled.capacity()) == 1
        assert wait_until(lambda: calls_in(calls))
        # Nothing renews meanwhile (as when the store stays locked past the lease): another
        # connector takes the step over.
        time.sleep(0.5)
        (taken,) = store.claim_steps(sorted(endpoints), "heir", lease=30)
        assert (taken["run_id"], taken["step"]) == (run_id, 1)
        release.touch()
        with caplog.at_level(logging.WARNING, logger="flowmetal.connectors.sdk"):
            while stalled.in_flight:
                stalled.collect(0.1)
    assert any("result is dropped" in r.getMessage() and run_id in r.getMessage() and "claimed by `heir`" in
               r.getMessage() for r in caplog.records)
    row = store.step(run_id, 1)
    assert (row["status"], row["claimed_by"], row["result"]) == ("claimed", "heir", None)
    assert store.complete_claimed_step(run_id, 1, "heir", json.dumps("the heir's"))
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result == '"the heir\'s"'


def test_no_more_steps_are_claimed_than_functions_can_run_at_once(store, tmp_path):
    calls, release = tmp_path / "calls", tmp_path / "release"
    endpoints = endpoints_of(load_module(str(MODULE)))
    runs = [waiting(store, "acme.slow/hold", json.dumps(str(calls)), json.dumps(str(release))) for _ in range(3)]
    stop = threading.Event()
    own = SQLiteStore(store.path)
    connector = Connector(endpoints, own, worker="pair", concurrency=2)
    thread = threading.Thread(target=connector.serve, kwargs={"poll": 0.02, "stop": stop}, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(calls_in(calls)) == 2)
        time.sleep(0.2)  # time for a wrongful third claim to show
        assert sorted(store.step(r, 1)["status"] for r in runs) == ["claimed", "claimed", "pending"]
        release.touch()
        for run_id in runs:
            assert drive(store, run_id) == "completed"
    finally:
        stop.set()
        thread.join(15)
        own.close()
    assert not thread.is_alive()
    assert len(calls_in(calls)) == 3
