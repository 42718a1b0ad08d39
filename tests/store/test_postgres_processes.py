"""Real processes on one PostgreSQL store (`postgres_url`): `flowmetal run` of a run that
sleeps and of one that waits for a callback, a `serve` and a `worker` completing runs
woken by callbacks POSTed over HTTP, two workers claiming at once without ever running
a run twice, and workers killed with SIGKILL at random instants losing no run and
applying no step twice."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fleet_kit import Charges, Process  # noqa: E402
from server_kit import PROGRAM, Serve, free_port  # noqa: E402

from flowmetal.runtime.program import code_hash  # noqa: E402
from flowmetal.runtime.store import open_store  # noqa: E402
from tests.waits import until as wait_until

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
    worker = Process("worker", ["worker", "--store", postgres_url], tmp_path)
    with Serve(postgres_url, cwd=tmp_path, env={"FLOWMETAL_EXECUTORS": "1"}) as serve:
        store = open_store(postgres_url)
        try:
            worker.start()
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
            stopped = worker.stop()
    assert stopped == 0, worker.logged()


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


CRASH = """\
(defpackage crash.test
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [flowmetal.log :refer [log!]])
  (defendpoint charge! [amount : int?] : int? "Charge, outside the interpreter.")
  (defn charges [n : int? i : int? total : int?] : int?
    (if (= i 0)
      total
      (let [a (charge! (+ n i))]
        (sleep! (make-duration 20 +milliseconds+))
        (charges n (- i 1) (+ total a)))))
  (defn job [n : int?] : int?
    (let [total (charges n 5 0)]
      (log! (str "done " n))
      total)))
"""


def test_workers_killed_at_random_instants_lose_no_run_and_apply_no_step_twice(tmp_path: Path, postgres_url: str):
    store = open_store(postgres_url)
    sources = {"crash.flow": CRASH}
    stored = store.put_sources(sources)
    runs = {}
    service = Charges(postgres_url, "crash.test/charge!", every=0.005)
    service.start()
    rng = random.Random(20261202)
    procs, progress = [], []
    try:
        for cycle in range(25):
            for n in range(2):  # new runs keep coming, so that a worker is busy whenever it is killed
                value = cycle * 2 + n
                runs[store.create_run("crash.test/job", [str(value)], stored, code_hash(sources))] = value
            # Two workers at once, one killed each cycle: claims race, and leases lapse under them.
            procs.append(Process(f"worker-{cycle}", ["worker", "--store", postgres_url, "--lease", "0.5",
                                                     "--poll", "0.01"], tmp_path).start())
            time.sleep(rng.uniform(0.3, 0.8))
            if len(procs) > 1:
                procs.pop(rng.randrange(len(procs))).kill9()
                progress.append(sum(r.next_seq for r in store.list_runs()))  # events logged so far
        # The kills fell while there was work to do: the logs grew between most of them.
        assert sum(1 for a, b in zip(progress, progress[1:]) if b > a) > 15, progress
        wait_until(lambda: {r.status for r in store.list_runs()} <= {"completed", "failed", "cancelled"},
                   "every run to end", timeout=180)
    finally:
        for proc in procs:
            proc.kill9()
        service.stop.set()
    for run_id, n in runs.items():
        run = store.get_run(run_id)
        assert (run.status, run.result) == ("completed", str(sum(2 * (n + i) for i in range(1, 6)))), run
        events = store.events(run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        completed = Counter(e.step for e in events if e.kind == "step-completed")
        assert all(c == 1 for c in completed.values())
        assert [e.data["message"] for e in events if e.kind == "log"] == [f"done {n}"]
        assert [store.step(run_id, k)["status"] for k in range(1, 10, 2)] == ["applied"] * 5
    assert set(service.seen.values()) == {1} and len(service.seen) == 5 * len(runs)
    store.close()


APPROVE = """\
(defpackage approve
  (require [flowmetal.signal :refer [receive!]])
  (defn main [] [(receive! "approve") (receive! "approve")]))
"""


def test_the_run_commands_work_on_a_postgresql_url(tmp_path: Path, postgres_url: str):
    """`run --detach`, `signal`, `cancel`, `worker`, `runs`, `trace` and `replay --verify`, each a
    process of its own, on one PostgreSQL store."""
    (tmp_path / "approve.flow").write_text(APPROVE)
    store = ["--store", postgres_url]
    signalled = flowmetal("run", "approve.flow", "approve/main", "--detach", *store, cwd=tmp_path).stdout.strip()
    cancelled = flowmetal("run", "approve.flow", "approve/main", "--detach", *store, cwd=tmp_path).stdout.strip()
    assert signalled and cancelled and signalled != cancelled
    for n, body in enumerate(('{"by": "ann"}', '"bob"'), 1):
        sent = flowmetal("signal", signalled[:8], "approve", body, *store, cwd=tmp_path)
        assert (sent.returncode, sent.stdout) == (0, f"{signalled} signal #{n} approve queued\n"), sent.stderr
    cancel = flowmetal("cancel", cancelled, *store, cwd=tmp_path)
    assert cancel.returncode == 0, cancel.stderr
    worked = flowmetal("worker", "--once", "--no-connectors", *store, cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    listed = {r["id"]: r for r in json.loads(flowmetal("runs", "--format", "json", *store, cwd=tmp_path).stdout)}
    assert (listed[signalled]["status"], listed[signalled]["result"]) == ("completed", '[{"by" "ann"} "bob"]')
    assert listed[cancelled]["status"] == "cancelled"
    trace = flowmetal("trace", signalled, *store, cwd=tmp_path)
    assert trace.returncode == 0 and "signal" in trace.stdout and "run-completed" in trace.stdout, trace.stdout
    assert "run-cancelled" in flowmetal("trace", cancelled, *store, cwd=tmp_path).stdout
    replay = flowmetal("replay", signalled, "--verify", *store, cwd=tmp_path)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    ended = flowmetal("signal", cancelled, "approve", "1", *store, cwd=tmp_path)
    assert ended.returncode == 1 and f"run `{cancelled}` has ended (cancelled)" in ended.stderr
    assert not (tmp_path / ".flowmetal").exists()  # nothing fell back to an SQLite file
