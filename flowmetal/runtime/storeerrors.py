"""The store's errors, shared by every kind of store.

A module of their own, below `store` and `pgstore`, so that the PostgreSQL
connection layer (`pgstore`) can raise them without importing `store`, which
opens it (`open_store`): imports run one way.
"""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be used as asked: a clear message, for the command line to print."""


class LeaseLost(StoreError):
    """Another worker took the run over (this one's lease expired, or it was claimed again since
    this holder's claim: the lease epoch moved on): its work is discarded."""


class StoreBusy(StoreError):
    """Two transactions waited for each other (PostgreSQL ended one: a deadlock), and this one
    was undone: nothing it did was kept, so it can be done again."""


class ProgramUnreadable(StoreError):
    """A run's stored program cannot be read, and never will be: its record is malformed, names a
    file badly, or names a source the store lacks. Unlike a store that cannot be reached for a
    moment, which is any other `StoreError`."""
