"""The seed's example, corrected, end to end: `flowmetal run` posts the job to a (fake)
wilson service on 127.0.0.1 through the HTTP request connector, and waits for its
callback through the callback server, all in one process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))
import wilson_service  # noqa: E402


def test_the_wilson_job_runs_end_to_end(tmp_path):
    import os
    import socket
    with wilson_service.LOCK:  # the fake service's jobs outlive the tests that made them
        wilson_service.JOBS.clear()
    service = wilson_service.serve(port=0, delay=0.3)
    url = f"http://127.0.0.1:{service.server_port}/jobs"
    with socket.socket() as s:  # callbacks on a port of this test's own, not the default 8700
        s.bind(("127.0.0.1", 0))
        public = f"http://127.0.0.1:{s.getsockname()[1]}"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "flowmetal", "run", str(ROOT / "examples" / "wilson.flow"), "job",
             '"host-1"', "[+reboot+ +reinstall+]", "(duration 1 +hours+)", json.dumps(url)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "FLOWMETAL_PUBLIC_URL": public})
        assert result.returncode == 0, result.stderr
        assert result.stdout == '{"host" "host-1" "stages" ["reboot" "reinstall"] "status" "done"}\n'
        jobs = json.loads(urllib.request.urlopen(url).read())
    finally:
        service.shutdown()
    (job,) = [j for j in jobs if j["host"] == "host-1"]
    runs = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "runs", "--format", "json"], cwd=tmp_path,
                                     capture_output=True, text=True, timeout=60).stdout)
    (run,) = runs
    # The service saw one request, with the idempotency key of its step, and called back once.
    assert job["key"] == f"{run['id']}:2"
    assert job["callbacks"][0]["url"].startswith(f"{public}/callback/")
    events = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "trace", run["id"], "--format", "json"],
                                       cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout)
    kinds = [e["kind"] for e in events]
    assert kinds.count("step-requested") == 5 and kinds[-1] == "run-completed"


def test_wilson_under_serve_survives_kill_9_while_waiting_for_its_callback(tmp_path):
    """`serve` posts the job (request connector), is killed -9 while the run waits for the
    callback, and a new `serve` on the same store and port takes the callback: the run
    completes once, and the service saw the one request, with one idempotency key."""
    import time

    import httpx

    sys.path.insert(0, str(ROOT / "tests" / "server"))
    from server_kit import Serve

    service = wilson_service.serve(port=0, delay=4.0)  # calls back after the restart
    url = f"http://127.0.0.1:{service.server_port}/jobs"
    path = tmp_path / "store.db"
    first = Serve(path).start()
    second = None
    try:
        answer = httpx.post(first.url + "/api/runs", json={
            "sources": {"wilson.flow": (ROOT / "examples" / "wilson.flow").read_text(encoding="utf-8")},
            "entry": "com.twitter.wilson/job",
            "args": ['"host-9"', "[+reinstall+]", "(duration 1 +hours+)", json.dumps(url)]}, timeout=30)
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = httpx.get(f"{first.url}/api/runs/{run_id}/trace", timeout=10).json()
            if any(e["kind"] == "step-requested" and e.get("endpoint") == "http.callback/get-callback!"
                   for e in events):
                break
            time.sleep(0.05)
        first.kill9()
        second = Serve(path, port=first.port).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = httpx.get(f"{second.url}/api/runs/{run_id}", timeout=10).json()
            if run["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        assert (run["status"], run["result"]) == (
            "completed", '{"host" "host-9" "stages" ["reinstall"] "status" "done"}'), run
        events = httpx.get(f"{second.url}/api/runs/{run_id}/trace", timeout=10).json()
        jobs = json.loads(urllib.request.urlopen(url).read())
    finally:
        service.shutdown()
        if second is not None:
            second.stop()
    (job,) = [j for j in jobs if j["host"] == "host-9"]  # (the service's jobs are per process)
    assert job["key"] == f"{run_id}:2"
    requested = [e["step"] for e in events if e["kind"] == "step-requested"]
    assert requested == sorted(set(requested))
    assert [e["kind"] for e in events].count("run-completed") == 1


def test_the_fleet_example_reboots_its_hosts_at_once(tmp_path):
    """`examples/fleet.flow`, as the README runs it: one task a host, the jobs posted and their
    callbacks awaited together (every host's wait began before the first callback came)."""
    import os
    import socket
    service = wilson_service.serve(port=0, delay=1.0)
    url = f"http://127.0.0.1:{service.server_port}/jobs"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        public = f"http://127.0.0.1:{s.getsockname()[1]}"
    hosts = ["fleet-1", "fleet-2", "fleet-3"]  # the fake service's jobs outlive a test: names of its own
    try:
        result = subprocess.run(
            [sys.executable, "-m", "flowmetal", "run", str(ROOT / "examples" / "fleet.flow"), "reboot-all",
             json.dumps(hosts).replace(",", ""), json.dumps(url)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "FLOWMETAL_PUBLIC_URL": public})
        jobs = json.loads(urllib.request.urlopen(url).read())
    finally:
        service.shutdown()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[" + " ".join(
        f'{{"host" "{h}" "stages" ["reboot"] "status" "done"}}' for h in hosts) + "]\n"
    jobs = [j for j in jobs if j["host"] in hosts]
    assert sorted(j["host"] for j in jobs) == hosts and len({j["key"] for j in jobs}) == 3
    (run,) = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "runs", "--format", "json"], cwd=tmp_path,
                                       capture_output=True, text=True, timeout=60).stdout)
    events = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "trace", run["id"], "--format", "json"],
                                       cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout)
    waits = [e for e in events if e["kind"] == "step-requested" and e["endpoint"] == "http.callback/get-callback!"]
    answers = [e for e in events if e["kind"] == "step-completed" and e["step"] in {w["step"] for w in waits}]
    assert sorted(w["task"] for w in waits) == [1, 2, 3]
    assert max(w["seq"] for w in waits) < min(a["seq"] for a in answers)


