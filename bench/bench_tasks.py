"""Tasks: waits that overlap, and a resume that does not depend on how many tasks wait.

- `fanout-100`: a run of 100 tasks, each posting a job to a fake service on
  127.0.0.1 (through the HTTP request connector) and waiting for its own
  callback, which the service sends a second after the job came; the run's
  time from its creation to its end, against the same run with one task. The
  waits overlap, so the target is <= 2x. Through a real `flowmetal serve`.
- `fanout-store` (informational): the stored state's size (its head and its
  parts) with 1,000 waiting tasks against 100, per task: linear growth is 1.0x.
- `resume-1k`: advancing a run in which 1,000 tasks wait on long timers when
  one more timer falls due (restore, give the one task its result, store the
  state again; the timer is set long enough for all the tasks to wait first), against the same with 10 waiting tasks. Target: <= 2x.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

FANOUT = """\
(defpackage bench.fanout
  (require [flowmetal.task :refer [spawn! await-all!]]
           [flowmetal.json :refer [dumps]]
           [http.callback :refer [make-callback! get-callback!]]
           [http.request :refer [post! error?]])
  (defn one [service : str? i : int?] : str?
    (let [cb (make-callback!)
          posted (post! service :data (dumps {:job i :callback cb}))]
      (if (error? posted) (str "not posted: " (dumps posted)) (get-callback! cb))))
  (defn main [service : str? n : int?]
    (let [answers (await-all! (map (fn [i] (spawn! (fn [] (one service i)))) (range n)))
          failed (filter (fn [a] (not= a "\\"done\\"")) answers)]
      (if (= (count failed) 0) (count answers) (first failed)))))
"""

RESUME = """\
(defpackage bench.resume
  (require [flowmetal.task :refer [spawn!]]
           [flowmetal.time :refer [sleep! duration +milliseconds+ +days+]])
  (defn main [n : int?]
    (map (fn [i] (spawn! (fn [] (sleep! (duration 1 +days+)) i))) (range n))
    (sleep! (duration 500 +milliseconds+))
    (sleep! (duration 1 +days+))))
"""

DELAY = 1.0  # seconds between a job's arrival and its callback


class _Service:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                threading.Timer(DELAY, _call_back, (body["callback"],)).start()

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a hundred jobs come at once: none refused

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jobs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _call_back(url: str) -> None:
    request = urllib.request.Request(url, data=b'"done"', method="POST", headers={"Content-Type": "application/json"})
    for _ in range(50):
        try:
            urllib.request.urlopen(request, timeout=30).read()
            return
        except OSError:
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fanout(serve_store: Path, store: SQLiteStore, service: _Service, n: int) -> float:
    sources = {"fanout.flow": FANOUT}
    start = time.perf_counter()
    run_id = store.create_run("bench.fanout/main", [json.dumps(service.url), str(n)], store.put_sources(sources),
                              code_hash(sources))
    while True:
        run = store.get_run(run_id)
        if run.status in ("completed", "failed", "cancelled"):
            if run.status != "completed" or run.result != str(n):
                raise RuntimeError(f"the fan-out run {run.status}: {run.error or run.result}")
            return time.perf_counter() - start
        if time.perf_counter() - start > 300:
            raise RuntimeError("the fan-out run never ended")
        time.sleep(0.01)


def _resume(n: int) -> tuple[float, int]:
    store = SQLiteStore(Path(tempfile.mkdtemp(prefix="flowmetal-bench-resume-")) / "store.db")
    sources = {"resume.flow": RESUME}
    run_id = store.create_run("bench.resume/main", [str(n)], store.put_sources(sources), code_hash(sources))
    executor = Executor(store)
    executor.run_once(run_id)  # the tasks spawned, all waiting
    run = store.get_run(run_id)
    assert run.status == "waiting", run
    time.sleep(max(0.0, run.wake_at - time.time()) + 0.01)  # the entry's short timer falls due
    start = time.perf_counter()
    executor.run_once(run_id)  # the entry's short timer fell due: restore, give, store again
    took = time.perf_counter() - start
    # The state as stored: its head and its parts (a task, an environment, a wait each).
    size = len(store.conn.execute("SELECT state FROM snapshots WHERE run_id=?", (run_id,)).fetchone()[0])
    size += store.conn.execute("SELECT COALESCE(SUM(LENGTH(state)), 0) FROM snapshot_parts WHERE run_id=?",
                               (run_id,)).fetchone()[0]
    return took, size


def run(quick: bool = False) -> list[dict]:
    many = 20 if quick else 100
    repeats = 1 if quick else 3
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-fanout-"))
    path = folder / "store.db"
    store = SQLiteStore(path)
    service = _Service()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "flowmetal", "serve", "--store", str(path), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()  # listening
        ones, manys = [], []
        for _ in range(repeats):
            ones.append(_fanout(path, store, service, 1))
            manys.append(_fanout(path, store, service, many))
    finally:
        server.terminate()
        server.wait(30)
    one, fan = statistics.median(ones), statistics.median(manys)
    big, small = (100, 10) if quick else (1000, 10)
    resumes_big = [_resume(big) for _ in range(1 if quick else 5)]
    resumes_small = [_resume(small) for _ in range(1 if quick else 5)]
    t_big = statistics.median(t for t, _ in resumes_big)
    t_small = statistics.median(t for t, _ in resumes_small)
    size_big = resumes_big[0][1]
    _, size_mid = _resume(big // 10)
    return [
        {"name": f"fanout-{many}", "value": fan, "reference": one, "ratio": fan / one, "target": 2.0,
         "unit": "x one task", "detail": f"{many} tasks each waiting {DELAY:g} s for its callback: {fan:.2f} s, "
                                        f"one task {one:.2f} s (median of {repeats})"},
        {"name": "fanout-store", "value": size_big, "reference": size_mid,
         "ratio": (size_big / big) / (size_mid / (big // 10)), "target": 1.2, "unit": "x per task",
         "detail": f"stored state {size_big / 1024:.0f} KiB with {big} waiting tasks, {size_mid / 1024:.0f} KiB with "
                   f"{big // 10}"},
        {"name": f"resume-{big // 1000}k" if big >= 1000 else f"resume-{big}", "value": t_big,
         "reference": t_small, "ratio": t_big / t_small, "target": 2.0, "unit": f"x {small} tasks",
         "detail": f"one task given its timer among {big}: {t_big * 1000:.1f} ms, among {small}: "
                   f"{t_small * 1000:.1f} ms (median of {len(resumes_big)})"},
    ]
