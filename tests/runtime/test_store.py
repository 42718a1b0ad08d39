"""The store's schema: versioned migrations applied in order, settings for durability."""

from __future__ import annotations

import sqlite3

import pytest

from flowmetal.runtime.store import SCHEMA_VERSION, SQLiteStore, StoreError


def test_a_store_of_an_older_version_is_migrated_in_place(tmp_path):
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    # Make it look like a version 1 store: without the index version 2 adds.
    db = sqlite3.connect(path)
    db.execute("DROP INDEX events_by_step")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.version() == SCHEMA_VERSION
    indexes = {row[1] for row in store.conn.execute("PRAGMA index_list(events)")}
    assert "events_by_step" in indexes


def test_durability_settings(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


def test_a_newer_store_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="written by a newer Flowmetal"):
        SQLiteStore(path)
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION + 1)


def _waiting_on(store: SQLiteStore, *endpoints: str) -> str:
    """A run waiting on a pending step of each endpoint (steps 3, 4, ...)."""
    run_id = store.create_run("demo/main", [], store.put_sources({"demo.flow": "(defpackage demo)"}), "code")
    run = store.claim("w", 30)
    store.commit(run, "w", [], status="waiting", release=True,
                 steps=[(3 + i, name, "{}", f"{run_id}:{3 + i}") for i, name in enumerate(endpoints)])
    return run_id


def test_a_step_no_live_process_serves_is_unserved_until_one_announces_it(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    run_id = _waiting_on(store, "acme.billing/charge!", "acme.mail/send!")
    assert store.unserved(run_id) == ["acme.billing/charge!", "acme.mail/send!"]
    store.announce("billing-1", "connector", ["acme.billing/charge!"], pid=1, host="h")
    assert store.unserved_steps() == {run_id: [(4, "acme.mail/send!")]}
    assert [(p["name"], p["kind"], p["endpoints"]) for p in store.presence()] == [
        ("billing-1", "connector", ["acme.billing/charge!"])]
    # A presence not refreshed for a few leases is a process that died without saying so.
    store.conn.execute("UPDATE presence SET seen=seen-1000")
    assert store.unserved(run_id) == ["acme.billing/charge!", "acme.mail/send!"]
    store.announce("billing-1", "connector", ["acme.billing/charge!"])
    store.withdraw("billing-1")
    assert store.presence() == [] and len(store.unserved(run_id)) == 2
    # A step claimed on a live lease is being served, whoever holds it.
    store.claim_steps(["acme.mail/send!"], "elsewhere", 30)
    assert store.unserved(run_id) == ["acme.billing/charge!"]
    assert store.open_steps(["acme.mail/send!"]) == 0 and store.open_steps(["acme.mail/send!"], "elsewhere") == 1
