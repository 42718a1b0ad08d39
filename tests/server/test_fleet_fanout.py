"""A fan-out survives a crash: `examples/fleet.flow` reboots eight hosts at once (one task
per host, each posting a job and waiting for its own callback) through `flowmetal serve`,
which is killed with SIGKILL while the jobs are being posted, then started again.

Every job is asked for under one idempotency key per host however often it was sent,
every callback is applied once, the result is right and in the order of the hosts, and
replay reproduces the run. On both kinds of store: an SQLite file and a PostgreSQL
database (`postgres_url`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server_kit import Serve, free_port
from tests.waits import until as wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTS = [f"host-{i}" for i in range(1, 9)]


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOWMETAL_STORE", "FLOWMETAL_PUBLIC_URL")}
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


class Jobs:
    """A fake job service: records each POST /jobs as it arrives, answers it a second later,
    and calls back only when the test says."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []  # (Idempotency-Key, body)
        self.lock = threading.Lock()
        jobs = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with jobs.lock:
                    jobs.posts.append((self.headers.get("Idempotency-Key"), body))
                time.sleep(1.0)  # a slow service: the crash falls while requests are in flight
                answer = json.dumps({"id": body["host"]}).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jobs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hosts(self) -> set[str]:
        with self.lock:
            return {body["host"] for _, body in self.posts}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "store.db"
    return request.getfixturevalue("postgres_url")


def test_a_fleet_reboot_survives_a_kill_9_in_the_middle_of_its_fan_out(tmp_path: Path, store):
    for name in ("fleet.flow", "wilson.flow"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    jobs = Jobs()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    first = Serve(store, port=port, args=["--public-url", public], cwd=tmp_path).start()
    try:
        started = flowmetal("run", "--detach", "--store", str(store), "fleet.flow", "com.twitter.fleet/reboot-all",
                            json.dumps(HOSTS).replace(",", ""), json.dumps(jobs.url), cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.strip()
        wait_until(lambda: len(jobs.hosts()) >= 3, "the first jobs", timeout=60)
    finally:
        first.kill9()
    with Serve(store, port=port, args=["--public-url", public], cwd=tmp_path):
        wait_until(lambda: jobs.hosts() == set(HOSTS), "every job", timeout=60)
        with jobs.lock:
            callbacks = {body["host"]: body["callbacks"][0]["url"] for _, body in jobs.posts}
        for host in reversed(HOSTS):  # answered in another order than asked
            answer = httpx.post(callbacks[host], json={"host": host, "status": "rebooted"}, timeout=30)
            # 200 delivered to the waiting task, or 202 kept until its task asks for it
            assert answer.status_code in (200, 202), answer.text
        runs = wait_until(lambda: [r for r in json.loads(flowmetal("runs", "--store", str(store), "--format",
                                                                     "json", cwd=tmp_path).stdout)
                                   if r["id"] == run_id and r["status"] in ("completed", "failed")],
                          "the run", timeout=60)
    assert runs[0]["status"] == "completed", runs[0]["error"]
    assert runs[0]["result"] == "[" + " ".join(
        f'{{"host" "{h}" "status" "rebooted"}}' for h in HOSTS) + "]"
    assert len(jobs.posts) > len(HOSTS)  # killed with requests in flight: they were sent again
    keys = defaultdict(set)
    for key, body in jobs.posts:
        keys[body["host"]].add(key)
    assert all(len(k) == 1 for k in keys.values()), keys  # a job sent again is sent with its key
    assert len({k for ks in keys.values() for k in ks}) == len(HOSTS)
    events = json.loads(flowmetal("trace", "--store", str(store), run_id, "--format", "json", cwd=tmp_path).stdout)
    waits = {e["step"] for e in events if e["kind"] == "step-requested"
             and e["endpoint"] == "http.callback/get-callback!"}
    delivered = [e for e in events if e["kind"] == "step-completed" and e["step"] in waits]
    assert sorted(json.loads(json.loads(e["result"]))["host"] for e in delivered) == sorted(HOSTS)
    assert sorted({e["task"] for e in delivered}) == list(range(1, len(HOSTS) + 1))
    verified = flowmetal("replay", "--store", str(store), run_id, "--verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
