"""1,000 runs waiting on callbacks at once, the callbacks delivered in one burst.

A real `flowmetal serve` process on 127.0.0.1: N runs are started, each makes a
callback and waits for it; once all wait, every callback is POSTed at once (64
connections). Figures: `callbacks-1k`, the time from the first POST to the
last run completed (informational: its target is a second a run, far above);
`serve-memory-1k`, the server's peak memory (VmHWM) with 1,000 waiting runs
against 100: flat in the number of waiting runs (target <= 1.2x).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage bench.callbacks
  (require [flowmetal.log :refer [log!]]
           [http.callback :refer [make-callback! get-callback! callback-url]])
  (defn wait-one [] : str?
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (get-callback! cb))))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _burst(count: int) -> tuple[float, int]:
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-callbacks-"))
    path = folder / "store.db"
    store = SQLiteStore(path)
    sources = {"callbacks.flow": PROGRAM}
    stored = store.put_sources(sources)
    runs = [store.create_run("bench.callbacks/wait-one", [], stored, code_hash(sources)) for _ in range(count)]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "flowmetal", "serve", "--store", str(path), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            waiting = store.conn.execute("SELECT COUNT(*) FROM runs WHERE status='waiting'").fetchone()[0]
            if waiting == count:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the runs never all waited")
        urls = []
        for run_id in runs:
            (log,) = [e for e in store.events(run_id) if e.kind == "log"]
            urls.append(log.data["message"])
        start = time.perf_counter()
        with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as client, \
                concurrent.futures.ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(lambda url: client.post(url, content=json.dumps({"ok": True})).status_code, urls))
        assert set(answers) == {200}, set(answers)
        while store.conn.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0] < count:
            time.sleep(0.02)
            if time.perf_counter() - start > 300:
                raise RuntimeError("the runs never all completed")
        drained = time.perf_counter() - start
        return drained, _peak_kib(server.pid)
    finally:
        server.terminate()
        server.wait(30)


def run(quick: bool = False) -> list[dict]:
    many = 100 if quick else 1000
    few = 10 if quick else 100
    drained, peak_many = _burst(many)
    _, peak_few = _burst(few)
    return [
        {"name": f"callbacks-{many // 1000}k" if many >= 1000 else f"callbacks-{many}", "value": drained,
         "reference": None, "ratio": drained, "target": many * 1.0, "unit": "s",
         "detail": f"{many} callbacks delivered in a burst, all runs completed in {drained:.2f} s "
                   f"({drained / many * 1000:.1f} ms a run)"},
        {"name": f"serve-memory-{many}", "value": peak_many, "reference": peak_few, "ratio": peak_many / peak_few,
         "target": 1.2, "unit": f"x {few} runs",
         "detail": f"serve's peak memory {peak_many / 1024:.0f} MiB with {many} waiting runs, "
                   f"{peak_few / 1024:.0f} MiB with {few}"},
    ]
