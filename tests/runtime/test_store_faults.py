"""A store that cannot be used is one clear line and exit status 2, never a traceback: a file that
is not a database, a truncated one, a malformed row, a store that does not exist (read-only
commands never create one), and a read-only store (which read-only commands still read)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = "(defpackage s (defn f [] : int? 41))\n"


def flowmetal(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def one_clear_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def good(tmp_path):
    """A store with one completed run; its id."""
    path = tmp_path / "good" / "store.db"
    store = SQLiteStore(path)
    sources = {"s.flow": PROGRAM}
    run_id = store.create_run("s/f", [], store.put_sources(sources), code_hash(sources))
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).result == "41"
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path, run_id


def test_a_file_that_is_not_a_store(tmp_path):
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n" * 100)
    for command in (["runs"], ["trace", "abc"], ["worker", "--once"]):
        one_clear_line(flowmetal(*command, "--store", "notes.db", cwd=tmp_path), "notes.db", "not a Flowmetal store")
    assert (tmp_path / "notes.db").read_text().startswith("these are my notes")


def test_a_truncated_store(tmp_path, good):
    path, run_id = good
    data = path.read_bytes()
    (tmp_path / "cut.db").write_bytes(data[: len(data) // 2])
    result = flowmetal("trace", run_id, "--store", "cut.db", cwd=tmp_path)
    one_clear_line(result, "cut.db")


@pytest.mark.parametrize("table, column, value, command", [
    ("runs", "program", "not json", "runs"),
    ("runs", "program", "[1, 2]", "runs"),
    ("runs", "args", '{"a": 1}', "runs"),
    ("events", "data", "{broken", "trace"),
])
def test_a_malformed_row(tmp_path, good, table, column, value, command):
    path, run_id = good
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"UPDATE {table} SET {column}=?", (value,))
    conn.close()
    args = [command] + ([run_id] if command == "trace" else [])
    one_clear_line(flowmetal(*args, "--store", str(path), cwd=tmp_path), "malformed", run_id)


def test_read_only_commands_never_create_a_store(tmp_path):
    for command in (["runs"], ["trace", "abc"], ["replay", "abc"]):
        result = flowmetal(*command, "--store", "no/such/dir/x.db", cwd=tmp_path)
        one_clear_line(result, "no store at no/such/dir/x.db")
    assert not (tmp_path / "no").exists()


def _read_only_mount_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind -o ro / /mnt 2>/dev/null || mount -t tmpfs -o ro x /mnt"],
        capture_output=True).returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs a mount namespace for a read-only file system")
def test_a_read_only_store_is_read_and_writes_are_refused_clearly(tmp_path, good):
    path, run_id = good
    folder = path.parent
    env_python = sys.executable

    def on_read_only(*args: str) -> subprocess.CompletedProcess:
        command = " ".join(["mount --bind -o ro", str(folder), str(folder), "&&", "exec", env_python, "-m",
                            "flowmetal", *args])
        return subprocess.run(["unshare", "-m", "sh", "-c", command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
    runs = on_read_only("runs", "--store", str(path))
    assert runs.returncode == 0 and run_id in runs.stdout and "41" in runs.stdout, runs.stderr
    trace = on_read_only("trace", run_id, "--store", str(path))
    assert trace.returncode == 0 and "run-completed" in trace.stdout, trace.stderr
    replay = on_read_only("replay", run_id, "--store", str(path), "--verify")
    assert replay.returncode == 0 and "41" in replay.stdout, replay.stderr
    (tmp_path / "s.flow").write_text(PROGRAM)
    one_clear_line(on_read_only("run", "s.flow", "f", "--store", str(path)), "read-only")
    assert sorted(os.listdir(folder)) == ["store.db"]


def test_a_row_naming_another_runs_code_hash_still_runs_its_own_program(tmp_path):
    # Programs are cached by code hash: a crafted row that claims another program's hash must
    # run (and show) its own program, not be taken for the cached one.
    store = SQLiteStore(tmp_path / "store.db")
    honest = {"s.flow": PROGRAM}
    first = store.create_run("s/f", [], store.put_sources(honest), code_hash(honest))
    other = {"s.flow": PROGRAM.replace("41", "7")}
    crafted = store.create_run("s/f", [], store.put_sources(other), code_hash(honest))
    assert store.get_run(crafted).code_hash == code_hash(other)
    executor = Executor(store)
    executor.run_once(first)
    executor.run_once(crafted)
    assert (store.get_run(first).result, store.get_run(crafted).result) == ("41", "7")
