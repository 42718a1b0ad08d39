"""The seed's example, corrected, end to end: `flowmetal run` posts the job to a (fake)
wilson service on 127.0.0.1 through the HTTP request connector, and waits for its
callback through the callback server, all in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))
import wilson_service  # noqa: E402


def test_the_wilson_job_runs_end_to_end(tmp_path):
    import os
    import socket
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
