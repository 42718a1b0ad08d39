"""Processes started while their PostgreSQL server is unavailable.

A long-running command (`worker`, `serve`, `connector`, `lsp`) started while the server
is down waits for it, saying so once on stderr, and goes on when it comes: a real cluster
halted, a worker started, the cluster started again, the worker's run completed. A short
command (`runs`, `trace`...) fails at once on a server that is not there, but waits a few
seconds for one that says it is starting up or shutting down: a loopback front that answers
the first connections as such a server does (FATAL 57P03), then passes them to the real one.
Past its patience, the first connection fails with the usual one-line error."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from flowmetal.runtime.store import StoreError, open_store
from tests.waits import until as wait_until

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "(defpackage demo\n  (defn answer [] : int? 42))\n"


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def postgres(command: str, directory: str) -> None:
    done = subprocess.run([str(ROOT / "scripts" / "postgres"), command, directory], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr


def test_a_worker_started_while_the_server_is_down_waits_for_it(tmp_path: Path, own_postgres):
    directory, url = own_postgres
    (tmp_path / "demo.flow").write_text(PROGRAM)
    started = flowmetal("run", "--detach", "--store", url, "demo.flow", "demo/answer", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    postgres("halt", directory)

    # A short command fails at once, as it always did.
    listing = flowmetal("runs", "--store", url, cwd=tmp_path)
    assert listing.returncode == 2 and "cannot use the PostgreSQL server" in listing.stderr, listing.stderr
    assert "waiting" not in listing.stderr

    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    worker = subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", "--store", url], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = worker.stderr.readline()
        assert "flowmetal worker: waiting for the store at" in said and "up to 60 s" in said, said
        assert worker.poll() is None
        postgres("start", directory)  # on the same port
        store = wait_until(lambda: _opened(url), "the store to open again")
        try:
            run = wait_until(lambda: (lambda r: r if r.status == "completed" else None)(store.get_run(run_id)),
                             "the worker to complete the run")
            assert run.result == "42"
        finally:
            store.close()
        assert worker.poll() is None, worker.stderr.read()
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert "waiting for the store" not in err, err  # said once only
    assert "error" not in err, err


def _opened(url: str):
    try:
        return open_store(url, readonly=True)
    except StoreError:
        return None


class StartingFront:
    """A loopback front for a PostgreSQL server: its first `refusals` connections are answered
    as a server starting up answers them (FATAL, SQLSTATE 57P03), the next ones passed through
    to the server (every connection, with `refusals` None)."""

    def __init__(self, server_url: str, refusals: int | None) -> None:
        parts = urlsplit(server_url)
        self.target = (parts.hostname, parts.port or 5432)
        self.refusals, self.refused = refusals, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{self.port}"))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.refusals is None or self.refused < self.refusals:
                self.refused += 1
                threading.Thread(target=self._starting_up, args=(conn,), daemon=True).start()
            else:
                threading.Thread(target=self._through, args=(conn,), daemon=True).start()

    @staticmethod
    def _starting_up(conn: socket.socket) -> None:
        with conn:
            while True:  # an SSL or GSS encryption request first: refused ("N"), then the startup message
                length, = struct.unpack("!I", _exactly(conn, 4))
                body = _exactly(conn, length - 4)
                if struct.unpack("!I", body[:4])[0] in (80877103, 80877104):
                    conn.sendall(b"N")
                    continue
                break
            fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
            conn.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)

    def _through(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.target)

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_a_short_command_waits_a_few_seconds_for_a_server_starting_up(tmp_path: Path, postgres_url: str):
    open_store(postgres_url).close()  # the store's tables
    front = StartingFront(postgres_url, refusals=3)
    try:
        listing = flowmetal("runs", "--store", front.url, cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        assert front.refused == 3
    finally:
        front.close()


def test_past_its_patience_the_first_connection_fails_with_the_usual_error(postgres_url: str, monkeypatch):
    from flowmetal.runtime import pgstore
    said: list[str] = []
    monkeypatch.setattr(pgstore, "STARTING", 0.5)
    monkeypatch.setattr(pgstore, "_said_waiting", False)
    front = StartingFront(postgres_url, refusals=None)
    try:
        with pytest.raises(StoreError) as caught:
            pgstore.Database(front.url, patience=0.0, say=said.append)
    finally:
        front.close()
    message = str(caught.value)
    assert "cannot use the PostgreSQL server" in message and "starting up" in message, message
    assert front.refused >= 2 and len(said) == 1 and "starting up" in said[0], said

    # A server that is not there at all: waited for only with patience, then the same error.
    monkeypatch.setattr(pgstore, "_said_waiting", False)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    nowhere = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with pytest.raises(StoreError, match="cannot use the PostgreSQL server"):
        pgstore.Database(nowhere, patience=0.0, say=said.append)
    assert len(said) == 1  # no patience, no wait
    with pytest.raises(StoreError, match="Connection refused"):
        pgstore.Database(nowhere, patience=0.6, say=said.append)
    assert len(said) == 2 and "up to 0.6 s" in said[1], said
