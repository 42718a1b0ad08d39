"""The store: programs, runs, their event logs, snapshots, steps, timers and callbacks.

SQLite by default (through sqlite-utils, which creates and migrates the
tables), behind the narrow set of methods below that a PostgreSQL store will
implement too. Durability settings: WAL, `synchronous=FULL` (nothing
acknowledged is lost on power failure), `BEGIN IMMEDIATE` for every write
transaction (writers queue at the start instead of failing mid-way), a busy
timeout, foreign keys on. Several processes share one store file.

Migrations are numbered and applied in order, each in its own transaction; the
schema version lives in `meta`. A store written by a newer Flowmetal (a version
this code does not know) is refused with a clear message, never guessed at.

A `SQLiteStore` is one connection: use one per thread (every part of Flowmetal
that runs in threads opens its own).

Tables:
    sources    content-addressed program files (sha256 of the text)
    runs       one row a run: entry, arguments, program, status, lease, wake time, result
    events     the run's log, append-only: (run, seq) -> time, kind, step, data, line
    snapshots  the latest state of each run (resuming never replays the log)
    steps      endpoint calls: request, idempotency key, status, result (exactly once)
    timers     durable timers of `sleep!` and `with-timeout!`
    callbacks  callback tokens, and the body delivered to each (once)
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from flowmetal.runtime.program import source_hash

SCHEMA_VERSION = 2
# Endpoints the runtime itself answers: never handed to a connector.
RUNTIME_ENDPOINTS = "('http.callback/get-callback!')"


class StoreError(Exception):
    """The store cannot be used as asked: a clear message, for the command line to print."""


class LeaseLost(StoreError):
    """Another worker took the run over (this one's lease expired): its work is discarded."""


def _migration_1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["sources"].create({"hash": str, "name": str, "text": str}, pk="hash")
    db["runs"].create({
        "id": str, "entry": str, "args": str, "program": str, "code_hash": str, "status": str,
        "result": str, "error": str, "created": float, "updated": float, "owner": str, "lease_until": float,
        "wake_at": float, "next_seq": int, "cancel_requested": int,
    }, pk="id", not_null={"entry", "status", "program"}, defaults={"next_seq": 1, "cancel_requested": 0})
    db["runs"].create_index(["status", "wake_at"])
    db["events"].create({"run_id": str, "seq": int, "time": float, "kind": str, "step": int, "data": str,
                         "line": int}, pk=("run_id", "seq"), foreign_keys=[("run_id", "runs", "id")])
    db["snapshots"].create({"run_id": str, "seq": int, "state": str}, pk="run_id",
                           foreign_keys=[("run_id", "runs", "id")])
    db["steps"].create({"run_id": str, "step": int, "endpoint": str, "args": str, "key": str, "status": str,
                        "result": str, "error": str, "claimed_by": str, "lease_until": float, "created": float,
                        "completed": float}, pk=("run_id", "step"), foreign_keys=[("run_id", "runs", "id")])
    db["steps"].create_index(["endpoint", "status"])
    db["timers"].create({"run_id": str, "step": int, "due": float, "status": str}, pk=("run_id", "step"),
                        foreign_keys=[("run_id", "runs", "id")])
    db["timers"].create_index(["status", "due"])
    db["callbacks"].create({"token": str, "run_id": str, "step": int, "created": float, "body": str,
                            "delivered": float}, pk="token", foreign_keys=[("run_id", "runs", "id")])


def _migration_2(db: sqlite_utils.Database) -> None:
    # Finding a step's events (its request's line) without reading the run's whole log.
    db["events"].create_index(["run_id", "step"], index_name="events_by_step")


MIGRATIONS = {1: _migration_1, 2: _migration_2}


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


def _run(row) -> Run:
    return Run(row["id"], row["entry"], json.loads(row["args"] or "[]"), json.loads(row["program"]),
               row["code_hash"], row["status"], row["result"], row["error"], row["created"], row["updated"],
               row["owner"], row["lease_until"], row["wake_at"], row["next_seq"], bool(row["cancel_requested"]))


@dataclass
class Event:
    seq: int
    time: float
    kind: str
    step: int | None
    data: dict
    line: int | None


class SQLiteStore:
    def __init__(self, path: str | os.PathLike, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._migrate()

    # -- schema ---------------------------------------------------------------------------------

    def version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row["value"]) if row else 0

    def _migrate(self) -> None:
        current = self.version()
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: this store has schema version {current}, written by a newer "
                             f"Flowmetal; this one knows versions up to {SCHEMA_VERSION}. Upgrade Flowmetal "
                             f"to use it (nothing was changed).")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                if self.version() >= version:  # another process migrated meanwhile
                    continue
                MIGRATIONS[version](self.db)
                self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)",
                                  (str(version),))

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

    def close(self) -> None:
        self.conn.close()

    # -- programs ----------------------------------------------------------------------------------

    def put_sources(self, sources: dict[str, str]) -> dict[str, str]:
        """Store a program's files, content-addressed; their names -> hashes."""
        out = {}
        with self.transaction() as conn:
            for name, text in sources.items():
                digest = source_hash(text)
                conn.execute("INSERT OR IGNORE INTO sources(hash, name, text) VALUES(?, ?, ?)", (digest, name, text))
                out[name] = digest
        return out

    def get_sources(self, program: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, digest in program.items():
            row = self.conn.execute("SELECT text FROM sources WHERE hash=?", (digest,)).fetchone()
            if row is None:
                raise StoreError(f"the store lacks the source {digest[:12]} of {name}")
            out[name] = row["text"]
        return out

    # -- runs ----------------------------------------------------------------------------------------

    def create_run(self, entry: str, args_literals: list[str], program: dict[str, str], code_hash: str,
                   run_id: str | None = None, origin: str | None = None) -> str:
        """Record a new pending run. `origin` is the directory its files were read from, kept in
        its first event so that tools can show a run's code in the files it came from."""
        started = {"entry": entry, "args": args_literals, "code": code_hash}
        if origin is not None:
            started["origin"] = origin
        run_id = run_id or uuid.uuid4().hex[:16]
        now = time.time()
        with self.transaction() as conn:
            conn.execute("INSERT INTO runs(id, entry, args, program, code_hash, status, created, updated, next_seq) "
                         "VALUES(?, ?, ?, ?, ?, 'pending', ?, ?, 2)",
                         (run_id, entry, json.dumps(args_literals), json.dumps(program), code_hash, now, now))
            conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) VALUES(?, 1, ?, "
                         "'run-started', NULL, ?, NULL)",
                         (run_id, now, json.dumps(started)))
        return run_id

    def get_run(self, run_id: str) -> Run | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return _run(row) if row else None

    def find_run(self, prefix: str) -> Run:
        """A run by its id, or a unique prefix of it."""
        rows = self.conn.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY created LIMIT 2",
                                 (prefix.replace("%", "") + "%",)).fetchall()
        if not rows:
            raise StoreError(f"no run `{prefix}` in {self.path}")
        if len(rows) > 1 and rows[0]["id"] != prefix:
            raise StoreError(f"`{prefix}` names more than one run: give more of its id")
        return _run(rows[0])

    def list_runs(self, since: float | None = None) -> list[Run]:
        """Every run, oldest first; or those updated at or after `since`."""
        if since is None:
            return [_run(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY created, id").fetchall()]
        rows = self.conn.execute("SELECT * FROM runs WHERE updated >= ? ORDER BY created, id", (since,))
        return [_run(r) for r in rows.fetchall()]

    def change_token(self) -> tuple[int, int]:
        """A value that changes whenever anything was committed to the store, by any process:
        `PRAGMA data_version` for other connections' commits, `total_changes` for this one's."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes

    def run_versions(self, since: float) -> list[tuple[str, str, int, float]]:
        """(id, status, next_seq, updated) of the runs updated at or after `since`."""
        rows = self.conn.execute("SELECT id, status, next_seq, updated FROM runs WHERE updated >= ?", (since,))
        return [(r["id"], r["status"], r["next_seq"], r["updated"] or 0.0) for r in rows.fetchall()]

    def has_unfinished_runs(self) -> bool:
        row = self.conn.execute("SELECT 1 FROM runs WHERE status NOT IN ('completed','failed','cancelled') "
                                "LIMIT 1").fetchone()
        return row is not None

    def claim(self, worker: str, lease: float, now: float | None = None, run_id: str | None = None) -> Run | None:
        """Take a runnable run: new, woken (timer due or step completed), or whose lease expired."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            query = ("SELECT * FROM runs WHERE (status='pending' OR (status='waiting' AND wake_at IS NOT NULL "
                     "AND wake_at<=?) OR (status='running' AND lease_until<?))")
            params: list = [now, now]
            if run_id is not None:
                query += " AND id=?"
                params.append(run_id)
            row = conn.execute(query + " ORDER BY COALESCE(wake_at, created) LIMIT 1", params).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE runs SET status='running', owner=?, lease_until=?, updated=? WHERE id=?",
                         (worker, now + lease, now, row["id"]))
        run = _run(row)
        run.status, run.owner, run.lease_until = "running", worker, now + lease
        return run

    def heartbeat(self, run_id: str, worker: str, lease: float) -> None:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE runs SET lease_until=? WHERE id=? AND owner=? AND status='running'",
                               (time.time() + lease, run_id, worker))
            if cur.rowcount != 1:
                raise LeaseLost(run_id)

    def next_wake(self) -> float | None:
        row = self.conn.execute("SELECT MIN(wake_at) AS w FROM runs WHERE status='waiting'").fetchone()
        return row["w"]

    # -- committing a run's progress ----------------------------------------------------------------

    def commit(self, run: Run, worker: str, events: list[tuple], *, snapshot: dict | None = None,
               status: str | None = None, wake_at: float | None = None, result: str | None = None,
               error: str | None = None, steps: list[tuple] = (), timers: list[tuple] = (),
               callbacks: list[tuple] = (), completed_steps: list[tuple] = (), cancelled_steps: list[int] = (),
               fired_timers: list[int] = (), release: bool = False) -> None:
        """Append events and record the run's new state, in one transaction, if this worker
        still holds the run. Events are (kind, step, data, line); seqs are assigned here."""
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT owner, status, next_seq, cancel_requested FROM runs WHERE id=?",
                               (run.id,)).fetchone()
            if row is None or row["owner"] != worker or row["status"] != "running":
                raise LeaseLost(run.id)
            seq = row["next_seq"]
            for kind, step, data, line in events:
                conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) VALUES(?,?,?,?,?,?,?)",
                             (run.id, seq, data.pop("_time", now) if isinstance(data, dict) else now, kind, step,
                              json.dumps(data), line))
                seq += 1
            for step, endpoint, args, key in steps:
                conn.execute("INSERT OR IGNORE INTO steps(run_id, step, endpoint, args, key, status, created) "
                             "VALUES(?,?,?,?,?,'pending',?)", (run.id, step, endpoint, args, key, now))
            for step, result_json in completed_steps:
                conn.execute("INSERT INTO steps(run_id, step, endpoint, args, key, status, result, created, "
                             "completed) VALUES(?, ?, '', '', ?, 'applied', ?, ?, ?) ON CONFLICT(run_id, step) DO "
                             "UPDATE SET status='applied'", (run.id, step, f"{run.id}:{step}", result_json, now, now))
            for step, due in timers:  # before cancellations: a timer may be set and cancelled at once
                conn.execute("INSERT OR REPLACE INTO timers(run_id, step, due, status) VALUES(?,?,?,'set')",
                             (run.id, step, due))
            for step in cancelled_steps:
                conn.execute("UPDATE steps SET status='cancelled' WHERE run_id=? AND step=? AND status IN "
                             "('pending','claimed')", (run.id, step))
                conn.execute("UPDATE timers SET status='cancelled' WHERE run_id=? AND step=? AND status='set'",
                             (run.id, step))
            for step in fired_timers:
                conn.execute("UPDATE timers SET status='fired' WHERE run_id=? AND step=?", (run.id, step))
            for token, step in callbacks:
                conn.execute("INSERT OR IGNORE INTO callbacks(token, run_id, step, created) VALUES(?,?,?,?)",
                             (token, run.id, step, now))
            if snapshot is not None:
                conn.execute("INSERT OR REPLACE INTO snapshots(run_id, seq, state) VALUES(?,?,?)",
                             (run.id, seq - 1, json.dumps(snapshot, separators=(",", ":"))))
            sets = ["next_seq=?", "updated=?"]
            params: list = [seq, now]
            if status is not None:
                sets.append("status=?")
                params.append(status)
            if status is not None or release:
                sets.append("wake_at=?")
                params.append(wake_at)
            if result is not None:
                sets.append("result=?")
                params.append(result)
            if error is not None:
                sets.append("error=?")
                params.append(error)
            if release:
                sets += ["owner=NULL", "lease_until=NULL"]
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id=?", (*params, run.id))

    def snapshot(self, run_id: str) -> dict | None:
        row = self.conn.execute("SELECT state FROM snapshots WHERE run_id=?", (run_id,)).fetchone()
        return json.loads(row["state"]) if row else None

    def events(self, run_id: str, after: int = 0, until: int | None = None, kind: str | None = None) -> list[Event]:
        """The run's events after `after` (and up to `until`), of one `kind` if given, in order."""
        query, params = "SELECT * FROM events WHERE run_id=? AND seq>?", [run_id, after]
        if until is not None:
            query += " AND seq<=?"
            params.append(until)
        if kind is not None:
            query += " AND kind=?"
            params.append(kind)
        rows = self.conn.execute(query + " ORDER BY seq", params)
        return [Event(r["seq"], r["time"], r["kind"], r["step"], json.loads(r["data"] or "{}"), r["line"])
                for r in rows.fetchall()]

    # -- steps, timers, callbacks ----------------------------------------------------------------------

    def step(self, run_id: str, step: int):
        return self.conn.execute("SELECT * FROM steps WHERE run_id=? AND step=?", (run_id, step)).fetchone()

    def timer(self, run_id: str, step: int):
        return self.conn.execute("SELECT * FROM timers WHERE run_id=? AND step=?", (run_id, step)).fetchone()

    def complete_step(self, run_id: str, step: int, result_json: str) -> bool:
        """Record an endpoint's result, once: False when the step is not pending (already
        completed, cancelled, or unknown). Wakes the run."""
        now = time.time()
        with self.transaction() as conn:
            cur = conn.execute("UPDATE steps SET status='completed', result=?, completed=? WHERE run_id=? AND "
                               "step=? AND status IN ('pending','claimed')", (result_json, now, run_id, step))
            if cur.rowcount != 1:
                return False
            conn.execute("UPDATE runs SET wake_at=? WHERE id=? AND status='waiting'", (now, run_id))
        return True

    def claim_steps(self, endpoints: list[str], worker: str, lease: float, limit: int = 10) -> list[dict]:
        """Claim pending (or lease-expired) step requests for the named endpoints, for a
        connector: each as {run_id, step, endpoint, args (stored form), key}."""
        now = time.time()
        if not endpoints:
            return []
        marks = ",".join("?" for _ in endpoints)
        with self.transaction() as conn:
            rows = conn.execute(
                f"SELECT run_id, step, endpoint, args, key FROM steps WHERE endpoint IN ({marks}) AND "
                f"endpoint NOT IN {RUNTIME_ENDPOINTS} AND "
                f"(status='pending' OR (status='claimed' AND lease_until<?)) ORDER BY created LIMIT ?",
                (*endpoints, now, limit)).fetchall()
            for row in rows:
                conn.execute("UPDATE steps SET status='claimed', claimed_by=?, lease_until=? WHERE run_id=? AND step=?",
                             (worker, now + lease, row["run_id"], row["step"]))
        return [{"run_id": r["run_id"], "step": r["step"], "endpoint": r["endpoint"], "args": json.loads(r["args"]),
                 "key": r["key"]} for r in rows]

    def pending_steps(self, endpoint: str | None = None) -> list[dict]:
        query = "SELECT run_id, step, endpoint, args, key, status FROM steps WHERE status IN ('pending','claimed')"
        params: tuple = ()
        if endpoint is not None:
            query += " AND endpoint=?"
            params = (endpoint,)
        return [dict(r) for r in self.conn.execute(query + " ORDER BY created", params).fetchall()]

    def fail_step(self, run_id: str, step: int, error: str) -> bool:
        """Record that an endpoint could not be performed (a connector's own failure, or a
        result of the wrong type): the run fails with this error when it resumes. Once."""
        now = time.time()
        with self.transaction() as conn:
            cur = conn.execute("UPDATE steps SET status='failed', error=?, completed=? WHERE run_id=? AND step=? "
                               "AND status IN ('pending','claimed')", (error, now, run_id, step))
            if cur.rowcount != 1:
                return False
            conn.execute("UPDATE runs SET wake_at=? WHERE id=? AND status='waiting'", (now, run_id))
        return True

    def deliver_callback(self, token: str, body: str) -> str:
        """Deliver a callback body: 'delivered', 'duplicate' (a second delivery changes
        nothing) or 'unknown'. Completes the step waiting for it, if one is."""
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM callbacks WHERE token=?", (token,)).fetchone()
            if row is None:
                return "unknown"
            if row["delivered"] is not None:
                return "duplicate"
            conn.execute("UPDATE callbacks SET body=?, delivered=? WHERE token=?", (body, now, token))
            waiting = conn.execute("SELECT step FROM steps WHERE run_id=? AND endpoint='http.callback/get-callback!' "
                                   "AND status='pending' AND json_extract(args, '$.token')=?",
                                   (row["run_id"], token)).fetchall()
            for w in waiting:
                conn.execute("UPDATE steps SET status='completed', result=?, completed=? WHERE run_id=? AND step=?",
                             (json.dumps(body), now, row["run_id"], w["step"]))
            if waiting:
                conn.execute("UPDATE runs SET wake_at=? WHERE id=? AND status='waiting'", (now, row["run_id"]))
        return "delivered"

    def callback(self, token: str):
        return self.conn.execute("SELECT * FROM callbacks WHERE token=?", (token,)).fetchone()

    def request_cancel(self, run_id: str) -> str:
        """Cancel a run: at once when it is not running, else at its worker's next commit."""
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute("SELECT status, next_seq FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run `{run_id}`")
            if row["status"] in ("completed", "failed", "cancelled"):
                return row["status"]
            if row["status"] == "running":
                conn.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
                return "cancelling"
            conn.execute("INSERT INTO events(run_id, seq, time, kind, step, data, line) VALUES(?,?,?,?,NULL,?,NULL)",
                         (run_id, row["next_seq"], now, "run-cancelled", json.dumps({})))
            conn.execute("UPDATE runs SET status='cancelled', next_seq=next_seq+1, wake_at=NULL, updated=? "
                         "WHERE id=?", (now, run_id))
            conn.execute("UPDATE steps SET status='cancelled' WHERE run_id=? AND status IN ('pending','claimed')",
                         (run_id,))
            conn.execute("UPDATE timers SET status='cancelled' WHERE run_id=? AND status='set'", (run_id,))
        return "cancelled"

    def cancel_requested(self, run_id: str) -> bool:
        row = self.conn.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    # -- sharing executors between runs ----------------------------------------------------------------

    def others_runnable(self, run_id: str, now: float | None = None) -> bool:
        """Whether a run other than `run_id` could be claimed now (as `claim` would find it):
        a run that computes for long makes way for it."""
        now = time.time() if now is None else now
        row = self.conn.execute("SELECT 1 FROM runs WHERE id<>? AND (status='pending' OR (status='waiting' AND "
                                "wake_at IS NOT NULL AND wake_at<=?) OR (status='running' AND lease_until<?)) "
                                "LIMIT 1", (run_id, now, now)).fetchone()
        return row is not None


def open_store(location: str | None = None) -> SQLiteStore:
    """The store named by `--store`, else `FLOWMETAL_STORE`, else `./.flowmetal/store.db`."""
    location = location or os.environ.get("FLOWMETAL_STORE") or os.path.join(".flowmetal", "store.db")
    if location.startswith(("postgresql://", "postgres://")):
        raise StoreError("PostgreSQL stores are not available in this version; use an SQLite path")
    return SQLiteStore(location)
