"""The store: programs, runs, their event logs, snapshots, steps, timers and callbacks.

A narrow set of methods (`Store`), written once, over two kinds of store that
`open_store` picks from the location: an SQLite file (`SQLiteStore`, the
default) or a PostgreSQL database (`PostgresStore`, `postgresql://...`, its
connections in `flowmetal.runtime.pgstore`). The SQL is what both accept; what
differs is in the named hooks `Store` lists, so behaviour cannot drift between
them (`tests/store/test_contract.py` runs one suite against both).

SQLite's durability settings: WAL, `synchronous=FULL` (nothing acknowledged is
lost on power failure), `BEGIN IMMEDIATE` for every write transaction (writers
queue at the start instead of failing mid-way: every transaction is alone), a
busy timeout, foreign keys on. Several processes share one store file.
PostgreSQL's transactions run side by side: claims skip rows others hold
(`FOR UPDATE SKIP LOCKED`), and every transaction that changes what a run's
wake-up depends on locks the run's row first, so that a wait being recorded and
what ends it (a delivery, a signal, a step's result, a child's end) meet in one
order, as they do in SQLite.

Fencing: each claim moves the run's lease `epoch` on; `commit` and `heartbeat`
refuse (`LeaseLost`) a holder whose claim is no longer the latest, so a process
that lost its lease (paused past it) can never commit again for that run, even
when the run was claimed meanwhile under the same worker name. Steps claimed by
connectors are fenced the same way, by each step's `claim_epoch`.

Leases need no flush. A transaction that only takes, renews or gives back a lease (a run's
claim and heartbeat, a step's claim, renewal and release) commits without waiting for the
disk (`_lease_transaction`: PostgreSQL's `synchronous_commit=off` for that transaction,
SQLite's `synchronous=NORMAL`). Visible to every process at once all the same; only a crash
of the database's machine can lose it, and losing it is what a lease is made for: the run or
step is claimed again, as when its holder dies, and the holder's later commits are refused
(fencing). It cannot be lost on its own behind a durable commit: both databases write one
log in order, and a durable commit flushes everything before it. So what a run or a step's
result depends on (events, snapshots, requests, results) is flushed before it is
acknowledged, as ever, and the lease traffic around it costs no flush.

Migrations are numbered and applied in order, each in its own transaction (on
PostgreSQL under an advisory lock: processes starting at once migrate once); the
schema version lives in `meta`. A store written by a newer Flowmetal (a version
this code does not know) is refused with a clear message, never guessed at.

A store object is one connection at a time: use one per thread (every part of
Flowmetal that runs in threads opens its own; on PostgreSQL they share a pool).

Tables:
    sources    content-addressed program files (sha256 of the text)
    runs       one row a run: entry, arguments, program, status, lease, wake time, result, and the
               change sequence's value at its latest change (`change_seq`, `Store.changes`)
    events     the run's log, append-only: (run, seq) -> time, kind, step, data, line
    snapshots  the latest state of each run (resuming never replays the log)
    steps      endpoint calls: request, idempotency key, status, result (exactly once)
    timers     durable timers of `sleep!` and `with-timeout!`
    callbacks  callback tokens, and the body delivered to each (once)
    run_keys   Idempotency-Keys of run creation: key -> the request's fingerprint and its run
    settings   the deployment's settings: `store_id` (made once, random: a server on the same
               store says it, so a process can tell that a port is held by its own store's
               server) and `public_url` (callback URLs are built on it; `DEFAULT_PUBLIC_URL`
               until `flowmetal serve` or `FLOWMETAL_PUBLIC_URL` sets it)
    presence   which live processes serve which endpoints: a row a process (or API client),
               refreshed while it runs; a row not refreshed for `PRESENCE_LIVE` seconds is not
               live. A run waiting on a step no live process serves says so (`unserved`)
    signals    signals sent to runs, in arrival order: name, JSON body, optional Idempotency-Key,
               and the step that consumed each (`flowmetal.runtime.signals`)

Child runs (`flowmetal.run`): a run's `parent` names the run that started it (NULL for a
top-level run). A child is created in the very transaction that commits its parent's
`start-run!` step (`commit(children=...)`), under an id derived from the parent's id and
the step (`child_id`), so a crash never makes two children for one step nor loses one.
A run's end (the commit that ends it, or a cancel) wakes its parent, and cancels its
children still going, recursively (`_ended`).

Wake-ups (`_notify`): every transaction that makes work runnable says so inside itself, so
that the word goes out only if it commits: a run created, released pending, or woken (its
`wake_at` set: now, or a new earliest timer) on `RUNS_CHANNEL` with the run's id; a step
left for a connector (created, or given back) on `STEPS_CHANNEL` with its endpoint's name.
On PostgreSQL that is `pg_notify`, which processes LISTEN for (`flowmetal.runtime.wakeups`);
on SQLite nothing (processes of one file poll it, and a process wakes its own loops).
What no transaction announces, a lease running out, is found by polling.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from flowmetal.runtime.program import source_hash, stored_code_hash
# Defined below this module, for the PostgreSQL layer; the rest of Flowmetal imports them from here.
from flowmetal.runtime.storeerrors import LeaseLost, ProgramUnreadable, StoreBusy, StoreError

SCHEMA_VERSION = 13
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8700"
# Endpoints the runtime itself answers: never handed to a connector.
CALLBACK_WAIT = "http.callback/get-callback!"
SIGNAL_WAIT = "flowmetal.signal/receive!"
RUNTIME_ENDPOINTS = f"('{CALLBACK_WAIT}', '{SIGNAL_WAIT}')"
FINAL = ENDED = ("completed", "failed", "cancelled")
# The channels of wake-ups (`Store._notify`), and what each carries: a run's id; an endpoint's name.
RUNS_CHANNEL = "flowmetal_runs"
STEPS_CHANNEL = "flowmetal_steps"
# A run ended (completed, failed, cancelled): its id. For the followers of runs' events (the API's
# live streams), which the two channels above tell of a run's other changes that matter most (a
# step requested, a wait recorded, a wake-up). Not said at every commit: a transaction that
# notifies holds the server's notification queue's lock until it has committed, which made
# concurrent commits take turns (half the commits a second at 8 writers).
ENDED_CHANNEL = "flowmetal_ended"




# Each migration is the SQL it runs, statement by statement, inside the migration's transaction.
# (Written as sqlite-utils wrote them when it made the tables: stores made before and after
# have the very same schema.)
_MIGRATION_1 = [
    '''CREATE TABLE "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
)''',
    '''CREATE TABLE "sources" (
   "hash" TEXT PRIMARY KEY,
   "name" TEXT,
   "text" TEXT
)''',
    '''CREATE TABLE "runs" (
   "id" TEXT PRIMARY KEY,
   "entry" TEXT NOT NULL,
   "args" TEXT,
   "program" TEXT NOT NULL,
   "code_hash" TEXT,
   "status" TEXT NOT NULL,
   "result" TEXT,
   "error" TEXT,
   "created" REAL,
   "updated" REAL,
   "owner" TEXT,
   "lease_until" REAL,
   "wake_at" REAL,
   "next_seq" INTEGER DEFAULT 1,
   "cancel_requested" INTEGER DEFAULT 0
)''',
    '''CREATE INDEX "idx_runs_status_wake_at"
    ON "runs" ("status", "wake_at")''',
    '''CREATE TABLE "events" (
   "run_id" TEXT REFERENCES "runs"("id"),
   "seq" INTEGER,
   "time" REAL,
   "kind" TEXT,
   "step" INTEGER,
   "data" TEXT,
   "line" INTEGER,
   PRIMARY KEY ("run_id", "seq")
)''',
    '''CREATE TABLE "snapshots" (
   "run_id" TEXT PRIMARY KEY REFERENCES "runs"("id"),
   "seq" INTEGER,
   "state" TEXT
)''',
    '''CREATE TABLE "steps" (
   "run_id" TEXT REFERENCES "runs"("id"),
   "step" INTEGER,
   "endpoint" TEXT,
   "args" TEXT,
   "key" TEXT,
   "status" TEXT,
   "result" TEXT,
   "error" TEXT,
   "claimed_by" TEXT,
   "lease_until" REAL,
   "created" REAL,
   "completed" REAL,
   PRIMARY KEY ("run_id", "step")
)''',
    '''CREATE INDEX "idx_steps_endpoint_status"
    ON "steps" ("endpoint", "status")''',
    '''CREATE TABLE "timers" (
   "run_id" TEXT REFERENCES "runs"("id"),
   "step" INTEGER,
   "due" REAL,
   "status" TEXT,
   PRIMARY KEY ("run_id", "step")
)''',
    '''CREATE INDEX "idx_timers_status_due"
    ON "timers" ("status", "due")''',
    '''CREATE TABLE "callbacks" (
   "token" TEXT PRIMARY KEY,
   "run_id" TEXT REFERENCES "runs"("id"),
   "step" INTEGER,
   "created" REAL,
   "body" TEXT,
   "delivered" REAL
)''',
]

# Finding a step's events (its request's line) without reading the run's whole log.
_MIGRATION_2 = [
    '''CREATE INDEX "events_by_step"
    ON "events" ("run_id", "step")''',
]

# A retried `POST /api/runs` with the same Idempotency-Key starts one run. No foreign key:
# the key is recorded just before its run, which a crash in between may leave for the retry.
_MIGRATION_3 = [
    '''CREATE TABLE IF NOT EXISTS "run_keys" (
   "key" TEXT PRIMARY KEY,
   "fingerprint" TEXT NOT NULL,
   "run_id" TEXT NOT NULL,
   "created" REAL
)''',
]

# The deployment's settings (the public URL callback URLs are built on), and the store's id.
_MIGRATION_4 = [
    '''CREATE TABLE IF NOT EXISTS "settings" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT NOT NULL
)''',
    "INSERT OR IGNORE INTO settings(key, value) VALUES('store_id', lower(hex(randomblob(16))))",
]


def _migration(statements: list[str]):
    def migrate(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)
    return migrate


# Which processes serve which endpoints, so that a run waiting on a step nobody serves can say
# so. `name` is the serving part's own name (a connector's worker name); `endpoints` a JSON list.
_MIGRATION_5 = [
    '''CREATE TABLE IF NOT EXISTS "presence" (
   "name" TEXT PRIMARY KEY,
   "pid" INTEGER,
   "host" TEXT,
   "kind" TEXT NOT NULL,
   "endpoints" TEXT NOT NULL,
   "seen" REAL NOT NULL
)''',
    # Finding the open steps (pending, claimed) among all a store's steps, for `unserved_steps`.
    '''CREATE INDEX IF NOT EXISTS "steps_by_status"
    ON "steps" ("status")''',
]


# Signals sent to a run (`flowmetal.signal/receive!`): per run, numbered in arrival order
# (`seq`); `step` is the step that consumed the signal (NULL while it is queued). A key is
# unique per run: a repeated send with it queues nothing.
_MIGRATION_6 = [
    '''CREATE TABLE IF NOT EXISTS "signals" (
   "run_id" TEXT NOT NULL REFERENCES "runs"("id"),
   "seq" INTEGER NOT NULL,
   "name" TEXT NOT NULL,
   "body" TEXT NOT NULL,
   "key" TEXT,
   "sent" REAL,
   "step" INTEGER,
   "consumed" REAL,
   PRIMARY KEY ("run_id", "seq"),
   UNIQUE ("run_id", "key")
)''',
    '''CREATE INDEX IF NOT EXISTS "signals_queued"
    ON "signals" ("run_id", "name", "step", "seq")''',
]


# Child runs: the run that started each (NULL for a top-level run), and its children found
# without reading every run. Like the others, it can be applied again (a column is added once).
_MIGRATION_7 = [
    'ALTER TABLE "runs" ADD COLUMN "parent" TEXT',
    '''CREATE INDEX IF NOT EXISTS "runs_by_parent"
    ON "runs" ("parent")''',
]


def _migrate_7(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute('PRAGMA table_info("runs")')}
    _migration(_MIGRATION_7[1:] if "parent" in columns else _MIGRATION_7)(conn)


MIGRATIONS = {version: _migration(statements) for version, statements in
              enumerate([_MIGRATION_1, _MIGRATION_2, _MIGRATION_3, _MIGRATION_4, _MIGRATION_5,
                                       _MIGRATION_6], start=1)}
MIGRATIONS[7] = _migrate_7


# A run's state in parts (`Machine.snapshot_parts`): the head stays in `snapshots`, each task
# and each environment of a run with tasks is a row here, read and written only when touched.
# The indexes let a resume ask for what came (the run's finished steps, its due timers) without
# naming every step it waits on. A snapshot written before stays one blob, read as it was.
_MIGRATION_8 = [
    '''CREATE TABLE IF NOT EXISTS "snapshot_parts" (
   "run_id" TEXT NOT NULL REFERENCES "runs"("id"),
   "key" TEXT NOT NULL,
   "state" TEXT NOT NULL,
   PRIMARY KEY ("run_id", "key")
)''',
    '''CREATE INDEX IF NOT EXISTS "steps_by_run_status"
    ON "steps" ("run_id", "status", "endpoint")''',
    '''CREATE INDEX IF NOT EXISTS "timers_by_run_status"
    ON "timers" ("run_id", "status", "due")''',
]
MIGRATIONS[8] = _migration(_MIGRATION_8)


# Fencing: a run's lease epoch, moved on by each claim. A holder's commit and heartbeat name
# the epoch it claimed at, so a process that lost its lease (paused past it) and resumed can
# never commit over the run's new holder, even under the same worker name.
def _migrate_9(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute('PRAGMA table_info("runs")')}
    if "epoch" not in columns:
        conn.execute('ALTER TABLE "runs" ADD COLUMN "epoch" INTEGER NOT NULL DEFAULT 0')


MIGRATIONS[9] = _migrate_9


# The change feed (`Store.changes`): each run carries the value of the store-wide change sequence
# its latest change was stamped with. Runs recorded before have theirs in the order they last
# changed (`updated`, then recording order), below any stamp to come.
def _migrate_10(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute('PRAGMA table_info("runs")')}
    if "change_seq" not in columns:
        conn.execute('ALTER TABLE "runs" ADD COLUMN "change_seq" INTEGER')
    conn.execute('UPDATE runs SET change_seq=ordered.n FROM (SELECT id, row_number() OVER (ORDER BY updated, rowid) '
                 'AS n FROM runs) AS ordered WHERE ordered.id=runs.id AND runs.change_seq IS NULL')
    conn.execute('CREATE INDEX IF NOT EXISTS "runs_by_change" ON "runs" ("change_seq")')


MIGRATIONS[10] = _migrate_10


# Fencing of connectors: a step's claim epoch, moved on by each claim of the step. A connector
# records a result (and renews a lease) naming the epoch it claimed at, so the result of a
# request whose claim lapsed is refused even when the same connector claimed the step again.
def _migrate_11(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute('PRAGMA table_info("steps")')}
    if "claim_epoch" not in columns:
        conn.execute('ALTER TABLE "steps" ADD COLUMN "claim_epoch" INTEGER NOT NULL DEFAULT 0')


MIGRATIONS[11] = _migrate_11
# Version 12 is PostgreSQL's function for the commits of inline steps (`pgstore.COMMIT_INLINE`):
# nothing changes in an SQLite store.
MIGRATIONS[12] = lambda conn: None
# Version 13 makes PostgreSQL's index of a run's steps by status partial (`pgstore`). SQLite
# keeps no plan made from how small the tables were at first: its index stays whole.
MIGRATIONS[13] = lambda conn: None


def child_id(parent: str, step: int) -> str:
    """The id of the child run that step `step` of run `parent` starts: the same every time
    the step is made (a retry after a crash, a replay), like the step's idempotency key."""
    return hashlib.sha256(f"{parent}:{step}".encode()).hexdigest()[:16]

