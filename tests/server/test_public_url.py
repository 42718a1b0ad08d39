"""The store's public URL (SPEC section 6): one setting of the deployment, kept in the store;
`serve` sets it, callback URLs are built on it, `flowmetal run` listens on its port or lets a
server of the same store there take its callbacks, and refuses a port anything else holds.
And a port `serve` cannot take is a clear error. Real processes on 127.0.0.1."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from conftest import ROOT
from server_kit import Serve, free_port

sys.path.insert(0, str(ROOT / "tests" / "runtime"))
from running import ID_LINE, Running, clean_env  # noqa: E402

HOOK = textwrap.dedent("""\
    (defpackage hook
      (require [http.callback :refer [make-callback! get-callback!]])
      (defn main [] : str?
        (let [cb (make-callback!)]
          (str "got " (get-callback! cb)))))
    """)


def settings(store: Path) -> dict[str, str]:
    conn = sqlite3.connect(store)
    try:
        return dict(conn.execute("SELECT key, value FROM settings").fetchall())
    finally:
        conn.close()


def run_ids(store: Path) -> list[str]:
    conn = sqlite3.connect(store)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM runs")]
    finally:
        conn.close()


def test_serve_stores_its_public_url_and_says_which_store_it_serves(tmp_path: Path):
    store = tmp_path / "s.db"
    port = free_port()
    with Serve(store, port=port, args=["--public-url", f"http://localhost:{port}/"]) as serve:
        answer = httpx.get(serve.url + "/api/runs", timeout=10)
        missing = httpx.get(serve.url + "/nowhere", timeout=10)
    stored = settings(store)
    assert stored["public_url"] == f"http://localhost:{port}"
    assert len(stored["store_id"]) == 32
    assert answer.headers["Flowmetal-Store"] == missing.headers["Flowmetal-Store"] == stored["store_id"]
    # A later serve without --public-url sets its own address, and says the URL changed.
    other = free_port()
    second = Serve(store, port=other).start()
    code, out, err = second.stop()
    assert code == 0 and settings(store)["public_url"] == f"http://127.0.0.1:{other}"
    assert (f"flowmetal serve: the store's public URL was http://localhost:{port}; callback URLs made before "
            f"now still name it") in err


def test_run_lets_the_serve_of_its_store_on_the_public_url_take_its_callbacks(tmp_path: Path):
    (tmp_path / "hook.flow").write_text(HOOK)
    store = tmp_path / "s.db"
    with Serve(store, cwd=tmp_path) as serve:  # its address is now the store's public URL
        running = Running("run", "hook.flow", "main", "--store", "s.db", cwd=tmp_path)
        try:
            run_id = running.wait_line(ID_LINE.pattern).group(1)
            url = running.wait_line(r"waiting for a callback at (\S+)").group(1)
            assert url.startswith(f"{serve.url}/callback/")
            answer = httpx.post(url, content="hi", headers={"Content-Type": "text/plain"}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert running.finish() == 0, running.lines
        finally:
            running.kill()
    assert running.stdout == '"got hi"\n'
    assert running.lines[:2] == [
        f"flowmetal run: run {run_id}: main",
        f"flowmetal run: callbacks to {serve.url} are taken by the Flowmetal server of this store that "
        f"listens there"]


def test_run_refuses_a_public_url_port_held_by_anything_else_before_recording_the_run(tmp_path: Path):
    (tmp_path / "hook.flow").write_text(HOOK)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with taken:
        result = subprocess.run([sys.executable, "-m", "flowmetal", "run", "hook.flow", "main", "--store", "s.db"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                env=clean_env(FLOWMETAL_PUBLIC_URL=f"http://127.0.0.1:{port}"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"flowmetal run: error: the store's public URL is http://127.0.0.1:{port}, but another program holds "
        f"port {port} (no Flowmetal server of this store): callbacks sent there would not reach this run. Stop "
        f"that program, or set the public URL to a free port (`FLOWMETAL_PUBLIC_URL=http://127.0.0.1:PORT`, or "
        f"`flowmetal serve --public-url`); nothing was run\n")
    assert run_ids(tmp_path / "s.db") == [] and "public_url" not in settings(tmp_path / "s.db")


def test_a_serve_of_another_store_holding_the_port_is_refused_too(tmp_path: Path):
    (tmp_path / "hook.flow").write_text(HOOK)
    with Serve(tmp_path / "other.db", cwd=tmp_path) as serve:
        result = subprocess.run([sys.executable, "-m", "flowmetal", "run", "hook.flow", "main", "--store", "s.db"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                env=clean_env(FLOWMETAL_PUBLIC_URL=serve.url))
    assert result.returncode == 2 and "no Flowmetal server of this store" in result.stderr, result.stderr
    assert run_ids(tmp_path / "s.db") == []


def test_serve_on_a_taken_port_fails_saying_what_holds_it(tmp_path: Path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    def serve(store: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flowmetal", "serve", "--store", str(store), "--port",
                               str(port)], capture_output=True, text=True, timeout=60, env=clean_env())
    with taken:
        result = serve(tmp_path / "s.db")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"flowmetal serve: error: cannot listen on http://127.0.0.1:{port}: the port is in use "
                             f"(another program listens there); stop it, or give another --port\n")
    with Serve(tmp_path / "s.db", port=port):
        again = serve(tmp_path / "s.db")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "a `flowmetal serve` (or `flowmetal run`) on this same store already listens there" in again.stderr


def test_a_version_3_store_gets_an_id_and_the_default_public_url(tmp_path: Path):
    from flowmetal.runtime.store import DEFAULT_PUBLIC_URL, SQLiteStore
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE settings")
    db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    db.commit()
    db.close()
    old = SQLiteStore(path, readonly=True)  # read as it is: nothing migrated, nothing made up
    assert (old.version(), old.store_id(), old.public_url()) == (3, None, DEFAULT_PUBLIC_URL)
    old.close()
    store = SQLiteStore(path)
    assert store.version() == 4 and len(store.store_id()) == 32
    assert store.public_url() == DEFAULT_PUBLIC_URL == "http://127.0.0.1:8700"
    assert store.set_public_url("http://flows.example.com") is None
    assert SQLiteStore(path).public_url() == "http://flows.example.com"


def test_a_public_url_of_another_machine_is_left_to_whatever_serves_it(tmp_path: Path):
    import signal
    (tmp_path / "hook.flow").write_text(HOOK)
    public = "https://flows.example.test"
    running = Running("run", "hook.flow", "main", "--store", "s.db", cwd=tmp_path,
                      env=clean_env(FLOWMETAL_PUBLIC_URL=public))
    try:
        running.wait_line(r"waiting for a callback at (\S+)")
        running.signal(signal.SIGINT)
        assert running.finish() == 130
    finally:
        running.kill()
    assert running.lines[1] == (f"flowmetal run: callbacks to {public} (the store's public URL) are taken by "
                                f"whatever serves it; this process listens for none")
    assert running.lines[2].startswith(f"flowmetal run: step 2: waiting for a callback at {public}/callback/")
    assert settings(tmp_path / "s.db")["public_url"] == public
