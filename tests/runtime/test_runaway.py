"""Runaway runs, in real processes: a run that computes for ever (a loop that never waits)
shares `flowmetal serve`'s executors with the others, ends when cancelled, lets serve and
`flowmetal worker` stop on SIGTERM (released, runnable again), keeps its lease so a second
worker never takes it, and a recursion without end fails its run with a clear fault."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from flowmetal.runtime.store import SQLiteStore
from procs import flowmetal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))
from server_kit import Serve  # noqa: E402
from tests.waits import until

PROGRAM = """\
(defpackage runaway
  (defn spin [n : int?] : int? (spin (+ n 1)))
  (defn deep [n : int?] : int? (if (= n 0) 0 (+ 1 (deep (- n 1)))))
  (defn quick [n : int?] : int? (+ n 1)))
"""
SOURCES = {"runaway.flow": PROGRAM}
FINAL = ("completed", "failed", "cancelled")


class Api:
    def __init__(self, serve: Serve) -> None:
        self.client = httpx.Client(base_url=serve.url, timeout=30)

    def start(self, entry: str, *args: str) -> str:
        response = self.client.post("/api/runs", json={"sources": SOURCES, "entry": entry, "args": list(args)})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, run_id: str) -> dict:
        return self.client.get(f"/api/runs/{run_id}").json()

    def trace(self, run_id: str) -> list[dict]:
        return self.client.get(f"/api/runs/{run_id}/trace").json()


def store_run(path: Path, run_id: str):
    store = SQLiteStore(path)
    try:
        return store.get_run(run_id)
    finally:
        store.close()


def check_log(events: list[dict], end: str) -> None:
    """Seqs 1..n in order, nothing logged twice, one end, the one expected."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(n == 1 for n in Counter((e["kind"], e.get("step")) for e in events).values())
    ends = [e["kind"] for e in events if e["kind"] in ("run-completed", "run-failed", "run-cancelled")]
    assert ends == [end]


def test_a_normal_run_completes_while_runaway_runs_hold_every_executor(tmp_path):
    with Serve(tmp_path / "store.db", env={"FLOWMETAL_EXECUTORS": "2"}) as serve:
        api = Api(serve)
        spins = [api.start("runaway/spin", "0") for _ in range(3)]
        # Two executors: two runaway runs at once, each held by its own.
        running = until(lambda: (lambda rs: rs if len(rs) == 2 else None)(
            {r: store_run(serve.store, r).owner for r in spins if api.run(r)["status"] == "running"}))
        assert len(set(running.values())) == 2
        quick = api.start("runaway/quick", "1")
        assert until(lambda: api.run(quick)["status"] in FINAL)
        assert (api.run(quick)["status"], api.run(quick)["result"]) == ("completed", "2")
        # The three runaway runs take turns: each gets an executor.
        seen = set()
        until(lambda: seen.update(r for r in spins if api.run(r)["status"] == "running") or seen == set(spins))
        for run_id in spins:
            assert api.client.post(f"/api/runs/{run_id}/cancel").status_code in (200, 202)
        until(lambda: all(api.run(r)["status"] == "cancelled" for r in spins))
        for run_id in spins:
            check_log(api.trace(run_id), "run-cancelled")
        code, _, err = serve.stop()
        assert code == 0 and "Traceback" not in err, err


def test_cancelling_a_runaway_run_takes_effect(tmp_path):
    with Serve(tmp_path / "store.db") as serve:
        api = Api(serve)
        run_id = api.start("runaway/spin", "0")
        until(lambda: api.run(run_id)["status"] == "running")
        time.sleep(0.5)  # well into its loop
        response = api.client.post(f"/api/runs/{run_id}/cancel")
        assert (response.status_code, response.json()["status"]) == (202, "cancelling")
        until(lambda: api.run(run_id)["status"] == "cancelled", timeout=10)
        check_log(api.trace(run_id), "run-cancelled")
        run = store_run(serve.store, run_id)
        assert run.owner is None and run.lease_until is None
        code, _, err = serve.stop()
        assert code == 0, err


def test_sigterm_stops_serve_and_leaves_the_runaway_run_runnable(tmp_path):
    path = tmp_path / "store.db"
    first = Serve(path).start()
    api = Api(first)
    run_id = api.start("runaway/spin", "0")
    until(lambda: api.run(run_id)["status"] == "running")
    owner = store_run(path, run_id).owner
    time.sleep(0.5)
    first.proc.send_signal(signal.SIGTERM)
    try:
        out, err = first.proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        first.proc.kill()
        first.proc.communicate()
        raise AssertionError("serve did not stop within 10 s of SIGTERM") from None
    assert first.proc.returncode == 0, err
    assert "stopping" in out and "Traceback" not in err
    run = store_run(path, run_id)
    assert (run.status, run.owner, run.lease_until) == ("pending", None, None)
    store = SQLiteStore(path)
    assert store.snapshot(run_id)["waiting"] is None  # a checkpoint of where it was
    assert [e.kind for e in store.events(run_id)] == ["run-started"]
    # A new serve on the store takes the run up again.
    with Serve(path) as second:
        api = Api(second)
        until(lambda: api.run(run_id)["status"] == "running")
        assert store_run(path, run_id).owner not in (None, owner)
        api.client.post(f"/api/runs/{run_id}/cancel")
        until(lambda: api.run(run_id)["status"] == "cancelled", timeout=10)
        check_log(api.trace(run_id), "run-cancelled")
        code, _, err = second.stop()
        assert code == 0, err