PRESENCE_EVERY = 10.0   # seconds between a serving process's refreshes of its presence
PRESENCE_LIVE = 90.0    # seconds after its last refresh that a presence is no longer live (3 leases)
PRESENCE_FORGET = 86400.0  # seconds after which a presence row is deleted


def _again_when_busy(method):
    """Do a write again (up to three times) when the database undid it to end a deadlock
    (`StoreBusy`: nothing of it was kept). Only PostgreSQL's transactions can deadlock: a
    commit that ends a child run locks the child's row, then its parent's, while its parent's
    commit that cancels the child locks them the other way round."""
    @functools.wraps(method)
    def again(self, *args, **kwargs):
        for attempt in range(3):
            try:
                return method(self, *args, **kwargs)
            except StoreBusy:
                if attempt == 2:
                    raise
                time.sleep(0.01 * (attempt + 1))
    return again


def _storable(text: str) -> str:
    """Text SQLite can hold: a lone surrogate (which no value should carry, but a message might
    quote) is written as its `\\uXXXX` escape instead of making the commit, and the run, fail."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class Run:
    id: str
    entry: str
    args: list
    program: dict[str, str]
    code_hash: str
    status: str
    result: str | None
    error: str | None
    created: float
    updated: float
    owner: str | None
    lease_until: float | None
    wake_at: float | None
    next_seq: int
    cancel_requested: bool
    parent: str | None = None   # the run that started this one (`flowmetal.run`), None for a top-level run
    epoch: int = 0              # the lease epoch: how many times the run was claimed (fencing)
    change_seq: int = 0         # the change sequence's value at its latest change (`Store.changes`)


def _run(row) -> Run:
    try:
        return _run_of(row)
    except (ValueError, TypeError, KeyError) as error:
        raise StoreError(f"the store's record of run `{row['id']}` is malformed ({error}); it cannot be "
                         f"read") from None


def _program_of(text: str) -> dict[str, str]:
    """A run's `program` column read: file names to source hashes (ValueError otherwise)."""
    program = json.loads(text)
    if not (isinstance(program, dict) and all(isinstance(v, str) for v in program.values())):
        raise ValueError("its program is not a map of file names to source hashes")
    return program


def _run_of(row) -> Run:
    program, args = _program_of(row["program"]), json.loads(row["args"] or "[]")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise ValueError("its arguments are not a list of literals")
    return Run(row["id"], row["entry"], args, program,
               # From the program itself, not the column: a crafted row naming another run's hash must
               # not be taken for that run's program by anything that caches programs by hash.
               stored_code_hash(program), row["status"], row["result"], row["error"], row["created"], row["updated"],
               row["owner"], row["lease_until"], row["wake_at"], row["next_seq"], bool(row["cancel_requested"]),
               row["parent"] if "parent" in row.keys() else None,  # a store older than child runs: none
               row["epoch"] if "epoch" in row.keys() else 0,
               (row["change_seq"] or 0) if "change_seq" in row.keys() else 0)


@dataclass
class Event:
    seq: int
    time: float
    kind: str
    step: int | None
    data: dict
    line: int | None


def _event(run_id: str, row) -> Event:
    try:
        data = json.loads(row["data"] or "{}")
        if not isinstance(data, dict):
            raise ValueError("its data is not an object")
    except ValueError as error:
        raise StoreError(f"the store's event {row['seq']} of run `{run_id}` is malformed ({error}); it cannot "
                         f"be read") from None
    return Event(row["seq"], row["time"], row["kind"], row["step"], data, row["line"])


