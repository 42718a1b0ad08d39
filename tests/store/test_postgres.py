"""What only a PostgreSQL store has to show: a server that cannot be used is a clear error
(never a traceback), connections lost under a store are replaced, many processes opening a
fresh database at once migrate it once, and a read-only command creates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from flowmetal.runtime.store import SCHEMA_VERSION, StoreError, open_store
from tests.waits import until


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.parametrize("url, says", [
    ("postgresql://nobody@127.0.0.1:1/x", "cannot use the PostgreSQL server"),
    ("postgresql://u:secret@127.0.0.1:1/x", "postgresql://u:***@127.0.0.1:1/x"),
])
def test_a_server_that_cannot_be_reached_is_a_clear_error(tmp_path: Path, url: str, says: str):
    result = flowmetal("runs", "--store", url, cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    assert result.stderr.startswith("flowmetal runs: error: ") and result.stderr.count("\n") == 1


def test_a_missing_database_or_user_is_named(tmp_path: Path, postgres_url: str):
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    result = flowmetal("runs", "--store", missing, cwd=tmp_path)
    assert result.returncode == 2 and "no_such_database" in result.stderr and "createdb" in result.stderr
    stranger = postgres_url.replace("postgres@", "nobody_here@", 1)
    result = flowmetal("runs", "--store", stranger, cwd=tmp_path)
    assert result.returncode == 2 and "refused the login" in result.stderr, result.stderr


def _drop_connections(postgres_url: str) -> int:
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s AND "
                                 "pid<>pg_backend_pid()", (database,)).fetchall())


def _connections(postgres_url: str) -> int:
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname=%s AND pid<>pg_backend_pid()",
                             (database,)).fetchone()[0]


def test_connections_lost_under_a_store_are_replaced(postgres_url: str):
    store = open_store(postgres_url)
    try:
        run_id = store.create_run("demo/main", [], store.put_sources({"demo.flow": "x"}), "code")
        assert _drop_connections(postgres_url) >= 1  # as a server restart does
        assert store.get_run(run_id).status == "pending"  # a read is tried again on a new connection
        assert _drop_connections(postgres_url) >= 1
        # A write begun on a connection that broke since it was last used fails at its BEGIN,
        # having done nothing: it is begun again on a new connection.
        assert store.request_cancel(run_id) == "cancelled"
        # One cut short after it began is not tried again: its outcome is not known.
        later = store.create_run("demo/main", [], store.put_sources({"demo.flow": "x"}), "code")
        with pytest.raises(StoreError, match="cannot use the PostgreSQL server .* not done"):
            with store.transaction() as conn:
                conn.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (later,))
                assert _drop_connections(postgres_url) >= 1
                conn.execute("UPDATE runs SET status='cancelled' WHERE id=?", (later,))
        assert (store.get_run(later).status, store.get_run(later).cancel_requested) == ("pending", False)
        assert store.request_cancel(later) == "cancelled"  # the next use has a new connection
    finally:
        store.close()


def test_an_inline_step_commit_on_a_connection_the_server_closed_is_made_on_another(postgres_url: str):
    """The one-statement commit of an inline step (`Database.call`) cannot be tried again once
    sent; a connection the server closed while idle is found before anything is sent."""
    store = open_store(postgres_url)
    try:
        run_id = store.create_run("demo/main", [], store.put_sources({"demo.flow": "x"}), "code")
        run = store.claim("w", 30, run_id=run_id)
        assert _drop_connections(postgres_url) >= 1  # as a server restart does
        until(lambda: _connections(postgres_url) == 0, "the server to close them")
        got = store.commit(run, "w", [("step-requested", 1, {}, 1)], snapshot={"at": 1},
                           inline_steps=[(1, "a/b!", "{}", f"{run_id}:1")])
        assert got == {1: 1} and store.snapshot(run_id) == {"at": 1}
        assert [e.kind for e in store.events(run_id)] == ["run-started", "step-requested"]
    finally:
        store.close()


def test_a_store_of_version_12_takes_the_inline_commit_of_version_13(postgres_url: str):
    """Version 13 writes an inline step's row once: its function has a new name, so a process
    of version 12 still running against the store fails to call it rather than calling it
    with the arguments it had, and the index of a run's steps by status becomes partial."""
    store = open_store(postgres_url)
    try:
        run_id = store.create_run("demo/main", [], store.put_sources({"demo.flow": "x"}), "code")
    finally:
        store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the store as version 12 left it
        conn.execute("DROP FUNCTION flowmetal_commit_inline_2(text, text, integer, text, text)")
        conn.execute("CREATE FUNCTION flowmetal_commit_inline(p_run text, p_worker text, p_epoch integer, "
                     "p_body text, p_snapshot text) RETURNS integer[] LANGUAGE sql AS $$ SELECT '{}'::integer[] $$")
        conn.execute('DROP INDEX "steps_by_run_status"')
        conn.execute('CREATE INDEX "steps_by_run_status" ON "steps" ("run_id", "status", "endpoint")')
        conn.execute("UPDATE meta SET value='12' WHERE key='schema_version'")
    store = open_store(postgres_url)
    try:
        assert store.version() == SCHEMA_VERSION == 13
        run = store.claim("w", 30, run_id=run_id)
        got = store.commit(run, "w", [("step-requested", 1, {}, 1)], snapshot={"at": 1},
                           inline_steps=[(1, "a/b!", "{}", f"{run_id}:1")])
        assert got == {1: 1} and store.step(run_id, 1) is None
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        names = {row[0] for row in conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'flowmetal%'")}
        assert names == {"flowmetal_commit_inline_2"}
        index = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'steps_by_run_status'").fetchone()[0]
        assert "WHERE (status = ANY" in index, index


def test_many_processes_opening_a_fresh_database_at_once_migrate_it_once(tmp_path: Path, postgres_url: str):
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello.flow"
    procs = [subprocess.Popen([sys.executable, "-m", "flowmetal", "run", str(hello), "greet", f'"{i}"', "--detach",
                               "--store", postgres_url], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    outcomes = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    assert all(code == 0 for code, _ in outcomes), outcomes
    store = open_store(postgres_url)
    assert store.version() == SCHEMA_VERSION and len(store.store_id()) == 32
    assert sorted(r.args[0] for r in store.list_runs()) == [f'"{i}"' for i in range(6)]
    store.close()


def test_a_read_only_command_on_an_empty_database_creates_nothing(tmp_path: Path, postgres_url: str):
    result = flowmetal("trace", "abc", "--store", postgres_url, cwd=tmp_path)
    assert result.returncode == 2 and "not a Flowmetal store" in result.stderr, result.stderr
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"
                            ).fetchone()[0] == 0


def test_the_editors_feed_of_changes_follows_a_postgresql_store(tmp_path: Path, postgres_url: str):
    from flowmetal.ide.workbench import Workbench
    bench = Workbench(store=postgres_url, root=str(tmp_path))
    store = open_store(postgres_url)
    try:
        assert bench.changes().runs == []  # takes stock
        assert bench.changes().runs == []  # nothing committed since: nothing
        run_id = store.create_run("demo/main", [], store.put_sources({"demo.flow": "(defpackage demo)"}), "code")
        assert [r.id for r in bench.changes().runs] == [run_id]
        store.request_cancel(run_id)
        assert [(r.id, r.status) for r in bench.changes().runs] == [(run_id, "cancelled")]
        assert bench.local_folder == str(tmp_path / ".flowmetal")
    finally:
        store.close()
        bench.close()