def worker(path: Path, lease: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--store", str(path), "--lease", str(lease),
                             "--poll", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the worker did not stop within 10 s") from None
    return proc.returncode, err


def test_a_second_worker_never_takes_a_run_the_first_is_working(tmp_path):
    path = tmp_path / "store.db"
    (tmp_path / "runaway.flow").write_text(PROGRAM)
    done = flowmetal("run", "--detach", "--store", str(path), "runaway.flow", "runaway/spin", "0", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    first = worker(path, lease=1.0)
    second = None
    try:
        owner = until(lambda: store_run(path, run_id).owner)
        second = worker(path, lease=1.0)
        # Three leases' time: the first worker renews its lease, the second never gets the run.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            run = store_run(path, run_id)
            assert (run.status, run.owner) == ("running", owner)
            time.sleep(0.05)
        # SIGTERM: the first worker releases the run and exits; the second takes it up.
        code, err = stopped(first)
        assert code == 0 and "Traceback" not in err, err
        heir = until(lambda: (lambda o: o if o not in (None, owner) else None)(store_run(path, run_id).owner))
        assert heir != owner
        cancel = flowmetal("cancel", "--store", str(path), run_id, cwd=tmp_path)
        assert cancel.returncode == 0 and "cancelling" in cancel.stdout, cancel.stderr
        until(lambda: store_run(path, run_id).status == "cancelled", timeout=10)
        code, err = stopped(second, signal.SIGINT)
        assert code == 130 and "Traceback" not in err, err
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    trace = flowmetal("trace", "--store", str(path), "--format", "json", run_id, cwd=tmp_path)
    check_log(json.loads(trace.stdout), "run-cancelled")


@pytest.mark.slow
def test_a_recursion_without_end_fails_the_run_with_a_clear_fault(tmp_path):
    from flowmetal.runtime.machine import MAX_DEPTH, TRACE_KEEP
    path = tmp_path / "store.db"
    (tmp_path / "runaway.flow").write_text(PROGRAM)
    done = flowmetal("run", "--store", str(path), "runaway.flow", "runaway/deep", "10000000", cwd=tmp_path,
                     timeout=120)
    assert done.returncode == 1
    first, *lines = done.stderr.strip().splitlines()
    assert first.startswith("flowmetal run: run ") and first.endswith(": runaway/deep")
    assert lines[0] == f"fault: call stack too deep: more than {MAX_DEPTH} frames (a recursion that does not end?)"
    assert lines[1:-1] == ["  in runaway/deep, line 3"] * TRACE_KEEP
    assert lines[-1] == f"  ... and {MAX_DEPTH - TRACE_KEEP} more calls"
    assert "Traceback" not in done.stderr
    (run,) = json.loads(flowmetal("runs", "--store", str(path), "--format", "json", cwd=tmp_path).stdout)
    assert run["status"] == "failed" and run["error"].startswith("fault: call stack too deep")
    trace = flowmetal("trace", "--store", str(path), "--format", "json", run["id"], cwd=tmp_path)
    events = json.loads(trace.stdout)
    check_log(events, "run-failed")
    failed = events[-1]
    assert failed["error"].startswith("call stack too deep")
    assert len(failed["trace"]) == TRACE_KEEP and failed["trace_omitted"] == MAX_DEPTH - TRACE_KEEP


def test_bad_settings_are_named_not_guessed(tmp_path):
    refused = flowmetal("worker", "--once", "--lease", "0", "--store", str(tmp_path / "store.db"), cwd=tmp_path)
    assert refused.returncode == 2 and "--lease: must be a number of seconds above 0, not 0" in refused.stderr
    with Serve(tmp_path / "store.db", env={"FLOWMETAL_EXECUTORS": "lots"}) as serve:
        api = Api(serve)
        run_id = api.start("runaway/quick", "1")
        assert until(lambda: api.run(run_id)["status"] == "completed")
        code, _, err = serve.stop()
    assert code == 0
    assert "FLOWMETAL_EXECUTORS must be a whole number from 1 to 64, not 'lots'; running 4 executors" in err