@dataclass
class Sent:
    """What sending a signal did (`SQLiteStore.send_signal`)."""
    outcome: str
    seq: int | None = None
    name: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What recording a step's result or failure did (`complete_step`, `fail_step` and their
    claimed forms): true only when it was recorded; otherwise `outcome` says why it was refused,
    decided inside the transaction that tried:

        recorded    the result is the step's (the run wakes)
        unknown     no such step (or no such run)
        done        the step has its outcome already (`status`: completed, failed or applied)
        cancelled   the step was cancelled (its run ended, or a timeout ended its wait)
        lost        the claim is no longer the caller's (`holder`: who holds it now, None when
                    it was given back or its step is pending again)
    """
    outcome: str
    status: str | None = None
    holder: str | None = None

    def __bool__(self) -> bool:
        return self.outcome == "recorded"

    @property
    def reason(self) -> str:
        """Why it was refused, in words (empty when recorded)."""
        return {
            "recorded": "",
            "unknown": "there is no such step",
            "done": f"the step is {self.status} already: it takes one result",
            "cancelled": "the step was cancelled (its run ended, or a timeout ended its wait)",
            "lost": (f"the step is claimed by `{self.holder}` now (this claim's lease ran out)" if self.holder
                     else "the step is no longer claimed by this connector (given back, or its lease ran out)"),
        }[self.outcome]


RECORDED = Recorded("recorded")


def _same_json(a: str, b: str) -> bool:
    """Whether two JSON texts hold the same value (key order aside; 1, 1.0 and true differ)."""
    try:
        return (json.dumps(json.loads(a), sort_keys=True) == json.dumps(json.loads(b), sort_keys=True))
    except ValueError:
        return a == b


class Store:
    """The store's logic, written once for every kind of store (`SQLiteStore`, `PostgresStore`).

    The SQL here is what SQLite and PostgreSQL both accept (`?` placeholders, which the
    PostgreSQL layer turns into its own; `INSERT ... ON CONFLICT`). Where the two differ, the
    logic calls a named hook that each kind of store defines:

        transaction()     a write transaction: `with store.transaction() as conn: conn.execute(...)`
        _lease_transaction()  one that changes only leases (claims, renewals, give-backs): its
                          commit waits for no disk flush (below, "Leases need no flush")
        _one, _all        a read outside any transaction
        _now(conn, now)   the time to stamp and compare with: SQLite the caller's `now` or this
                          machine's clock; PostgreSQL always the database's clock, so that
                          leases, timers and due times agree between machines
        _lock_run         take the run's row for this transaction, before reading what a wake-up
                          depends on (SQLite: nothing, `BEGIN IMMEDIATE` serialises every writer;
                          PostgreSQL: `FOR UPDATE`, so a wait and a delivery meet whichever is first)
        _claiming         the suffix of a claim's SELECT (PostgreSQL: `FOR UPDATE SKIP LOCKED`)
        _json_text        a string field of a JSON text column
        _recorded         the order runs were recorded in
        _notify           tell listening processes, when this transaction commits, that work is
                          runnable (SQLite: nothing; PostgreSQL: `pg_notify`)
        change_token      a value that changes whenever anything was committed, by any process
        _stamp            the change sequence's next value, in SQL, for the run a transaction changes
        _settled          the condition on `change_seq` a run's change must meet to be read by `changes`
        _tables, MIGRATIONS, _migration_lock   the schema and its versions
    """

    path: str
    readonly: bool = False
    MIGRATIONS: dict = {}
    _locking = ""    # the suffix of a SELECT that takes its rows for the transaction
    _claiming = ""   # the suffix of a claim's SELECT: rows others hold are passed over
    _recorded = "created, rowid"
    # The change feed on SQLite: every write transaction holds the whole store (`BEGIN IMMEDIATE`),
    # so the next value is the highest so far plus one (an index's last entry), and values become
    # visible in the order they were taken: every committed change can be read at once.
    _stamp = "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM runs)"
    _settled = ""

    _clock = "NULL"  # the store's clock in SQL, where it is the database's (`commit` reads it with the run)

    def _commit_transaction(self):
        """The transaction of `commit`: by default an ordinary one."""
        return self.transaction()

    def _lock_run(self, conn, run_id: str) -> None:
        if self._locking:  # nothing to do where every write transaction holds the whole store (SQLite)
            conn.execute("SELECT 1 FROM runs WHERE id=?" + self._locking, (run_id,))

    def _migration_lock(self, conn) -> None:
        """Nothing to do where every write transaction holds the whole store (SQLite)."""

    def _lease_transaction(self):
        """A write transaction that only moves leases: committed without a flush (see the
        module's docstring). By default an ordinary one."""
        return self.transaction()

    def _notify(self, conn, channel: str, payload: str) -> None:
        """Nothing to do where no process listens (SQLite: they poll the file)."""

    def _woke(self, conn, run_id: str, changed: int = 1) -> None:
        """A run of this transaction became runnable, or its wake time changed (`changed`: the
        rows the update changed; 0 notifies nobody)."""
        if changed:
            self._notify(conn, RUNS_CHANNEL, run_id)

    def _wake(self, conn, run_id: str, now: float) -> None:
        """Wake the run now if it waits (something it may wait for came): a change the feed
        reports, and a word to the processes that listen."""
        self._woke(conn, run_id, conn.execute(f"UPDATE runs SET wake_at=?, change_seq={self._stamp} WHERE id=? "
                                              "AND status='waiting'", (now, run_id)).rowcount)

    @staticmethod
    def _json_text(column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def _now(self, conn=None, now: float | None = None) -> float:
        return time.time() if now is None else now

    def clock(self) -> float:
        """The store's clock, in Unix seconds: the one its leases, timers and due times are
        compared with (this machine's for SQLite, the database's for PostgreSQL)."""
        return self._now()

    def _newer(self, current: int) -> StoreError:
        return StoreError(f"{self.path}: this store has schema version {current}, written by a newer "
                          f"Flowmetal; this one knows versions up to {SCHEMA_VERSION}. Upgrade Flowmetal "
                          f"to use it (nothing was changed).")

    # -- schema ---------------------------------------------------------------------------------

    def version(self, conn=None) -> int:
        if "meta" not in self._tables(conn):
            return 0
        query = "SELECT value FROM meta WHERE key='schema_version'"
        row = conn.execute(query).fetchone() if conn is not None else self._one(query)
        return int(row["value"]) if row else 0

    def _migrate(self) -> None:
        current = self.version()
        if current > SCHEMA_VERSION:
            raise self._newer(current)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction() as conn:
                self._migration_lock(conn)
                if self.version(conn) >= version:  # another process migrated meanwhile
                    continue
                self.MIGRATIONS[version](conn)
                conn.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?) ON CONFLICT(key) DO "
                             "UPDATE SET value=excluded.value", (str(version),))

    # -- settings of the deployment ----------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        """A setting's value, or None (also in a store older than the settings, read-only)."""
        if self.readonly and self.version() < 4:
            return None
        row = self._one("SELECT value FROM settings WHERE key=?", (key,))
        return row["value"] if row else None

    def store_id(self) -> str | None:
        """The store's id: random, made with the store's settings, the same for every process."""
        return self.setting("store_id")

    def public_url(self) -> str:
        """The URL callback URLs are built on: the one set, else `DEFAULT_PUBLIC_URL`."""
        return self.setting("public_url") or DEFAULT_PUBLIC_URL

    def set_public_url(self, url: str) -> str | None:
        """Set the public URL (checked by the caller); the one set before, if any."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key='public_url'").fetchone()
            conn.execute("INSERT INTO settings(key, value) VALUES('public_url', ?) ON CONFLICT(key) DO UPDATE SET "
                         "value=excluded.value", (url,))
        return row["value"] if row else None

    # -- programs ----------------------------------------------------------------------------------

    def put_sources(self, sources: dict[str, str]) -> dict[str, str]:
        """Store a program's files, content-addressed; their names -> hashes. Each name must be
        a plain relative file name (`flowmetal.lang.filenames`): nothing is stored otherwise."""
        from flowmetal.lang import filenames
        for name in sources:
            why = filenames.problem(name)
            if why is not None:
                raise StoreError(f"bad file name {filenames.shown(name)} in a program to store: {why} "
                                 f"(nothing was stored)")
        out = {}
        with self.transaction() as conn:
            for name, text in sources.items():
                digest = source_hash(text)
                conn.execute("INSERT INTO sources(hash, name, text) VALUES(?, ?, ?) ON CONFLICT DO NOTHING",
                             (digest, name, text))
                out[name] = digest
        return out

    def get_sources(self, program: dict[str, str]) -> dict[str, str]:
        """A run's program (`Run.program`: names -> hashes): names -> texts. A store may come
        from anywhere (one shipped in a repository): a name that is not a plain relative file
        name (`flowmetal.lang.filenames`), which tools would turn into a path outside the program's
        folder, is refused."""
        from flowmetal.lang import filenames
        if not isinstance(program, dict) or not all(isinstance(d, str) for d in program.values()):
            raise ProgramUnreadable(f"{self.path}: a run's program is not a map of file names to source hashes")
        for name in program:
            why = filenames.problem(name)
            if why is not None:
                raise ProgramUnreadable(f"{self.path}: a run's program has a bad file name "
                                        f"{filenames.shown(name)}: {why}; it is not read")
        out = {}
        for name, digest in program.items():
            row = self._one("SELECT text FROM sources WHERE hash=?", (digest,))
            if row is None:
                raise ProgramUnreadable(f"the store lacks the source {digest[:12]} of {name}")
            out[name] = row["text"]
        return out

    # -- runs ----------------------------------------------------------------------------------------

    def create_run(self, entry: str, args_literals: list[str], program: dict[str, str], code_hash: str,
                   run_id: str | None = None, origin: str | None = None) -> str:
        """Record a new pending run. `origin` is the directory its files were read from, kept in
        its first event so that tools can show a run's code in the files it came from."""
        run_id = run_id or uuid.uuid4().hex[:16]
        with self.transaction() as conn:
            if self._insert_run(conn, run_id, entry, args_literals, program, code_hash, self._now(conn), origin=origin):
                self._woke(conn, run_id)
        return run_id

    def _insert_run(self, conn, run_id: str, entry: str, args_literals: list[str], program: dict[str, str],
                    code_hash: str, now: float, origin: str | None = None, parent: str | None = None) -> bool:
        """Insert a pending run and its `run-started` event (inside a transaction); False, changing
        nothing, when a run of that id exists already."""
        started = {"entry": entry, "args": args_literals, "code": code_hash}
        if origin is not None:
            started["origin"] = origin
        if parent is not None:
            started["parent"] = parent
        started["task"] = 0  # every event names its task; the entry's own is 0
        cur = conn.execute("INSERT INTO runs(id, entry, args, program, code_hash, status, created, "
                           f"updated, next_seq, parent, change_seq) VALUES(?, ?, ?, ?, ?, 'pending', ?, ?, 2, ?, "
                           f"{self._stamp}) ON CONFLICT DO NOTHING",
                           (run_id, entry, json.dumps(args_literals), json.dumps(program), code_hash, now, now,
                            parent))
        if cur.rowcount != 1:
            return False
        conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) VALUES(?, 1, ?, "
                     "'run-started', NULL, ?, NULL)", (run_id, now, json.dumps(started)))
        return True

    def get_run(self, run_id: str) -> Run | None:
        row = self._one("SELECT * FROM runs WHERE id=?", (run_id,))
        return _run(row) if row else None

    def find_run(self, prefix: str) -> Run:
        """A run by its id, or a unique prefix of it."""
        rows = self._all("SELECT * FROM runs WHERE id LIKE ? ORDER BY created LIMIT 2",
                                 (prefix.replace("%", "") + "%",))
        if not rows:
            raise StoreError(f"no run `{prefix}` in {self.path}")
        if len(rows) > 1 and rows[0]["id"] != prefix:
            raise StoreError(f"`{prefix}` names more than one run: give more of its id")
        return _run(rows[0])

    def list_runs(self, since: float | None = None, *, statuses: Collection[str] | None = None,
                  entries: Collection[str] | None = None, last: int | None = None) -> list[Run]:
        """Every run, oldest first (in the order they were recorded); or those updated at or after
        the Unix time `since` (by the clock of whoever changed them: what `changes` replaces, kept
        for HTTP clients that still ask so). Narrowed by the database, for stores of many runs:
        `statuses`, the runs in one of them; `entries`, the runs whose entry, as recorded, is one
        of them, or, for one without a `/` (a function's name alone), ends with `/` and it (that
        function of any package); `last`, only the `last` recorded last (still oldest first)."""
        where, params = [], []
        if since is not None:
            where.append("updated >= ?")
            params.append(since)
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})" if statuses else "0=1")
            params += list(statuses)
        if entries is not None:
            alternatives = []
            for entry in entries:
                alternatives.append("entry = ?")
                params.append(entry)
                if "/" not in entry:  # exact and case-sensitive in both databases, unlike LIKE
                    alternatives.append("substr(entry, length(entry) - ?) = ?")
                    params += [len(entry), "/" + entry]
            where.append(f"({' OR '.join(alternatives)})" if alternatives else "0=1")
        query = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        if last is None:
            return [_run(r) for r in self._all(f"{query} ORDER BY {self._recorded}", params)]
        order = ", ".join(f"{column} DESC" for column in self._recorded.split(", "))
        rows = self._all(f"{query} ORDER BY {order} LIMIT ?", [*params, last])
        return [_run(r) for r in reversed(rows)]

    def count_runs(self) -> list[tuple[str, dict[str, str], int]]:
        """How many runs there are of each entry and program: (entry as recorded, program,
        count), counted by the database rather than by reading every run (the editors' "Trace
        (n runs)" lenses ask on every change of a file's diagnostics)."""
        out = []
        for row in self._all("SELECT entry, program, COUNT(*) AS n FROM runs GROUP BY entry, program"):
            try:
                program = _program_of(row["program"])
            except (ValueError, TypeError) as error:
                raise StoreError(f"{self.path}: a run of `{row['entry']}` has a malformed program ({error}); the "
                                 f"runs cannot be counted") from None
            out.append((row["entry"], program, row["n"]))
        return out

    # -- the change feed ---------------------------------------------------------------------------
    # Every change to a run (created, claimed, new events, a status change, woken, a cancel asked
    # for or done, ended) stamps it, in the transaction that makes the change, with the store-wide
    # change sequence's next value (`_stamp`): `runs.change_seq`. A follower keeps a cursor, the
    # highest value it has read, and asks for the runs stamped above it: each change is read
    # once, in the order of the sequence, whatever the clocks of the machines that made it. A run
    # changed twice between two looks is read once, as it is at the second. What "read once"
    # takes on PostgreSQL, whose transactions commit side by side, is in `PostgresStore`.

    def changes(self, after: int = 0) -> tuple[list[Run], int]:
        """The runs changed since the cursor `after` (0: every run), in the order of their latest
        changes, and the cursor to ask with next time: `after` again when nothing changed. Any
        change not read here has a value above the new cursor. An older store only read (no
        change sequence): every run, and `after` as it was."""
        if self.readonly and self.version() < 10:
            return self.list_runs(), after
        rows = self._all(f"SELECT * FROM runs WHERE change_seq > ?{self._settled} ORDER BY change_seq, "
                         f"{self._recorded}", (after,))
        runs = [_run(r) for r in rows]
        return runs, max([after, *(run.change_seq for run in runs)])

    def change_cursor(self) -> int:
        """A cursor that every change read by a later `list_runs()` is at or below: a follower that
        starts with a whole listing reads what changes after it from here (`changes`)."""
        if self.readonly and self.version() < 10:
            return 0
        row = self._one(f"SELECT COALESCE(MAX(change_seq), 0) FROM runs WHERE 1=1{self._settled}")
        return int(row[0])

    def children(self, run_id: str) -> list[Run]:
        """The runs `run_id` started (`flowmetal.run/start-run!`), oldest first."""
        if self.readonly and self.version() < 6:
            return []
        rows = self._all(f"SELECT * FROM runs WHERE parent=? ORDER BY {self._recorded}", (run_id,))
        return [_run(r) for r in rows]

    def descendants(self, run_id: str) -> list[Run]:
        """Its children, theirs, and so on: each run after its parent."""
        out, todo = [], [run_id]
        while todo:
            kids = self.children(todo.pop(0))
            out += kids
            todo += [k.id for k in kids]
        return out

    def has_unfinished_runs(self) -> bool:
        row = self._one("SELECT 1 FROM runs WHERE status NOT IN ('completed','failed','cancelled') LIMIT 1")
        return row is not None

    def claim(self, worker: str, lease: float, now: float | None = None, run_id: str | None = None) -> Run | None:
        """Take a runnable run: new, woken (timer due or step completed), or whose lease expired.
        Each claim moves the run's lease epoch on (`Run.epoch`): what this holder commits later
        is refused once anyone (even under the same worker name) has claimed the run again."""
        with self._lease_transaction() as conn:
            now = self._now(conn, now)
            query = ("SELECT * FROM runs WHERE (status='pending' OR (status='waiting' AND wake_at IS NOT NULL "
                     "AND wake_at<=?) OR (status='running' AND lease_until<?))")
            params: list = [now, now]
            if run_id is not None:
                query += " AND id=?"
                params.append(run_id)
            row = conn.execute(query + " ORDER BY COALESCE(wake_at, created) LIMIT 1" + self._claiming,
                               params).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE runs SET status='running', owner=?, lease_until=?, updated=?, epoch=epoch+1, "
                         f"change_seq={self._stamp} WHERE id=?", (worker, now + lease, now, row["id"]))
        run = _run(row)
        run.status, run.owner, run.lease_until, run.epoch = "running", worker, now + lease, run.epoch + 1
        return run

    def heartbeat(self, run: Run | str, worker: str, lease: float, epoch: int | None = None) -> None:
        """Renew the lease `worker` holds on the run; `LeaseLost` when it holds it no more. Given
        the holder's `Run` (or its `epoch`), only while nobody claimed the run since (fencing)."""
        run_id = run.id if isinstance(run, Run) else run
        epoch = run.epoch if isinstance(run, Run) else epoch
        with self._lease_transaction() as conn:
            cur = conn.execute("UPDATE runs SET lease_until=? WHERE id=? AND owner=? AND status='running' AND "
                               "epoch=COALESCE(?, epoch)", (self._now(conn) + lease, run_id, worker, epoch))
            if cur.rowcount != 1:
                raise LeaseLost(run_id)

    def next_wake(self, leases: bool = False) -> float | None:
        """The earliest wake time of a waiting run (on the store's clock), or None. With
        `leases`, or the earliest end of a running run's lease, when another process may take
        the run over: what a process that is told of everything else must still wake for."""
        if leases:
            row = self._one("SELECT MIN(CASE WHEN status='waiting' THEN wake_at ELSE lease_until END) AS w "
                            "FROM runs WHERE status IN ('waiting','running')")
        else:
            row = self._one("SELECT MIN(wake_at) AS w FROM runs WHERE status='waiting'")
        return row["w"]

    def listen(self, event, runs: bool = False, endpoints: Collection[str] | None = None, changes: bool = False):
        """Have `event` (a `threading.Event`) set when another process makes work runnable: a run
        (`runs`), or a step of one of `endpoints`; with `changes`, also a step of any endpoint and
        a run's end (what followers of runs' events are woken by): a subscription (`listening`,
        `close()`), or None where no notifications come (SQLite). See
        `flowmetal.runtime.wakeups`."""
        return None

    # -- committing a run's progress ----------------------------------------------------------------

    @_again_when_busy
    def commit(self, run: Run, worker: str, events: list[tuple], *, snapshot: dict | None = None,
               status: str | None = None, wake_at: float | None = None, result: str | None = None,
               error: str | None = None, steps: list[tuple] = (), timers: list[tuple] = (),
               callbacks: list[tuple] = (), completed_steps: list[tuple] = (), cancelled_steps: list[int] = (),
               fired_timers: list[int] = (), signals: list[tuple] = (), release: bool = False,
               applied_steps: list[int] = (), children: list[tuple] = (), cancel_children: list[str] = (),
               awaited_children: list[str] = (), parts: dict[str, str | None] | None = None,
               inline_steps: list[tuple] = (), inline_results: list[tuple] = ()) -> dict[int, int]:
        """Append events and record the run's new state, in one transaction, if this worker
        still holds the run. Events are (kind, step, data, line); seqs are assigned here.
        `signals`: (signal seq, step) of the signals the run consumed, recorded with the events
        and the snapshot that follow from them. `applied_steps`: finished steps the run took
        (a failure given to its task, a result nobody waits for any more), like
        `completed_steps` marked `applied`. A run that now waits and has a finished step it
        has not taken (answered while it ran, which no answer wakes), or a signal queued for a
        `receive!` of its, wakes at once; a waiting run's wake time is its earliest timer
        still set. `parts`: rows of the run's state in parts, by key (None deletes one),
        written with `snapshot`, its head. `children`: (id,
        entry, argument literals) of child runs its steps started, created here (pinned to its
        program); `cancel_children`: child runs it cancelled; `awaited_children`: the children
        it waits for, any of which ended already wakes it at once. A run that ends here wakes
        its parent and cancels its children still going.

        Steps performed in the run's own process (`inline_steps`: (step, endpoint, args, key))
        are requested under the run's own lease: no row is written for them and no connector
        is told of them (a crash before their results are committed leaves the run's snapshot
        waiting on them, and whoever resumes the run asks for them again, `steps`). The answer
        is {step: 1} of those the store does not know; a step it knows already (given back,
        answered) is not performed here: the run waits for it as for any other.
        `inline_results`: (step, endpoint, args, key, status, text) of such steps performed
        since, each recorded once, `applied` (taken by the run) with its result (`completed`)
        or error (`failed`) and `worker` as who performed it; `LeaseLost` if the store knows
        the step already (another performed it)."""
        with self._commit_transaction() as conn:
            # The store's clock read with the run's row: one round trip, not two.
            row = conn.execute(f"SELECT owner, status, next_seq, cancel_requested, epoch, {self._clock} AS now "
                               "FROM runs WHERE id=?" + self._locking, (run.id,)).fetchone()
            if (row is None or row["owner"] != worker or row["status"] != "running"
                    or row["epoch"] != run.epoch):  # claimed again since this holder's claim
                raise LeaseLost(run.id)
            now = self._now(conn) if row["now"] is None else row["now"]
            seq = row["next_seq"]
            rows = []
            for kind, step, data, line in events:
                rows.append((run.id, seq, data.pop("_time", now) if isinstance(data, dict) else now, kind, step,
                             json.dumps(data), line))
                seq += 1
            for i in range(0, len(rows), 400):  # one statement for many events (SQLite's limit on parameters)
                chunk = rows[i:i + 400]
                conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) VALUES"
                             + ",".join(["(?,?,?,?,?,?,?)"] * len(chunk)), [v for r in chunk for v in r])
            self._consume_signals(conn, run.id, signals, now)  # before the waits: they look at the queue
            woken = False
            for step, endpoint, args, key in steps:
                conn.execute("INSERT INTO steps(run_id, step, endpoint, args, key, status, created) "
                             "VALUES(?,?,?,?,?,'pending',?) ON CONFLICT DO NOTHING", (run.id, step, endpoint, args,
                                                                                      key, now))
                if endpoint == CALLBACK_WAIT:
                    woken |= self._meet_delivery(conn, run.id, step, json.loads(args)["token"], now)
                elif endpoint == SIGNAL_WAIT:
                    woken |= self._meet_signal(conn, run.id, json.loads(args)["name"])
                else:  # left for a connector
                    self._notify(conn, STEPS_CHANNEL, endpoint)
            # Sent together, their answers read after (one round trip on a pipelined connection).
            recorded = []
            for step, endpoint, args, key, outcome, text in inline_results:
                column = "result" if outcome == "completed" else "error"
                recorded.append(conn.execute(f"INSERT INTO steps(run_id, step, endpoint, args, key, status, {column}, "
                                             "created, completed, claimed_by) VALUES(?,?,?,?,?,'applied',?,?,?,?) "
                                             "ON CONFLICT DO NOTHING",
                                             (run.id, step, endpoint, args, key, text, now, now, worker)))
            known = [(step, conn.execute("SELECT 1 FROM steps WHERE run_id=? AND step=?", (run.id, step)))
                     for step, _endpoint, _args, _key in inline_steps]
            if any(cur.rowcount != 1 for cur in recorded):
                raise LeaseLost(run.id)
            unknown = {step: 1 for step, cur in known if cur.fetchone() is None}
            for step, result_json in completed_steps:
                conn.execute("INSERT INTO steps(run_id, step, endpoint, args, key, status, result, created, "
                             "completed) VALUES(?, ?, '', '', ?, 'applied', ?, ?, ?) ON CONFLICT(run_id, step) DO "
                             "UPDATE SET status='applied'", (run.id, step, f"{run.id}:{step}", result_json, now, now))
            for step in applied_steps:
                conn.execute("UPDATE steps SET status='applied' WHERE run_id=? AND step=? AND status IN "
                             "('completed','failed')", (run.id, step))
            for step, due in timers:  # before cancellations: a timer may be set and cancelled at once
                conn.execute("INSERT INTO timers(run_id, step, due, status) VALUES(?,?,?,'set') ON CONFLICT(run_id, "
                             "step) DO UPDATE SET due=excluded.due, status=excluded.status", (run.id, step, due))
            for step in cancelled_steps:
                conn.execute("UPDATE steps SET status='cancelled' WHERE run_id=? AND step=? AND status IN "
                             "('pending','claimed')", (run.id, step))
                conn.execute("UPDATE timers SET status='cancelled' WHERE run_id=? AND step=? AND status='set'",
                             (run.id, step))
            for step in fired_timers:
                conn.execute("UPDATE timers SET status='fired' WHERE run_id=? AND step=?", (run.id, step))
            for token, step in callbacks:
                conn.execute("INSERT INTO callbacks(token, run_id, step, created) VALUES(?,?,?,?) ON CONFLICT DO "
                             "NOTHING",
                             (token, run.id, step, now))
            for child, entry, args in children:
                if self._insert_run(conn, child, entry, args, run.program, run.code_hash, now, parent=run.id):
                    self._woke(conn, child)
            for child in cancel_children:
                self._cancel(conn, child, now)
            if status == "waiting":
                # What came while the run ran, after the executor's last look (which no answer
                # wakes: the run was `running`), found by the indexes, not by naming each wait.
                woken |= conn.execute("SELECT 1 FROM steps WHERE run_id=? AND status IN ('completed','failed') "
                                      "LIMIT 1", (run.id,)).fetchone() is not None
                for step_row in conn.execute("SELECT args FROM steps WHERE run_id=? AND status='pending' AND "
                                             "endpoint=?", (run.id, SIGNAL_WAIT)).fetchall():
                    woken |= self._meet_signal(conn, run.id, json.loads(step_row["args"])["name"])
                # A child that ended after the executor looked, before this wait was recorded.
                if awaited_children:
                    woken |= self._any_ended(conn, list(awaited_children))
                due = conn.execute("SELECT MIN(due) AS due FROM timers WHERE run_id=? AND status='set'",
                                   (run.id,)).fetchone()["due"]
                if due is not None:
                    wake_at = due if wake_at is None else min(wake_at, due)
            if snapshot is not None:
                conn.execute("INSERT INTO snapshots(run_id, seq, state) VALUES(?,?,?) ON CONFLICT(run_id) DO UPDATE "
                             "SET seq=excluded.seq, state=excluded.state",
                             (run.id, seq - 1, snapshot if isinstance(snapshot, str)  # written once already
                              else json.dumps(snapshot, separators=(",", ":"))))
            for key, text in (parts or {}).items():
                if text is None:
                    conn.execute("DELETE FROM snapshot_parts WHERE run_id=? AND key=?", (run.id, key))
                else:
                    conn.execute("INSERT INTO snapshot_parts(run_id, key, state) VALUES(?,?,?) ON CONFLICT "
                                 "(run_id, key) DO UPDATE SET state=excluded.state", (run.id, key, text))
            sets = ["next_seq=?", "updated=?", f"change_seq={self._stamp}"]
            params: list = [seq, now]
            if status is not None:
                sets.append("status=?")
                params.append(status)
            if status is not None or release:
                sets.append("wake_at=?")
                # A callback delivered (or a signal sent) before this wait was recorded wakes the run at once.
                params.append(now if woken and status == "waiting" else wake_at)
            if result is not None:
                sets.append("result=?")
                params.append(_storable(result))
            if error is not None:
                sets.append("error=?")
                params.append(_storable(error))
            if release:
                sets += ["owner=NULL", "lease_until=NULL"]
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id=?", (*params, run.id))
            if status == "pending" or (status == "waiting" and (woken or wake_at is not None)):
                self._woke(conn, run.id)  # runnable again, or at a time some process must wake for
            if status in ENDED:
                self._ended(conn, run.id, now)
        return unknown

    # -- child runs -------------------------------------------------------------------------------------

    @staticmethod
    def _any_ended(conn, run_ids: list[str]) -> bool:
        for i in range(0, len(run_ids), 500):  # SQLite's limit on a statement's parameters
            chunk = run_ids[i:i + 500]
            row = conn.execute(f"SELECT 1 FROM runs WHERE id IN ({','.join('?' * len(chunk))}) AND status IN "
                               f"{ENDED} LIMIT 1", chunk).fetchone()
            if row is not None:
                return True
        return False

    def _ended(self, conn, run_id: str, now: float) -> None:
        """Run `run_id` just ended: its parent, if it waits, wakes (to give the outcome to what
        awaits it), and its children still going are cancelled, theirs too (a child never
        outlives its parent). Its followers are told (`ENDED_CHANNEL`)."""
        self._notify(conn, ENDED_CHANNEL, run_id)
        parent = conn.execute("SELECT parent FROM runs WHERE id=?", (run_id,)).fetchone()
        if parent is not None and parent["parent"] is not None:
            self._lock_run(conn, parent["parent"])  # so that the parent's wait, if it is being recorded, sees this end
            self._wake(conn, parent["parent"], now)
        todo = [run_id]
        while todo:  # a loop, not recursion: however deep the children go
            for row in conn.execute(f"SELECT id FROM runs WHERE parent=? AND status NOT IN {ENDED}",
                                    (todo.pop(),)).fetchall():
                if self._cancel_one(conn, row["id"], now) == "cancelled":
                    todo.append(row["id"])

    def _cancel(self, conn, run_id: str, now: float) -> str:
        """Cancel a run inside a transaction: a run being advanced is asked to stop (its worker
        ends it at its next look, within a second); any other ends now, with what it waits
        for, and so do its children. Its status afterwards ("cancelling" while running)."""
        status = self._cancel_one(conn, run_id, now)
        if status == "cancelled":
            self._ended(conn, run_id, now)
        return status.removeprefix("ended ")

    def _cancel_one(self, conn, run_id: str, now: float) -> str:
        """`_cancel` without the run's children: "cancelled" when it was ended here."""
        row = conn.execute("SELECT status, next_seq FROM runs WHERE id=?" + self._locking, (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run `{run_id}`")
        if row["status"] in ENDED:
            return "ended " + row["status"]
        if row["status"] == "running":
            conn.execute(f"UPDATE runs SET cancel_requested=1, change_seq={self._stamp} WHERE id=?", (run_id,))
            return "cancelling"
        conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) VALUES(?,?,?,?,NULL,?,NULL)",
                     (run_id, row["next_seq"], now, "run-cancelled", json.dumps({"task": 0})))
        conn.execute("UPDATE runs SET status='cancelled', next_seq=next_seq+1, wake_at=NULL, updated=?, "
                     f"change_seq={self._stamp} WHERE id=?", (now, run_id))
        conn.execute("UPDATE steps SET status='cancelled' WHERE run_id=? AND status IN ('pending','claimed')",
                     (run_id,))
        conn.execute("UPDATE timers SET status='cancelled' WHERE run_id=? AND status='set'", (run_id,))
        return "cancelled"

    def snapshot(self, run_id: str) -> dict | None:
        """The run's latest snapshot: the whole state (a run without tasks, or written before
        states were stored in parts), or the head of one in parts (`snapshot_parts`)."""
        row = self._one("SELECT state FROM snapshots WHERE run_id=?", (run_id,))
        if row is None:
            return None
        try:
            return json.loads(row["state"])
        except ValueError as error:
            raise StoreError(f"the store's snapshot of run `{run_id}` is malformed ({error})") from None

    def snapshot_parts(self, run_id: str, keys: Collection[str]) -> dict[str, str]:
        """The stored parts of the run's state among `keys`, as text (a key not stored is absent)."""
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):  # SQLite's limit on a statement's parameters
            chunk = keys[i:i + 500]
            for row in self._all(f"SELECT key, state FROM snapshot_parts WHERE run_id=? AND key IN "
                                 f"({','.join('?' * len(chunk))})", (run_id, *chunk)):
                out[row["key"]] = row["state"]
        return out

    def events(self, run_id: str, after: int = 0, until: int | None = None, kind: str | None = None) -> list[Event]:
        """The run's events after `after` (and up to `until`), of one `kind` if given, in order."""
        query, params = "SELECT * FROM events WHERE run_id=? AND seq>?", [run_id, after]
        if until is not None:
            query += " AND seq<=?"
            params.append(until)
        if kind is not None:
            query += " AND kind=?"
            params.append(kind)
        return [_event(run_id, r) for r in self._all(query + " ORDER BY seq", params)]

    # -- steps, timers, callbacks ----------------------------------------------------------------------

    def step(self, run_id: str, step: int):
        return self._one("SELECT * FROM steps WHERE run_id=? AND step=?", (run_id, step))

    def open_steps_of(self, run_id: str) -> list:
        """The run's steps still pending or claimed, in step order: rows (step, endpoint)."""
        return self._all("SELECT step, endpoint FROM steps WHERE run_id=? AND status IN ('pending','claimed') "
                         "ORDER BY step", (run_id,))

    def request_line(self, run_id: str, step: int) -> int | None:
        """The line of the step's `step-requested` event, if there is one."""
        row = self._one("SELECT line FROM events WHERE run_id=? AND step=? AND kind='step-requested'", (run_id, step))
        return row["line"] if row else None

    def finished_steps(self, run_id: str, steps: list[int] | None = None) -> list:
        """The rows of those of `steps` that completed or failed and the run has not taken yet
        (one query for any number); without `steps`, all such steps of the run (an index's)."""
        if steps is None:
            return self._all("SELECT * FROM steps WHERE run_id=? AND status IN ('completed','failed')", (run_id,))
        rows = []
        for i in range(0, len(steps), 500):  # SQLite's limit on a statement's parameters
            chunk = steps[i:i + 500]
            rows += self._all(
                f"SELECT * FROM steps WHERE run_id=? AND status IN ('completed','failed') AND step IN "
                f"({','.join('?' * len(chunk))})", (run_id, *chunk))
        return rows

    def due_timers(self, run_id: str, now: float) -> list:
        """The run's timers still set that are due by `now`: (step, due) rows, an index's."""
        return self._all("SELECT step, due FROM timers WHERE run_id=? AND status='set' AND due<=?", (run_id, now))

    def timer(self, run_id: str, step: int):
        return self._one("SELECT * FROM timers WHERE run_id=? AND step=?", (run_id, step))

    def complete_step(self, run_id: str, step: int, result_json: str) -> Recorded:
        """Record an endpoint's result, once, whoever claimed the step. Wakes the run. Refused
        (a false `Recorded` saying why) when the step is unknown, done or cancelled."""
        with self.transaction() as conn:
            self._lock_run(conn, run_id)
            now = self._now(conn)
            cur = conn.execute("UPDATE steps SET status='completed', result=?, completed=? WHERE run_id=? AND "
                               "step=? AND status IN ('pending','claimed')", (result_json, now, run_id, step))
            if cur.rowcount != 1:
                return self._refused(conn, run_id, step)
            self._wake(conn, run_id, now)
        return RECORDED

    @staticmethod
    def _refused(conn, run_id: str, step: int, worker: str | None = None) -> Recorded:
        """Why a step's result or failure was not recorded, read in the transaction that tried."""
        row = conn.execute("SELECT status, claimed_by FROM steps WHERE run_id=? AND step=?", (run_id, step)).fetchone()
        if row is None:
            return Recorded("unknown")
        if row["status"] in ("completed", "failed", "applied"):
            return Recorded("done", status=row["status"])
        if row["status"] == "cancelled":
            return Recorded("cancelled", status="cancelled")
        # pending or claimed, yet not by `worker`: the claim was given back, or taken over
        return Recorded("lost", status=row["status"],
                        holder=row["claimed_by"] if row["status"] == "claimed" and row["claimed_by"] != worker
                        else None)

    def claim_steps(self, endpoints: list[str], worker: str, lease: float, limit: int = 10,
                    runs: Collection[str] | None = None) -> list[dict]:
        """Claim pending (or lease-expired) step requests for the named endpoints, for a
        connector: each as {run_id, step, endpoint, args (stored form), key, epoch}. With
        `runs`, only the steps of those runs. Each claim moves the step's claim `epoch` on:
        renewing, recording and giving back name it, so that what a claim that lapsed
        does is refused, even when the same connector claimed the step again since."""
        if not endpoints or (runs is not None and not runs):
            return []
        marks = ",".join("?" for _ in endpoints)
        of_runs, run_ids = "", ()
        if runs is not None:
            run_ids = tuple(runs)
            of_runs = f"run_id IN ({','.join('?' for _ in run_ids)}) AND "
        with self._lease_transaction() as conn:
            now = self._now(conn)
            rows = conn.execute(
                f"SELECT run_id, step, endpoint, args, key, claim_epoch FROM steps WHERE endpoint IN ({marks}) AND "
                f"endpoint NOT IN {RUNTIME_ENDPOINTS} AND {of_runs}"
                f"(status='pending' OR (status='claimed' AND lease_until<?)) ORDER BY created LIMIT ?{self._claiming}",
                (*endpoints, *run_ids, now, limit)).fetchall()
            for row in rows:
                conn.execute("UPDATE steps SET status='claimed', claimed_by=?, lease_until=?, "
                             "claim_epoch=claim_epoch+1 WHERE run_id=? AND step=?",
                             (worker, now + lease, row["run_id"], row["step"]))
        return [{"run_id": r["run_id"], "step": r["step"], "endpoint": r["endpoint"], "args": json.loads(r["args"]),
                 "key": r["key"], "epoch": r["claim_epoch"] + 1} for r in rows]

    def pending_steps(self, endpoint: str | None = None) -> list[dict]:
        query = "SELECT run_id, step, endpoint, args, key, status FROM steps WHERE status IN ('pending','claimed')"
        params: tuple = ()
        if endpoint is not None:
            query += " AND endpoint=?"
            params = (endpoint,)
        return [dict(r) for r in self._all(query + " ORDER BY created", params)]

    def fail_step(self, run_id: str, step: int, error: str) -> Recorded:
        """Record that an endpoint could not be performed (a connector's own failure, or a
        result of the wrong type): the run fails with this error when it resumes. Once; refused
        as `complete_step` is."""
        with self.transaction() as conn:
            self._lock_run(conn, run_id)
            now = self._now(conn)
            cur = conn.execute("UPDATE steps SET status='failed', error=?, completed=? WHERE run_id=? AND step=? "
                               "AND status IN ('pending','claimed')", (error, now, run_id, step))
            if cur.rowcount != 1:
                return self._refused(conn, run_id, step)
            self._wake(conn, run_id, now)
        return RECORDED

    def deliver_callback(self, token: str, body: str) -> str:
        """Deliver a callback body, once. The outcome:

            delivered   it completed the run's wait for it (the run wakes)
            kept        the run is not waiting for it now (it has not asked yet, or its last wait
                        timed out): the body is kept for the run's next `get-callback!` on it
            gone        the run has ended: the body is not used, and not recorded
            duplicate   a body was delivered already: this one changes nothing
            unknown     no such callback

        Delivery and waiting meet in one transaction whichever comes first: a wait recorded
        after the delivery finds the body (`commit` completes it), so no wake-up is lost."""
        with self.transaction() as conn:
            owner = conn.execute("SELECT run_id FROM callbacks WHERE token=?", (token,)).fetchone()
            if owner is not None:
                self._lock_run(conn, owner["run_id"])
            now = self._now(conn)
            row = conn.execute("SELECT c.run_id, c.delivered, r.status FROM callbacks c JOIN runs r ON "
                               "r.id=c.run_id WHERE c.token=?", (token,)).fetchone()
            if row is None:
                return "unknown"
            if row["delivered"] is not None:
                return "duplicate"
            if row["status"] in ("completed", "failed", "cancelled"):
                return "gone"
            conn.execute("UPDATE callbacks SET body=?, delivered=? WHERE token=?", (body, now, token))
            waiting = conn.execute("SELECT step FROM steps WHERE run_id=? AND endpoint=? AND status='pending' "
                                   f"AND {self._json_text('args', 'token')}=?",
                                   (row["run_id"], CALLBACK_WAIT, token)).fetchall()
            for w in waiting:
                conn.execute("UPDATE steps SET status='completed', result=?, completed=? WHERE run_id=? AND step=?",
                             (json.dumps(body), now, row["run_id"], w["step"]))
            if waiting:
                self._wake(conn, row["run_id"], now)
        return "delivered" if waiting else "kept"

    @staticmethod
    def _meet_delivery(conn, run_id: str, step: int, token: str, now: float) -> bool:
        """Inside a commit that records a wait for a callback: complete the wait at once when
        its body is already there (delivered after the executor looked, before it committed)."""
        row = conn.execute("SELECT body FROM callbacks WHERE token=? AND run_id=? AND delivered IS NOT NULL",
                           (token, run_id)).fetchone()
        if row is None:
            return False
        cur = conn.execute("UPDATE steps SET status='completed', result=?, completed=? WHERE run_id=? AND step=? "
                           "AND status='pending'", (json.dumps(row["body"]), now, run_id, step))
        return cur.rowcount == 1

    def callback(self, token: str):
        return self._one("SELECT * FROM callbacks WHERE token=?", (token,))

    # -- signals ---------------------------------------------------------------------------------------
    # Sending queues a signal and wakes the run if it waits for that name; only the run's driver
    # consumes signals, oldest first, in the commit that records what the run did with them. A
    # send and a wait meet in one transaction whichever comes first (`_meet_signal`), as a
    # callback's delivery and its wait do.

    def send_signal(self, run_id: str, name: str, body: str, key: str | None = None) -> "Sent":
        """Queue the signal `name` with `body` (JSON text) for the run. The outcome (`Sent`):

            queued     queued as the run's signal number `seq` (the run wakes if it waits for it)
            duplicate  `key` was sent before with this name and body: nothing is queued again;
                       `seq` is the first one's
            conflict   `key` was sent before with another name or body (`seq`, `name`: that one's)
            ended      the run has ended (`status`): nothing is queued
            unknown    no such run
        """
        with self.transaction() as conn:
            now = self._now(conn)
            run = conn.execute("SELECT status FROM runs WHERE id=?" + self._locking, (run_id,)).fetchone()
            if run is None:
                return Sent("unknown")
            if key is not None:
                row = conn.execute("SELECT seq, name, body FROM signals WHERE run_id=? AND key=?",
                                   (run_id, key)).fetchone()
                if row is not None:
                    same = row["name"] == name and _same_json(row["body"], body)
                    return Sent("duplicate" if same else "conflict", row["seq"], row["name"])
            if run["status"] in FINAL:
                return Sent("ended", status=run["status"])
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM signals WHERE run_id=?",
                               (run_id,)).fetchone()[0]
            conn.execute("INSERT INTO signals(run_id, seq, name, body, key, sent) VALUES(?,?,?,?,?,?)",
                         (run_id, seq, name, body, key, now))
            waits = conn.execute("SELECT 1 FROM steps WHERE run_id=? AND endpoint=? AND status='pending' AND "
                                 f"{self._json_text('args', 'name')}=? LIMIT 1", (run_id, SIGNAL_WAIT, name)).fetchone()
            if waits is not None:
                self._wake(conn, run_id, now)
        return Sent("queued", seq, name)

    def next_signal(self, run_id: str, name: str, skip: Collection[int] = ()):
        """The oldest signal `name` of the run not consumed yet (nor among `skip`, the seqs the
        driver consumed and has not committed): a row (seq, name, body, sent), or None."""
        skipped = tuple(skip)
        marks = f" AND seq NOT IN ({','.join('?' for _ in skipped)})" if skipped else ""
        return self._one(f"SELECT seq, name, body, sent FROM signals WHERE run_id=? AND name=? AND "
                                 f"step IS NULL{marks} ORDER BY seq LIMIT 1", (run_id, name, *skipped))

    def signals(self, run_id: str) -> list[dict]:
        """The run's signals in arrival order: seq, name, body (JSON text), key, sent, and the
        step that consumed each (None while queued)."""
        rows = self._all("SELECT seq, name, body, key, sent, step FROM signals WHERE run_id=? ORDER BY seq", (run_id,))
        return [dict(r) for r in rows]

    @staticmethod
    def _consume_signals(conn, run_id: str, consumed: list[tuple], now: float) -> None:
        for seq, step in consumed:
            cur = conn.execute("UPDATE signals SET step=?, consumed=? WHERE run_id=? AND seq=? AND step IS NULL",
                               (step, now, run_id, seq))
            if cur.rowcount != 1:  # only the lease holder consumes: never, unless the store was edited
                raise StoreError(f"signal {seq} of run `{run_id}` is not queued any more; nothing was committed")

    @staticmethod
    def _meet_signal(conn, run_id: str, name: str) -> bool:
        """Inside a commit that records a wait for the signal `name`: whether one is queued
        already (sent after the executor looked, before it committed): the run wakes at once."""
        return conn.execute("SELECT 1 FROM signals WHERE run_id=? AND name=? AND step IS NULL LIMIT 1",
                            (run_id, name)).fetchone() is not None

    @_again_when_busy
    def request_cancel(self, run_id: str) -> str:
        """Cancel a run, and its children: at once when it is not running, else at its worker's
        next look. Its status afterwards ("cancelling" while its worker has yet to stop it)."""
        with self.transaction() as conn:
            return self._cancel(conn, run_id, self._now(conn))

    def cancel_requested(self, run_id: str) -> bool:
        row = self._one("SELECT cancel_requested FROM runs WHERE id=?", (run_id,))
        return bool(row and row["cancel_requested"])

    # -- sharing executors between runs ----------------------------------------------------------------

    def others_runnable(self, run_id: str, now: float | None = None) -> bool:
        """Whether a run other than `run_id` could be claimed now (as `claim` would find it):
        a run that computes for long makes way for it."""
        now = self._now(None, now)
        row = self._one("SELECT 1 FROM runs WHERE id<>? AND (status='pending' OR (status='waiting' AND "
                                "wake_at IS NOT NULL AND wake_at<=?) OR (status='running' AND lease_until<?)) "
                                "LIMIT 1", (run_id, now, now))
        return row is not None

    # -- idempotency keys of run creation ------------------------------------------------------------
    # A key is recorded with the run id it will name *before* the run is created (`create_run`
    # with that id): a retry finds the key, and creates the run itself if a crash came between.

    def run_key(self, key: str) -> tuple[str, str] | None:
        """(run id, request fingerprint) recorded for an idempotency key, or None."""
        row = self._one("SELECT run_id, fingerprint FROM run_keys WHERE key=?", (key,))
        return (row["run_id"], row["fingerprint"]) if row else None

    def record_run_key(self, key: str, fingerprint: str, run_id: str) -> tuple[str, str]:
        """Record that `key` names the request `fingerprint` and the run `run_id`, unless the
        key is recorded already (by another process meanwhile); the (run id, fingerprint)
        recorded for it either way."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO run_keys(key, fingerprint, run_id, created) VALUES(?,?,?,?) ON CONFLICT DO "
                         "NOTHING", (key, fingerprint, run_id, self._now(conn)))
            row = conn.execute("SELECT run_id, fingerprint FROM run_keys WHERE key=?", (key,)).fetchone()
        return row["run_id"], row["fingerprint"]

    # -- presence: which live processes serve which endpoints ------------------------------------------
    # A connector (serve's, a worker's, `flowmetal run`'s, a Python `flowmetal connector`, a client
    # of the HTTP API's claim) says every `PRESENCE_EVERY` seconds that it is alive and which
    # endpoints it serves, and takes its row away when it stops. A row older than `PRESENCE_LIVE`
    # is a process that died without saying so.

    def announce(self, name: str, kind: str, endpoints: Collection[str], pid: int | None = None,
                 host: str | None = None) -> None:
        """Record (or refresh) that `name`, a live process (or part of one) of `kind`, serves
        `endpoints`; rows not refreshed for a day are deleted meanwhile."""
        with self.transaction() as conn:
            now = self._now(conn)
            conn.execute("INSERT INTO presence(name, pid, host, kind, endpoints, seen) VALUES(?,?,?,?,?,?) ON "
                         "CONFLICT(name) DO UPDATE SET pid=excluded.pid, host=excluded.host, kind=excluded.kind, "
                         "endpoints=excluded.endpoints, seen=excluded.seen",
                         (name, pid, host, kind, json.dumps(sorted(set(endpoints))), now))
            conn.execute("DELETE FROM presence WHERE seen<?", (now - PRESENCE_FORGET,))

    def withdraw(self, name: str) -> None:
        """`name` stops serving (it is stopping): its row goes at once."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM presence WHERE name=?", (name,))

    def presence(self, now: float | None = None) -> list[dict]:
        """The live presences: {name, pid, host, kind, endpoints, seen}, most recent first."""
        now = self._now(None, now)
        if self.readonly and "presence" not in self._tables():  # an older store, only read
            return []
        rows = self._all("SELECT * FROM presence WHERE seen>=? ORDER BY seen DESC",
                                 (now - PRESENCE_LIVE,))
        out = []
        for row in rows:
            try:
                endpoints = json.loads(row["endpoints"])
            except ValueError:
                continue
            if isinstance(endpoints, list):
                out.append({**dict(row), "endpoints": [e for e in endpoints if isinstance(e, str)]})
        return out

    def unserved_steps(self, run_ids: Collection[str] | None = None,
                       now: float | None = None) -> dict[str, list[tuple[int, str]]]:
        """The open steps that no live process serves, by run: (step, endpoint), in step order.
        A step is open when it is pending, or claimed on a lease that has run out (a claim
        still held is being served). Steps the runtime answers (callbacks) are not counted:
        they wait for a delivery, not a process. With `run_ids`, only those runs'."""
        now = self._now(None, now)
        served = {endpoint for entry in self.presence(now) for endpoint in entry["endpoints"]}
        query = (f"SELECT run_id, step, endpoint FROM steps WHERE endpoint NOT IN {RUNTIME_ENDPOINTS} AND "
                 f"(status='pending' OR (status='claimed' AND lease_until<?))")
        params: list = [now]
        if run_ids is not None:
            ids = list(run_ids)
            if not ids:
                return {}
            query += f" AND run_id IN ({','.join('?' for _ in ids)})"
            params += ids
        out: dict[str, list[tuple[int, str]]] = {}
        for row in self._all(query + " ORDER BY run_id, step", params):
            if row["endpoint"] not in served:
                out.setdefault(row["run_id"], []).append((row["step"], row["endpoint"]))
        return out

    def unserved(self, run_id: str) -> list[str]:
        """The endpoints `run_id` waits on that no live process serves (sorted, once each)."""
        return sorted({endpoint for _, endpoint in self.unserved_steps([run_id]).get(run_id, [])})

    def open_steps(self, endpoints: Collection[str], worker: str | None = None, now: float | None = None) -> int:
        """How many steps of `endpoints` are still to be performed: pending, claimed on a lease
        that has run out, or claimed by `worker` (in flight there)."""
        now = self._now(None, now)
        names = list(endpoints)
        if not names:
            return 0
        row = self._one(
            f"SELECT count(*) FROM steps WHERE endpoint IN ({','.join('?' for _ in names)}) AND "
            f"(status='pending' OR (status='claimed' AND (lease_until<? OR claimed_by=?)))",
            (*names, now, worker))
        return row[0]

    # -- claimed steps: leases renewed, results fenced by the claim ------------------------------------
    # A connector that holds a step's claim keeps it alive while the request is in flight and
    # records the result only while the claim is still its own: a step whose lease lapsed and
    # was claimed (and sent) by another connector, or by the same one again, is that claim's to
    # record. A claim is named by its worker and, given, its epoch (`claim_steps`'s `epoch`):
    # steps are given as (run_id, step) or (run_id, step, epoch); without the epoch, any claim
    # of the worker's will do.

    @staticmethod
    def _claim_of(step: tuple) -> tuple[str, int, int | None]:
        run_id, number, *epoch = step
        return run_id, number, (epoch[0] if epoch else None)

    def renew_step_leases(self, worker: str, steps: list[tuple], lease: float) -> set[tuple]:
        """Extend to now + `lease` the leases `worker` holds on `steps` ((run_id, step) pairs, or
        (run_id, step, epoch) triples), in one transaction; the items still claimed by `worker`
        (under that epoch), as given. A step missing from the answer was completed, cancelled,
        or claimed again (by another worker, or this one) after this claim's lease ran out."""
        if not steps:
            return set()
        held = set()
        with self._lease_transaction() as conn:
            now = self._now(conn)
            for item in steps:
                run_id, step, epoch = self._claim_of(item)
                cur = conn.execute("UPDATE steps SET lease_until=? WHERE run_id=? AND step=? AND status='claimed' "
                                   "AND claimed_by=? AND claim_epoch=COALESCE(?, claim_epoch)",
                                   (now + lease, run_id, step, worker, epoch))
                if cur.rowcount == 1:
                    held.add(tuple(item))
        return held

    def complete_claimed_step(self, run_id: str, step: int, worker: str, result_json: str,
                              epoch: int | None = None) -> Recorded:
        """`complete_step` fenced by the claim: records the result only while `worker` holds the
        step's claim (its lease may have run out, as long as nobody claimed the step since),
        and, given its `epoch`, only while that claim is the latest. Otherwise a false
        `Recorded` saying why (`lost` when the claim is not `worker`'s), and nothing changed.
        Wakes the run."""
        return self._finish_claimed(run_id, step, worker, epoch, "status='completed', result=?", result_json)

    def fail_claimed_step(self, run_id: str, step: int, worker: str, error: str,
                          epoch: int | None = None) -> Recorded:
        """`fail_step` fenced by the claim, as `complete_claimed_step`."""
        return self._finish_claimed(run_id, step, worker, epoch, "status='failed', error=?", error)

    def _finish_claimed(self, run_id: str, step: int, worker: str, epoch: int | None, sets: str,
                        text: str) -> Recorded:
        with self.transaction() as conn:
            self._lock_run(conn, run_id)
            now = self._now(conn)
            cur = conn.execute(f"UPDATE steps SET {sets}, completed=? WHERE run_id=? AND step=? AND status='claimed' "
                               "AND claimed_by=? AND claim_epoch=COALESCE(?, claim_epoch)",
                               (text, now, run_id, step, worker, epoch))
            if cur.rowcount != 1:
                return self._refused(conn, run_id, step, worker)
            self._wake(conn, run_id, now)
        return RECORDED

    def release_steps(self, worker: str, steps: list[tuple]) -> int:
        """Give back steps `worker` claimed but will not finish (it is stopping): pending again at
        once, for any connector to claim, instead of after their leases run out. How many.
        Steps are named as for `renew_step_leases`."""
        released = 0
        with self._lease_transaction() as conn:
            for item in steps:
                run_id, step, epoch = self._claim_of(item)
                for row in conn.execute("UPDATE steps SET status='pending', claimed_by=NULL, lease_until=NULL "
                                        "WHERE run_id=? AND step=? AND status='claimed' AND claimed_by=? AND "
                                        "claim_epoch=COALESCE(?, claim_epoch) RETURNING endpoint",
                                        (run_id, step, worker, epoch)).fetchall():
                    released += 1
                    self._notify(conn, STEPS_CHANNEL, row["endpoint"])
        return released


