"""Fixtures of the connectors' tests: a scratch SQLite store (`path`, and `store` open on it,
closed afterwards). A test module with a `store` of its own uses that one."""

from __future__ import annotations

import pytest

from flowmetal.runtime.store import SQLiteStore


@pytest.fixture
def path(tmp_path):
    return tmp_path / "store.db"


@pytest.fixture
def store(path):
    s = SQLiteStore(path)
    yield s
    s.close()
