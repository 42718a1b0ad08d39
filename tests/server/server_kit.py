"""Helpers for the server's tests: a program that uses callbacks, timers and a connector
endpoint; the whole store as data (to show a refused request changed nothing);
`flowmetal serve` as a real process on a free port; and a request to it that must be
refused."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROGRAM = """\
(defpackage shop
  (require [flowmetal.time :refer [sleep! make-duration +milliseconds+]]
           [http.callback :refer [make-callback! get-callback! callback-url]]
           [flowmetal.log :refer [log!]])
  (defenum size +small+ +large+)
  (defrecord offer [price : int? size : size? note : str?])
  (defendpoint price! [item : str? qty : int? tags : (list? keyword?)] : offer?
    "Price an item: a connector answers.")
  (defendpoint ping! [] : int? "A connector answers.")
  (defn hook [] : str?
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (str "got " (get-callback! cb))))
  (defn nap-then-hook [ms : int?] : str?
    (let [cb (make-callback!)]
      (log! (callback-url cb))
      (sleep! (make-duration ms +milliseconds+))
      (str "got " (get-callback! cb))))
  (defn nap [ms : int?] : int?
    (log! "sleeping")
    (sleep! (make-duration ms +milliseconds+))
    (log! "awake")
    ms)
  (defn buy [item : str? qty : int?] : int?
    (let [o (price! item qty [:fast :cheap])]
      (+ (offer-price o) qty)))
  (defn pings [] : int?
    (+ (ping!) (ping!))))
"""

SOURCES = {"shop.flow": PROGRAM}
FINAL = ("completed", "failed", "cancelled")


def store_state(path: Path) -> dict[str, list]:
    """Every row of every table: equal before and after means nothing changed. But `presence`,
    the heartbeat of the processes serving endpoints (the serve's own connector refreshes it
    every few seconds), which is no data of the runs."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                             "name<>'presence' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def row_counts(path: Path) -> dict[str, int]:
    return {table: len(rows) for table, rows in store_state(path).items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`flowmetal serve` as a process: started on a port, waited for, stopped or killed."""

    def __init__(self, store: Path, port: int | None = None, env: dict | None = None, cwd: Path | None = None,
                 args: list[str] = (), host: str | None = None):
        self.store = store
        self.port = port or free_port()
        self.env = env or {}
        self.cwd = cwd or store.parent
        self.args = [*(["--host", host] if host else []), *args]
        self.listening = f"http://{host or '127.0.0.1'}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"  # always reached on loopback

    def start(self, timeout: float = 20.0) -> "Serve":
        env = {**os.environ, **self.env}
        env.pop("FLOWMETAL_STORE", None)
        for name in ("FLOWMETAL_TOKEN", "FLOWMETAL_PUBLIC_URL"):
            if name not in self.env:
                env.pop(name, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "serve", "--store", str(self.store),
                                      "--port", str(self.port), *self.args], cwd=self.cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"serve did not start: {line!r} {self.proc.stderr.read()}")
        assert line.strip().endswith(self.listening), line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/api/openapi.json", headers=self.auth(), timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("serve does not answer")

    def auth(self) -> dict:
        token = self.env.get("FLOWMETAL_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def __enter__(self) -> "Serve":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def refused(serve: Serve, method: str, path: str, status: int, says: str, **kw) -> dict:
    """The request is answered `status` with a JSON error containing `says`, and the store is
    as it was."""
    before = store_state(serve.store)
    response = httpx.request(method, serve.url + path, timeout=30, **kw)
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert says in error, error
    assert store_state(serve.store) == before
    return response.json()
