"""What `flowmetal run` starts: the callback server (on the store's public URL) and the request
connector only for a program that can use them; and the store it creates has the schema it
always had, with the settings since version 4."""

from __future__ import annotations

import socket
import sqlite3
import textwrap
from pathlib import Path

from procs import flowmetal

from flowmetal.runtime.store import SCHEMA_VERSION, SQLiteStore
from flowmetal.server.local import needed_by
from flowmetal.runtime.program import load

PURE = "(defpackage plain (defn main [] : int? (+ 1 2)))\n"

CALLS_BACK = textwrap.dedent("""\
    (defpackage waits
      (require [http.callback :refer [make-callback! callback-url]])
      (defn main [] : str? (callback-url (make-callback!))))
    """)


ASKS = "(defpackage asks (require [http.request :as http]) (defn main [] : nil? nil))\n"


def _taken_port():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, str(taken.getsockname()[1])


def test_a_program_that_never_calls_out_runs_without_a_callback_server(tmp_path: Path):
    (tmp_path / "plain.flow").write_text(PURE)
    taken, port = _taken_port()  # were the callback server started, it could not listen here
    with taken:
        result = flowmetal("run", "plain.flow", "main", "--store", "s.db", cwd=tmp_path,
                           env={"FLOWMETAL_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    assert (result.returncode, result.stdout) == (0, "3\n"), result.stderr
    (run_id,) = SQLiteStore(tmp_path / "s.db").conn.execute("SELECT id FROM runs").fetchone()
    assert result.stderr == f"flowmetal run: run {run_id}: main\n"


def test_a_program_that_makes_callbacks_still_gets_its_callback_server(tmp_path: Path):
    (tmp_path / "waits.flow").write_text(CALLS_BACK)
    taken, port = _taken_port()
    with taken:
        refused = flowmetal("run", "waits.flow", "main", "--store", "s.db", cwd=tmp_path,
                            env={"FLOWMETAL_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    assert refused.returncode == 2 and f"another program holds port {port}" in refused.stderr
    free = _taken_port()
    free[0].close()
    result = flowmetal("run", "waits.flow", "main", "--store", "s.db", cwd=tmp_path,
                       env={"FLOWMETAL_PUBLIC_URL": f"http://127.0.0.1:{free[1]}"})
    assert result.returncode == 0 and result.stdout.startswith(f'"http://127.0.0.1:{free[1]}/callback/'), result.stderr


def test_a_program_that_only_makes_requests_listens_for_no_callbacks(tmp_path: Path):
    (tmp_path / "asks.flow").write_text(ASKS)
    taken, port = _taken_port()  # the public URL's port, held: no matter, nothing listens for callbacks
    with taken:
        result = flowmetal("run", "asks.flow", "main", "--store", "s.db", cwd=tmp_path,
                           env={"FLOWMETAL_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    assert (result.returncode, result.stdout) == (0, "nil\n"), result.stderr


def test_run_port_is_gone_with_a_clear_error(tmp_path: Path):
    (tmp_path / "plain.flow").write_text(PURE)
    result = flowmetal("run", "plain.flow", "main", "--port", "9", "--store", "s.db", cwd=tmp_path)
    assert result.returncode == 2 and "--port is no longer taken" in result.stderr
    assert "FLOWMETAL_PUBLIC_URL" in result.stderr and not (tmp_path / "s.db").exists()


def test_which_programs_need_the_server():
    assert not needed_by(load({"plain.flow": PURE}))
    assert needed_by(load({"waits.flow": CALLS_BACK}))
    requests = "(defpackage asks (require [http.request :as http]) (defn main [] : nil? nil))\n"
    assert needed_by(load({"asks.flow": requests}))
    through = "(defpackage outer (require [asks :refer [main]]) (defn go [] : nil? (main)))\n"
    assert needed_by(load({"asks.flow": requests, "outer.flow": through}))
    # flowmetal.retry requires http.request (for `error?`), but calls no HTTP endpoint itself.
    retries = ("(defpackage again (require [flowmetal.retry :refer [retry!]])"
               " (defn main [] : int? (retry! (fn [] 1))))\n")
    assert not needed_by(load({"again.flow": retries}))


# The schema as the store has always made it (sqlite-utils wrote these statements before the
# migrations were written as SQL): a store made now is the same file as one made then.
SCHEMA = [
    ("table", "meta", 'CREATE TABLE "meta" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT\n)'),
    ("table", "sources", 'CREATE TABLE "sources" (\n   "hash" TEXT PRIMARY KEY,\n   "name" TEXT,\n   "text" TEXT\n)'),
    ("table", "runs", 'CREATE TABLE "runs" (\n   "id" TEXT PRIMARY KEY,\n   "entry" TEXT NOT NULL,\n   "args" TEXT,\n'
                      '   "program" TEXT NOT NULL,\n   "code_hash" TEXT,\n   "status" TEXT NOT NULL,\n   "result" TEXT,\n'
                      '   "error" TEXT,\n   "created" REAL,\n   "updated" REAL,\n   "owner" TEXT,\n   "lease_until" REAL,\n'
                      '   "wake_at" REAL,\n   "next_seq" INTEGER DEFAULT 1,\n   "cancel_requested" INTEGER DEFAULT 0\n'
                      ', "parent" TEXT, "epoch" INTEGER NOT NULL DEFAULT 0, "change_seq" INTEGER)'),
    # (parent, epoch and change_seq added by versions 7, 9 and 10, as SQLite writes an added column)
    ("index", "idx_runs_status_wake_at", 'CREATE INDEX "idx_runs_status_wake_at"\n    ON "runs" ("status", "wake_at")'),
    ("table", "events", 'CREATE TABLE "events" (\n   "run_id" TEXT REFERENCES "runs"("id"),\n   "seq" INTEGER,\n'
                        '   "time" REAL,\n   "kind" TEXT,\n   "step" INTEGER,\n   "data" TEXT,\n   "line" INTEGER,\n'
                        '   PRIMARY KEY ("run_id", "seq")\n)'),
    ("table", "snapshots", 'CREATE TABLE "snapshots" (\n   "run_id" TEXT PRIMARY KEY REFERENCES "runs"("id"),\n'
                           '   "seq" INTEGER,\n   "state" TEXT\n)'),
    ("table", "steps", 'CREATE TABLE "steps" (\n   "run_id" TEXT REFERENCES "runs"("id"),\n   "step" INTEGER,\n'
                       '   "endpoint" TEXT,\n   "args" TEXT,\n   "key" TEXT,\n   "status" TEXT,\n   "result" TEXT,\n'
                       '   "error" TEXT,\n   "claimed_by" TEXT,\n   "lease_until" REAL,\n   "created" REAL,\n'
                       '   "completed" REAL, "claim_epoch" INTEGER NOT NULL DEFAULT 0,\n'  # added by version 11
                       '   PRIMARY KEY ("run_id", "step")\n)'),
    ("index", "idx_steps_endpoint_status", 'CREATE INDEX "idx_steps_endpoint_status"\n    ON "steps" ("endpoint", "status")'),
    ("table", "timers", 'CREATE TABLE "timers" (\n   "run_id" TEXT REFERENCES "runs"("id"),\n   "step" INTEGER,\n'
                        '   "due" REAL,\n   "status" TEXT,\n   PRIMARY KEY ("run_id", "step")\n)'),
    ("index", "idx_timers_status_due", 'CREATE INDEX "idx_timers_status_due"\n    ON "timers" ("status", "due")'),
    ("table", "callbacks", 'CREATE TABLE "callbacks" (\n   "token" TEXT PRIMARY KEY,\n   "run_id" TEXT REFERENCES "runs"("id"),\n'
                           '   "step" INTEGER,\n   "created" REAL,\n   "body" TEXT,\n   "delivered" REAL\n)'),
    ("index", "events_by_step", 'CREATE INDEX "events_by_step"\n    ON "events" ("run_id", "step")'),
    ("table", "run_keys", 'CREATE TABLE "run_keys" (\n   "key" TEXT PRIMARY KEY,\n   "fingerprint" TEXT NOT NULL,\n'
                          '   "run_id" TEXT NOT NULL,\n   "created" REAL\n)'),
    ("table", "settings", 'CREATE TABLE "settings" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT NOT NULL\n)'),
    ("table", "presence", 'CREATE TABLE "presence" (\n   "name" TEXT PRIMARY KEY,\n   "pid" INTEGER,\n'
                          '   "host" TEXT,\n   "kind" TEXT NOT NULL,\n   "endpoints" TEXT NOT NULL,\n'
                          '   "seen" REAL NOT NULL\n)'),
    ("index", "steps_by_status", 'CREATE INDEX "steps_by_status"\n    ON "steps" ("status")'),
    ("table", "signals", 'CREATE TABLE "signals" (\n   "run_id" TEXT NOT NULL REFERENCES "runs"("id"),\n'
                         '   "seq" INTEGER NOT NULL,\n   "name" TEXT NOT NULL,\n   "body" TEXT NOT NULL,\n   "key" TEXT,\n'
                         '   "sent" REAL,\n   "step" INTEGER,\n   "consumed" REAL,\n   PRIMARY KEY ("run_id", "seq"),\n'
                         '   UNIQUE ("run_id", "key")\n)'),
    ("index", "signals_queued", 'CREATE INDEX "signals_queued"\n    ON "signals" ("run_id", "name", "step", "seq")'),
    ("index", "runs_by_parent", 'CREATE INDEX "runs_by_parent"\n    ON "runs" ("parent")'),
    ("table", "snapshot_parts", 'CREATE TABLE "snapshot_parts" (\n   "run_id" TEXT NOT NULL REFERENCES "runs"("id"),\n'
                                '   "key" TEXT NOT NULL,\n   "state" TEXT NOT NULL,\n   PRIMARY KEY ("run_id", "key")\n)'),
    ("index", "steps_by_run_status", 'CREATE INDEX "steps_by_run_status"\n    ON "steps" ("run_id", "status", "endpoint")'),
    ("index", "timers_by_run_status", 'CREATE INDEX "timers_by_run_status"\n    ON "timers" ("run_id", "status", "due")'),
    ("index", "runs_by_change", 'CREATE INDEX "runs_by_change" ON "runs" ("change_seq")'),
]


def test_a_new_store_has_the_schema_stores_always_had(tmp_path: Path):
    store = SQLiteStore(tmp_path / "store.db")
    assert store.version() == SCHEMA_VERSION == 13
    rows = sqlite3.connect(tmp_path / "store.db").execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    assert rows == SCHEMA
