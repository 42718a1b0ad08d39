"""Real processes on one PostgreSQL store (`postgres_url`): `flowmetal run` of a run that
sleeps and of one that waits for a callback, a `serve` and a `worker` completing runs
woken by callbacks POSTed over HTTP, and two workers claiming at once without ever
running a run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_kit import PROGRAM, Serve, free_port  # noqa: E402

from flowmetal.runtime.store import open_store  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def flowmetal(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_env(env))


def _env(more: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWMETAL_STORE", "FLOWMETAL_PUBLIC_URL")}
    return {**env, **(more or {})}


def spawn(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def callback_url(store, run_id: str) -> str | None:
    """The callback URL the run logged (PROGRAM's `hook` logs it first), once it has."""
    for event in store.events(run_id, kind="log"):
        if "/callback/" in str(event.data):
            return next(v for v in event.data.values() if isinstance(v, str) and "/callback/" in v)
    return None


def test_flowmetal_run_drives_a_sleeping_run_on_postgresql(tmp_path: Path, postgres_url: str):
    result = flowmetal("run", str(EXAMPLES / "hello.flow"), "greet", '"pg"', "--store", postgres_url, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, '"Hello, pg!"\n'), result.stderr
    runs = flowmetal("runs", "--store", postgres_url, "--format", "json", cwd=tmp_path)
    [run] = json.loads(runs.stdout)
    assert (run["status"], run["result"], run["parent"]) == ("completed", '"Hello, pg!"', None)
    trace = flowmetal("trace", run["id"], "--store", postgres_url, cwd=tmp_path)
    assert "timer-fired" in trace.stdout and "run-completed" in trace.stdout, trace.stdout
    replay = flowmetal("replay", run["id"], "--verify", "--store", postgres_url, cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert not (tmp_path / ".flowmetal").exists()  # nothing fell back to an SQLite file


def test_flowmetal_run_waits_for_a_callback_on_postgresql(tmp_path: Path, postgres_url: str):
    (tmp_path / "shop.flow").write_text(PROGRAM)
    port = free_port()
    proc = spawn("run", "shop.flow", "hook", "--store", postgres_url, cwd=tmp_path,
                 env={"FLOWMETAL_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    store = open_store(postgres_url)
    try:
        run_id = wait_until(lambda: [r.id for r in store.list_runs()], "the run")[0]
        url = wait_until(lambda: callback_url(store, run_id), "the callback URL")
        assert url.startswith(f"http://127.0.0.1:{port}/callback/")
        # The server `flowmetal run` starts for callbacks may still be binding its port.
        answer = wait_until(lambda: _post(url, "yes"), "the callback server")
        assert answer.status_code == 200, answer.text
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out) == (0, '"got yes"\n'), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        store.close()


def _post(url: str, body: str):
    try:
        return httpx.post(url, content=body, timeout=10)
    except httpx.TransportError:
        return None


def test_serve_and_a_worker_on_one_postgresql_store_complete_runs_woken_by_callbacks(tmp_path: Path,
                                                                                      postgres_url: str):
    worker = None
    with Serve(postgres_url, cwd=tmp_path, env={"FLOWMETAL_EXECUTORS": "1"}) as serve:
        store = open_store(postgres_url)
        try:
            worker = spawn("worker", "--store", postgres_url, cwd=tmp_path)
            ids = []
            for _ in range(6):
                made = httpx.post(serve.url + "/api/runs", json={"sources": {"shop.flow": PROGRAM},
                                                                  "entry": "shop/hook", "args": []}, timeout=30)
                assert made.status_code == 201, made.text
                ids.append(made.json()["id"])
            urls = {run_id: wait_until(lambda run_id=run_id: callback_url(store, run_id), "callback URLs")
                    for run_id in ids}
            assert all(url.startswith(serve.url + "/callback/") for url in urls.values())
            for i, (run_id, url) in enumerate(urls.items()):
                assert httpx.post(url, content=f"body-{i}", timeout=30).status_code == 200
            done = wait_until(lambda: all(store.get_run(i).status == "completed" for i in ids), "the runs to end")
            assert done
            assert [store.get_run(i).result for i in ids] == [f'"got body-{i}"' for i in range(6)]
            listed = httpx.get(serve.url + "/api/runs", timeout=30).json()
            assert sorted(r["id"] for r in listed) == sorted(ids)
            for run_id in ids:
                kinds = Counter(e.kind for e in store.events(run_id))
                assert kinds["run-started"] == kinds["run-completed"] == 1, kinds
        finally:
            store.close()
            if worker is not None:
                worker.terminate()
                worker.communicate(timeout=30)
    assert worker.returncode == 0


def test_two_workers_claiming_at_once_never_run_a_run_twice(tmp_path: Path, postgres_url: str):
    (tmp_path / "shop.flow").write_text(PROGRAM)
    ids = []
    for i in range(24):
        made = flowmetal("run", "shop.flow", "nap", str(10 * (i % 3)), "--detach", "--store", postgres_url,
                         cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        ids.append(made.stdout.strip())
    workers = [spawn("worker", "--once", "--no-connectors", "--store", postgres_url, cwd=tmp_path) for _ in range(2)]
    logs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    store = open_store(postgres_url)
    try:
        for run_id in ids:
            run = store.get_run(run_id)
            assert run.status == "completed", (run_id, run.status, run.error)
            events = Counter((e.kind, e.step, e.data.get("message")) for e in store.events(run_id))
            # Each event once: a run driven twice would have logged twice, or set its timer twice.
            assert all(n == 1 for n in events.values()), events
            assert {kind for kind, _, _ in events} == {"run-started", "step-requested", "step-completed", "log",
                                                       "timer-set", "timer-fired", "run-completed"}
    finally:
        store.close()