class SQLiteStore(Store):
    """A store in an SQLite file: one connection (use one store per thread)."""

    MIGRATIONS = MIGRATIONS

    def __init__(self, path: str | os.PathLike, synchronous: str = "FULL", readonly: bool = False) -> None:
        """Open (and create or migrate) the store at `path`. `readonly`: only read it: a store
        that does not exist is an error, nothing is created or migrated, and a store on a
        read-only file or file system can be read. Any fault of the file (not a database,
        truncated, corrupt, unwritable) is a `StoreError` naming the file, never a traceback."""
        self.path = str(path)
        self.readonly = readonly
        self.synchronous = synchronous
        try:
            self.conn = self._connect(synchronous)
            if readonly:
                self._check_readable()
            else:
                self._migrate()
        except sqlite3.Error as error:
            raise StoreError(describe_error(self.path, error)) from None

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        if self.readonly:
            if self.path == ":memory:" or not Path(self.path).is_file():
                raise StoreError(f"no store at {self.path} (read-only commands never create one; check "
                                 f"--store or FLOWMETAL_STORE)")
            uri = Path(self.path).resolve().as_uri()
            try:
                conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # A WAL store in a folder this process cannot write (no `-shm` file can be made):
                # read it as it is on disk.
                conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30, isolation_level=None,
                                       check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            return conn
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _check_readable(self) -> None:
        current = self.version()
        if current == 0 or "runs" not in self._tables():
            raise StoreError(f"{self.path}: not a Flowmetal store (an SQLite file without its tables)")
        if current > SCHEMA_VERSION:
            raise self._newer(current)

    class _Tx:
        def __init__(self, conn) -> None:
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, kind, value, tb):
            if kind is None:
                self.conn.execute("COMMIT")
            else:
                self.conn.execute("ROLLBACK")
            return False

    def transaction(self) -> "_Tx":
        """An IMMEDIATE write transaction: `with store.transaction() as conn: ...`."""
        return self._Tx(self.conn)

    class _LeaseTx(_Tx):
        """In WAL mode with `synchronous=NORMAL` a commit is appended to the log unflushed; the
        next `FULL` commit's flush of the log makes it durable with its own."""

        def __init__(self, conn, synchronous: str) -> None:
            super().__init__(conn)
            self.synchronous = synchronous

        def __enter__(self):
            self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
                return super().__enter__()
            except BaseException:
                self.conn.execute(f"PRAGMA synchronous={self.synchronous}")
                raise

        def __exit__(self, kind, value, tb):
            try:
                return super().__exit__(kind, value, tb)
            finally:
                self.conn.execute(f"PRAGMA synchronous={self.synchronous}")

    def _lease_transaction(self) -> "_Tx":
        if self.synchronous.upper() not in ("FULL", "EXTRA", "2", "3"):
            return self._Tx(self.conn)  # no flush to save
        return self._LeaseTx(self.conn, self.synchronous)

    def close(self) -> None:
        self.conn.close()

    def _one(self, query: str, params=()):
        return self.conn.execute(query, params).fetchone()

    def _all(self, query: str, params=()) -> list:
        return self.conn.execute(query, params).fetchall()

    def _tables(self, conn=None) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def change_token(self) -> tuple[int, int]:
        """A value that changes whenever anything was committed to the store, by any process:
        `PRAGMA data_version` for other connections' commits, `total_changes` for this one's."""
        return self._one("PRAGMA data_version")[0], self.conn.total_changes