def test_wilson_retries_while_the_service_refuses_connections_then_posts_the_job(tmp_path):
    """`flowmetal run` with no service listening yet: the post is refused, retry! logs the
    attempt and sleeps (a durable timer); the service comes up, a later attempt posts the
    job, and the run completes. Its log replays and verifies."""
    import socket
    import time

    from flowmetal.runtime.store import StoreError, open_store

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens here now: connections are refused
    url = f"http://127.0.0.1:{port}/jobs"
    run = subprocess.Popen(
        [sys.executable, "-m", "flowmetal", "run", str(ROOT / "examples" / "wilson.flow"), "job",
         '"host-2"', "[+reboot+]", "(duration 1 +hours+)", json.dumps(url)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    service = None
    try:
        deadline = time.monotonic() + 60
        refused = False
        while not refused and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
            try:  # (the store may not be there yet, or not have its tables yet)
                store = open_store(str(tmp_path / ".flowmetal" / "store.db"), readonly=True)
            except StoreError:
                continue
            try:
                refused = any(e.kind == "log" and e.data["message"].startswith("attempt 1 of 8 failed")
                              for r in store.list_runs() for e in store.events(r.id))
            finally:
                store.close()
        assert refused, "the first attempt was not refused and logged"
        service = wilson_service.serve(port=port, delay=0.3)
        out, err = run.communicate(timeout=120)
        jobs = json.loads(urllib.request.urlopen(url).read())
    finally:
        if run.poll() is None:
            run.kill()
        if service is not None:
            service.shutdown()
    assert run.returncode == 0, err
    assert out == '{"host" "host-2" "stages" ["reboot"] "status" "done"}\n'
    (run_record,) = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "runs", "--format", "json"],
                                              cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout)
    run_id = run_record["id"]
    events = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "trace", run_id, "--format", "json"],
                                       cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout)
    posts = [e for e in events if e["kind"] == "step-requested" and e["endpoint"] == "http.request/post!"]
    results = {e["step"]: e["result"] for e in events if e["kind"] == "step-completed"}
    assert len(posts) >= 2
    assert all(results[p["step"]].startswith("(connection-error ") for p in posts[:-1])
    assert results[posts[-1]["step"]].startswith("(response 202 ")
    failures = [e["message"] for e in events if e["kind"] == "log" and " failed: " in e["message"]]
    assert len(failures) == len(posts) - 1
    assert failures[0].startswith('attempt 1 of 8 failed: (connection-error "')
    assert re.search(r"; retrying after \(duration \d+ \+milliseconds\+\)$", failures[0])
    timers = [e for e in events if e["kind"] == "timer-set"]
    assert len(timers) >= len(posts) - 1  # a durable sleep after each failure (and the job's timeout)
    # The service took the job once, from the attempt that reached it, under that step's key.
    (job,) = [j for j in jobs if j["host"] == "host-2"]
    assert job["key"] == f"{run_id}:{posts[-1]['step']}"
    replayed = subprocess.run([sys.executable, "-m", "flowmetal", "replay", run_id, "--verify"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
