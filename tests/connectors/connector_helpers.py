"""Helpers for the connectors' tests: a real HTTP server on 127.0.0.1 that records every
request it is sent (or any handler served the same way), a port where nothing listens, and a loop driving a run to its end
with the executor, as another worker process would."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

FINAL = ("completed", "failed", "cancelled")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Server:
    """What the server saw, and switches for its slow path."""
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hang_first: threading.Event = field(default_factory=threading.Event)   # set: the first /hang never answers
    release: threading.Event = field(default_factory=threading.Event)      # set at teardown: hung handlers end
    arrived: threading.Event = field(default_factory=threading.Event)      # a /hang request arrived

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]


def _handler(state: Server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def answer(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with state.lock:
                state.seen.append(seen)
                first_hang = self.path == "/hang" and len([s for s in state.seen if s.path == "/hang"]) == 1
            if self.path == "/ok":
                self.answer(200, f"hello {self.command}", {"X-Reply": "hello"})
            elif self.path == "/echo":
                self.answer(201, body, {"X-Method": self.command})
            elif self.path == "/fail":
                self.answer(500, "broken", {"X-Reply": "sorry"})
            elif self.path == "/redirect":
                self.answer(302, "", {"Location": "/ok"})
            elif self.path == "/hang":
                state.arrived.set()
                if first_hang and state.hang_first.is_set():
                    state.release.wait(20)  # the client dies meanwhile; nobody reads this answer
                self.answer(200, "done at last")
            else:
                self.answer(404, "no such page")

        do_GET = do_POST = do_PUT = do_DELETE = handle_any

    return Handler


@contextlib.contextmanager
def serving(state, handler):
    """`handler(state)`, a request handler class, served on 127.0.0.1 in a thread, its port in
    `state.port`: `state` until the end, when the answers held back are let go
    (`state.release`) and the server stops."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def recording_server():
    """The recording server (`Server`), served: `with recording_server() as server: ...`."""
    return serving(Server(), _handler)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_run(store: SQLiteStore, sources: dict[str, str], entry: str, args: list[str]) -> str:
    return store.create_run(entry, args, store.put_sources(sources), code_hash(sources))


def drive(store: SQLiteStore, run_id: str, executor: Executor | None = None, until: float = 15.0) -> str:
    """Advance the run whenever it is runnable until it ends (or `until` seconds pass)."""
    executor = executor or Executor(store)
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in FINAL:
            return run.status
        time.sleep(0.02)
    return store.get_run(run_id).status


# The scratch SQLite store of the connector tests (`path`, and `store` open on it, closed
# afterwards), imported by the modules that use them. Not a conftest.py: a second one would
# take the module name `conftest` that tests import ROOT and TESTDATA from.
@pytest.fixture
def path(tmp_path):
    return tmp_path / "store.db"


@pytest.fixture
def store(path):
    s = SQLiteStore(path)
    yield s
    s.close()