# How long this process's PostgreSQL stores wait, at their first connection, for a server that
# is not there (`wait_for_store`), and what they say when they start waiting.
_PATIENCE: dict = {"seconds": 0.0, "say": None}


def wait_for_store(seconds: float, say=None) -> None:
    """From now on, a PostgreSQL store of this process opened while its server is unavailable
    (down, starting up, shutting down, restarting) tries again with backoff for up to `seconds`
    before the usual error, calling `say(message)` once when it starts waiting: what the
    commands that run until stopped do. Otherwise only a server that says it is starting up or
    shutting down is waited for, a few seconds (`pgstore.STARTING`). SQLite stores never wait."""
    _PATIENCE["seconds"], _PATIENCE["say"] = seconds, say


class PostgresStore(Store):
    """A store in a PostgreSQL database (`postgresql://USER@HOST:PORT/DB`), shared by any number
    of processes on any number of machines. Its connections, SQL and schema are
    `flowmetal.runtime.pgstore`'s; here are the hooks of `Store` in PostgreSQL's terms: runs and
    steps claimed with `FOR UPDATE SKIP LOCKED` (claimers never wait for one another), a run's
    row locked by every transaction that changes what its wake-up depends on, and the
    database's clock for every lease, timer and due time (a `now` passed in is ignored).

    The change feed (`Store.changes`). A sequence's values are taken in one order and committed
    in another: a reader that saw value 8 committed may later find 7 committed by a transaction
    that was still in flight, and a cursor past 8 would lose it. So the value a change is
    stamped with is the id of the transaction that makes it (`pg_current_xact_id()`, the
    server's 64-bit transaction counter: store-wide, monotonic, never wrapping), and a reader
    takes only the changes below the oldest transaction still in flight when it reads
    (`pg_snapshot_xmin` of its statement's snapshot): every transaction with a lower id has
    ended, so nothing can appear below the cursor afterwards. A change of a transaction in
    flight waits for it to end: a reader lags by the longest write transaction of the server
    (the store's are milliseconds; a long one of another database on the same server holds
    the feed back, never loses from it). The other way, one row counter updated under lock by
    every transaction that changes a run, would make every such commit of the fleet wait for
    the one before it: `bench/bench_feed.py` measures both (docs/performance.md); the
    transaction's id costs nothing a commit can measure, the counter divides the commits a
    second of concurrent writers."""

    _locking = " FOR UPDATE"
    _claiming = " FOR UPDATE SKIP LOCKED"
    _recorded = "created, recorded"
    # The change feed: stamped with the writing transaction's id, read below the oldest one in
    # flight (see the class's docstring).
    _stamp = "pg_current_xact_id()::text::bigint"
    _settled = " AND change_seq < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"

    def __init__(self, url: str, readonly: bool = False) -> None:
        from flowmetal.runtime import pgstore  # psycopg is loaded only for PostgreSQL stores
        self._pg = pgstore
        self.path = url
        self.readonly = readonly
        self.MIGRATIONS = pgstore.MIGRATIONS
        self.db = pgstore.Database(url, readonly, _PATIENCE["seconds"], _PATIENCE["say"])
        try:
            if readonly:
                current = self.version()
                if current == 0 or "runs" not in self._tables():
                    raise StoreError(f"{pgstore.shown(url)}: not a Flowmetal store (a database without its tables; "
                                     f"read-only commands never create them)")
                if current > SCHEMA_VERSION:
                    raise self._newer(current)
            else:
                self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _newer(self, current: int) -> StoreError:
        return StoreError(f"{self._pg.shown(self.path)}: this store has schema version {current}, written by a "
                          f"newer Flowmetal; this one knows versions up to {SCHEMA_VERSION}. Upgrade Flowmetal "
                          f"to use it (nothing was changed).")

    _clock = "extract(epoch FROM clock_timestamp())::float8"

    _INLINE_CHANGES = frozenset({"snapshot", "inline_steps", "inline_results"})

    def commit(self, run: Run, worker: str, events: list[tuple], **changes) -> dict[int, int]:
        """`Store.commit`; one whose only changes besides its events and snapshot are steps
        performed in the run's own process (a run going from one such step to the next) is one
        statement, `pgstore.COMMIT_INLINE`, which does what the transaction does. Any other
        change given (any of `Store.commit`'s other arguments, one added later too) takes the
        transaction."""
        if (not (changes.get("inline_steps") or changes.get("inline_results"))
                or any(value for name, value in changes.items() if name not in self._INLINE_CHANGES)):
            return super().commit(run, worker, events, **changes)
        rows = []
        for kind, step, data, line in events:
            at = data.pop("_time", None) if isinstance(data, dict) else None
            rows.append([kind, step, json.dumps(data), at, line])
        body: dict = {"events": rows,
                      "results": [[step, endpoint, args, key, outcome == "completed", _storable(text)]
                                  for step, endpoint, args, key, outcome, text in changes.get("inline_results", ())],
                      "asked": [asked[0] for asked in changes.get("inline_steps", ())]}
        snapshot = changes.get("snapshot")
        if snapshot is not None and not isinstance(snapshot, str):
            snapshot = json.dumps(snapshot, separators=(",", ":"))
        return self._commit_inline(run, worker, json.dumps(body), snapshot)

    @_again_when_busy
    def _commit_inline(self, run: Run, worker: str, body: str, snapshot: str | None) -> dict[int, int]:
        try:
            row = self.db.call(self._pg.CALL_COMMIT_INLINE, (run.id, worker, run.epoch, body, snapshot),
                               refused={self._pg.LEASE_LOST: LeaseLost})
        except LeaseLost:
            raise LeaseLost(run.id) from None
        return {step: 1 for step in row[0]}

    def transaction(self):
        """A write transaction: `with store.transaction() as conn: ...`."""
        return self.db.transaction()

    def _commit_transaction(self):
        """`commit`'s statements pipelined (`pgstore.Tx`): its writes travel together."""
        return self.db.transaction(pipeline=True)

    @contextlib.contextmanager
    def _lease_transaction(self):
        """The commit returns before the server flushes its log (`synchronous_commit=off`
        for this transaction only); visible to others at once."""
        with self.db.transaction() as conn:
            conn.execute("SET LOCAL synchronous_commit TO OFF")
            yield conn

    def close(self) -> None:
        self.db.close()

    def _one(self, query: str, params=()):
        return self.db.read(query, params, many=False)

    def _all(self, query: str, params=()) -> list:
        return self.db.read(query, params)

    def _tables(self, conn=None) -> set[str]:
        rows = conn.execute(self._pg.TABLES).fetchall() if conn is not None else self._all(self._pg.TABLES)
        return {row[0] for row in rows}

    def _migration_lock(self, conn) -> None:
        conn.execute(self._pg.MIGRATION_LOCKING)

    def _now(self, conn=None, now: float | None = None) -> float:
        row = conn.execute(self._pg.CLOCK).fetchone() if conn is not None else self._one(self._pg.CLOCK)
        return row[0]

    @staticmethod
    def _json_text(column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def _notify(self, conn, channel: str, payload: str) -> None:
        """`pg_notify`: delivered to the listeners when this transaction commits, never if it rolls
        back; the same (channel, payload) twice in one transaction is delivered once."""
        conn.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def listen(self, event, runs: bool = False, endpoints: Collection[str] | None = None, changes: bool = False):
        wanted = {}
        if runs or changes:
            wanted[RUNS_CHANNEL] = None
        if endpoints is not None:
            wanted[STEPS_CHANNEL] = frozenset(endpoints)
        if changes:
            wanted[STEPS_CHANNEL] = None
            wanted[ENDED_CHANNEL] = None
        return self._pg.subscribe(self.path, (RUNS_CHANNEL, STEPS_CHANNEL, ENDED_CHANNEL), event, wanted)

    def change_token(self) -> str:
        """A value that changes whenever a transaction that wrote commits, by any process
        (`pgstore.CHANGE_TOKEN`)."""
        return self._one(self._pg.CHANGE_TOKEN)[0]


def describe_error(path: str, error: sqlite3.Error) -> str:
    """One line saying what is wrong with the store's file, and what to do."""
    text = str(error)
    if "not a database" in text:
        return f"{path}: not a Flowmetal store (the file is not an SQLite database)"
    if "malformed" in text or isinstance(error, sqlite3.DatabaseError) and "corrupt" in text:
        return f"{path}: the store is damaged ({text}); restore it from a backup"
    folder = os.path.dirname(os.path.abspath(path))
    unwritable = os.path.exists(path) and not (os.access(path, os.W_OK) and os.access(folder, os.W_OK))
    if "readonly" in text or "read-only" in text or unwritable:
        return (f"{path}: the store is read-only ({text}); commands that only read it (runs, trace, "
                f"replay) work, others need write access")
    if "unable to open" in text:
        return f"{path}: the store cannot be opened ({text}): check the path and its permissions"
    return f"{path}: the store cannot be used: {text}"


def store_location(location: str | None = None) -> str:
    """The store named by `--store`, else `FLOWMETAL_STORE`, else `./.flowmetal/store.db`."""
    return location or os.environ.get("FLOWMETAL_STORE") or os.path.join(".flowmetal", "store.db")


def is_postgres(location: str) -> bool:
    """Whether a store location names a PostgreSQL database rather than an SQLite file."""
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | None = None, readonly: bool = False) -> Store:
    """The store named by `--store`, else `FLOWMETAL_STORE`, else `./.flowmetal/store.db`: a
    `postgresql://` URL opens a `PostgresStore`, anything else is an SQLite file.
    `readonly`: for commands that only read (see `SQLiteStore`)."""
    location = store_location(location)
    if is_postgres(location):
        return PostgresStore(location, readonly=readonly)
    return SQLiteStore(location, readonly=readonly)
