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
