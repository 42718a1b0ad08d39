"""`flowmetal worker` as an operator meets it, a real process on a real store: it performs the
HTTP request connector (unless --no-connectors), `--once` finishes what it can finish soon
(a run sleeping a second included), and it logs each run it claims and leaves, and each
request it performs, on stderr."""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from procs import flowmetal

PROGRAM = textwrap.dedent("""\
    (defpackage fetch
      (require [http.request :refer [get! response? response-body response-error? response-error-response
                                     response-status]]
               [flowmetal.time :refer [sleep! make-duration +milliseconds+]])
      (defn main [url : str?] : str?
        (let [r (get! url)]
          (cond
            (response? r) (str "got " (response-body r))
            (response-error? r) (str "http " (response-status (response-error-response r)))
            :else "no answer")))
      (defn nap [ms : int?] : str?
        (sleep! (make-duration ms +milliseconds+))
        "rested"))
    """)


@pytest.fixture
def service():
    """A fake service on 127.0.0.1: GET /hello answers `hi`; every request is counted."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("Idempotency-Key")))
            body = b"hi" if self.path == "/hello" else b"no"
            self.send_response(200 if self.path == "/hello" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def detach(tmp_path: Path, *args: str) -> str:
    (tmp_path / "fetch.flow").write_text(PROGRAM)
    started = flowmetal("run", "fetch.flow", *args, "--detach", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


def runs(tmp_path: Path) -> dict[str, dict]:
    listed = flowmetal("runs", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    return {r["id"]: r for r in json.loads(listed.stdout)}


def test_a_worker_alone_performs_the_requests_of_its_runs_and_says_what_it_does(tmp_path, service):
    url, seen = service
    run_id = detach(tmp_path, "main", json.dumps(f"{url}/hello"))
    worker = flowmetal("worker", "--once", cwd=tmp_path, timeout=60)
    assert worker.returncode == 0, worker.stderr
    assert runs(tmp_path)[run_id]["result"] == '"got hi"'
    assert seen == [("/hello", f"{run_id}:1")]
    log = worker.stderr.splitlines()
    assert log[0].startswith("flowmetal worker: running the runs of ") and log[0].endswith("HTTP request connector on")
    assert f"flowmetal worker: run {run_id} fetch/main: claimed" in log
    assert f"flowmetal worker: run {run_id}: waiting on step 1 http.request/get!" in log
    assert f"flowmetal worker: run {run_id} step 1: GET {url}/hello -> 200" in log
    assert log[-1] == f'flowmetal worker: run {run_id}: completed: "got hi"'


def test_without_connectors_the_request_is_left_for_another_process(tmp_path, service):
    url, seen = service
    run_id = detach(tmp_path, "main", json.dumps(f"{url}/hello"))
    worker = flowmetal("worker", "--once", "--no-connectors", cwd=tmp_path, timeout=60)
    assert worker.returncode == 0, worker.stderr
    assert "HTTP request connector off (--no-connectors)" in worker.stderr
    assert (f"flowmetal worker: run {run_id}: waiting on step 1 http.request/get! (no live process serves it)"
            in worker.stderr.splitlines())
    run = runs(tmp_path)[run_id]
    assert run["status"] == "waiting" and seen == []
    # Nobody serves it now, and the listing says so.
    assert run["unserved"] == ["http.request/get!"]
    # A worker with its connector finishes it.
    assert flowmetal("worker", "--once", cwd=tmp_path, timeout=60).returncode == 0
    assert runs(tmp_path)[run_id]["result"] == '"got hi"'


def test_once_waits_for_a_timer_due_soon_but_not_for_a_long_one(tmp_path):
    napping = detach(tmp_path, "nap", "1000")
    sleeping = detach(tmp_path, "nap", "600000")
    worker = flowmetal("worker", "--once", cwd=tmp_path, timeout=60)
    assert worker.returncode == 0, worker.stderr
    listed = runs(tmp_path)
    assert (listed[napping]["status"], listed[napping]["result"]) == ("completed", '"rested"')
    assert listed[sleeping]["status"] == "waiting"
    assert f"flowmetal worker: run {sleeping}: waiting on a timer due " in worker.stderr
