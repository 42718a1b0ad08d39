"""PostgreSQL under the store: connections, SQL, rows, errors and the schema's versions.

`flowmetal.runtime.store.PostgresStore` is the store's logic (`store.Store`, written
once for SQLite and PostgreSQL) over a `Database` from here. Only this module imports
psycopg, and only when a `postgresql://` store is opened, so that SQLite users never
pay for it.

Connections: a psycopg pool per process and URL (shared by every store object of the
process opened on that URL, closed with the last of them), each connection in
autocommit mode; a transaction is `BEGIN ... COMMIT` on one connection taken from the
pool. A connection that breaks (the server restarted) is dropped by the pool and
replaced at the next use: the operation it broke fails with a `StoreError` saying
so, except a read, which is tried again once on a fresh connection (reading twice
changes nothing), and a transaction whose BEGIN found the connection broken (nothing
was done yet), which is begun again on a fresh one. So a restart of the server
fails only the transactions it cut short, not the next one of every process. The first
connection of a process (`_first_connection`) waits for a server that is not there yet: up
to the patience the process was given (`store.wait_for_store`: 60 s for the commands that
run until stopped), and a few seconds (`STARTING`) for one that says it is starting up or
shutting down; a refused login or a missing database is never waited for. Every psycopg error becomes a `StoreError` naming the problem, never
a traceback.

SQL: the store's queries use `?` placeholders, as SQLite does; `_sql` turns them into
psycopg's `%s`. Rows answer to a column's name and to its index, as `sqlite3.Row`s do.

Wake-ups (`listener`): one more connection per process and URL, outside the pool, that
LISTENs on the store's channels in a thread of its own and sets the `threading.Event`s of
the loops that subscribed (`Listener`). It reconnects after the connection breaks (a
server restart, `pg_terminate_backend`), every `RECONNECT` seconds, and then wakes every
subscriber once, since what was said meanwhile was lost; `listening` says whether it is
connected now, so that loops poll at their short interval while it is not.

The schema (`MIGRATIONS`): the SQLite store's tables and versions, in PostgreSQL's types
(DOUBLE PRECISION times, TEXT for JSON), plus `runs.recorded`, the order runs were
recorded in (SQLite's `rowid`). `runs.change_seq` holds the id of the transaction that
last changed the run (`pg_current_xact_id()`, PostgreSQL 13 or later: see
`store.PostgresStore` on the change feed). Each migration runs in its own transaction under a
transaction-level advisory lock, so that many processes starting at once migrate once.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from flowmetal.runtime.storeerrors import StoreBusy, StoreError

CONNECT_TIMEOUT = 10     # seconds to reach the server before a clear error
POOL_SIZE = 8            # connections a process may hold to one store (more when more store objects share it)
MIGRATION_LOCK = 0x466C6F776D6574   # the advisory lock key of migrations ("Flowmet")

# psycopg's pool logs each connection it drops or fails to make, as object reprs, many times
# a restart: noise for an operator. The store's own errors say what failed, in one line.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url


def describe(url: str, error: Exception) -> str:
    """One line saying what is wrong, and where: never psycopg's traceback."""
    text = " ".join(str(error).split()) or type(error).__name__
    where = shown(url)
    if isinstance(error, psycopg.OperationalError):
        if any(words in text for words in ("password authentication failed", "no password supplied", "role \"")):
            return f"{where}: PostgreSQL refused the login ({text}): check the user and password in the URL"
        if "does not exist" in text and "database" in text:
            return f"{where}: {text}: create the database first (`createdb`), or name another in the URL"
        return f"{where}: cannot use the PostgreSQL server ({text}): check that it runs and the URL"
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return f"{where}: the store was opened read-only and this command writes to it"
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        return f"{where}: PostgreSQL refused ({text}): the user lacks the privileges the store needs"
    if isinstance(error, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return f"{where}: the store was busy ({text}): nothing was changed; try again"
    if isinstance(error, psycopg.DataError) and "0x00" in text:
        return f"{where}: PostgreSQL cannot store text holding a NUL character: nothing was changed"
    return f"{where}: the store cannot be used: {text}"


class Row:
    """A result row that answers `row["column"]`, `row[0]`, `keys()` and `dict(row)`."""
    __slots__ = ("_values", "_index")

    def __init__(self, values, index: dict[str, int]) -> None:
        self._values, self._index = values, index

    def __getitem__(self, key):
        return self._values[self._index[key]] if isinstance(key, str) else self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


def _rows(cursor):
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


_TRANSLATED: dict[str, str] = {}


def _sql(query: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled). The store's queries hold no
    `?` inside their string literals."""
    out = _TRANSLATED.get(query)
    if out is None:
        out = _TRANSLATED[query] = query.replace("%", "%%").replace("?", "%s")
    return out


class Tx:
    """One connection inside a transaction: `execute` as sqlite3's, answering a cursor.

    In pipeline mode (`Database.transaction(pipeline=True)`) statements are sent without
    waiting for their results: a transaction's writes travel together, in one round trip
    to the server, instead of one each. Reading rows waits for them (psycopg syncs the
    pipeline), and so does a statement's `rowcount` (`_Pipelined`), so that the store's
    logic reads the same answers either way."""

    def __init__(self, conn: psycopg.Connection, pipeline=None) -> None:
        self.conn = conn
        self.pipeline = pipeline
        self.unsynced = False

    def execute(self, query: str, params=()):
        if not params:  # without parameters psycopg reads no placeholders (nor `%`)
            cursor = self.conn.execute(query)
        else:
            cursor = self.conn.execute(_sql(query), tuple(params))
        if self.pipeline is None:
            return cursor
        self.unsynced = True
        return _Pipelined(cursor, self)

    def sync(self) -> None:
        if self.unsynced:
            self.pipeline.sync()
            self.unsynced = False


class _Pipelined:
    """A cursor of a pipelined statement: its rows and `rowcount` once the pipeline synced."""

    def __init__(self, cursor, tx: Tx) -> None:
        self.cursor, self.tx = cursor, tx

    @property
    def rowcount(self) -> int:
        self.tx.sync()
        return self.cursor.rowcount

    def fetchone(self):
        self.tx.unsynced = False  # psycopg syncs to fetch
        return self.cursor.fetchone()

    def fetchall(self):
        self.tx.unsynced = False
        return self.cursor.fetchall()

    def __iter__(self):
        return iter(self.fetchall())


# -- pools: one per process, URL and mode, shared by the store objects opened on it ------------------

_POOLS: dict[tuple[str, bool], list] = {}   # (url, readonly) -> [pool, how many stores use it]
_POOLS_LOCK = threading.Lock()


# Waiting for the server at the first connection (`_first_connection`).
STARTING = 5.0           # seconds any process waits for a server starting up or shutting down
_STARTING_WORDS = ("starting up", "shutting down", "not yet accepting connections", "in recovery mode")
_said_waiting = False     # whether this process said that it waits for the store (once)
_SAID_LOCK = threading.Lock()


def _unavailable(error: Exception) -> bool:
    """Whether the first connection failed because the server is not there now (down, starting,
    stopping, restarting: worth waiting for), rather than because the URL or login is wrong."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    text = " ".join(str(error).split())
    refused = any(words in text for words in ("password authentication failed", "no password supplied", "role \"",
                                              "does not exist", "no pg_hba.conf entry", "invalid"))
    return not refused


def _starting(error: Exception) -> bool:
    """Whether the server said it is starting up or shutting down (a restart under way)."""
    return isinstance(error, psycopg.OperationalError) and any(w in str(error) for w in _STARTING_WORDS)


def _first_connection(url: str, options: str | None, patience: float, say) -> None:
    """Connect once, to make sure the server can be reached and the login works. While the
    server is unavailable, try again with backoff (0.1 s doubling to 2 s): for up to `patience`
    seconds whatever the reason, and up to `STARTING` seconds when it says it is starting up or
    shutting down. `say(message)` is called once per process when it starts waiting. Then the
    error of the last try, in one line."""
    start = time.monotonic()
    pause = 0.1
    while True:
        try:
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, options=options or "").close()
            return
        except psycopg.Error as error:
            waited = time.monotonic() - start
            limit = max(patience, STARTING) if _starting(error) else patience
            if not _unavailable(error) or waited + pause > limit:
                raise StoreError(describe(url, error)) from None
            _say_waiting(url, error, limit, say)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        except Exception as error:  # a malformed URL: psycopg's own ProgrammingError or ValueError
            raise StoreError(f"{shown(url)}: not a usable PostgreSQL URL ({error})") from None


def _say_waiting(url: str, error: Exception, limit: float, say) -> None:
    global _said_waiting
    with _SAID_LOCK:
        if _said_waiting or say is None:
            return
        _said_waiting = True
    text = " ".join(str(error).split())
    say(f"waiting for the store at {shown(url)} (up to {limit:g} s): {text}")


def _pool(url: str, readonly: bool, patience: float = 0.0, say=None) -> ConnectionPool:
    with _POOLS_LOCK:
        held = _POOLS.get((url, readonly))
        if held is not None:
            held[1] += 1
            # Each store object uses one connection at a time: room for every one (serve's executors).
            held[0].resize(1, max(POOL_SIZE, held[1] + 2))
            return held[0]
    # Connect once first, outside the lock (it may wait for the server): a server that cannot
    # be reached, or refuses, is an error naming why now (the pool's own would only say that
    # it timed out).
    options = "-c default_transaction_read_only=on" if readonly else None
    _first_connection(url, options, patience, say)
    with _POOLS_LOCK:
        held = _POOLS.get((url, readonly))
        if held is not None:  # another thread of this process made it meanwhile
            held[1] += 1
            held[0].resize(1, max(POOL_SIZE, held[1] + 2))
            return held[0]
        kwargs = {"autocommit": True, "row_factory": _rows, "connect_timeout": CONNECT_TIMEOUT}
        if options:
            kwargs["options"] = options
        pool = ConnectionPool(url, min_size=1, max_size=POOL_SIZE, kwargs=kwargs, open=False,
                              timeout=CONNECT_TIMEOUT + 20, name="flowmetal-store")
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except psycopg.Error as error:
            pool.close()
            raise StoreError(describe(url, error)) from None
        _POOLS[(url, readonly)] = [pool, 1]
        return pool


def _unpool(url: str, readonly: bool) -> None:
    with _POOLS_LOCK:
        held = _POOLS.get((url, readonly))
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _POOLS[(url, readonly)]
    held[0].close()


def _lost(error: Exception) -> bool:
    """Whether the error is the connection's (it broke), not the query's."""
    return isinstance(error, psycopg.OperationalError) and not isinstance(
        error, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable)


class _Closed(Exception):
    """A pooled connection the server closed while it was idle."""


def _alive(conn: psycopg.Connection) -> bool:
    """Whether the server has not closed the idle connection `conn`. The server says nothing
    on an idle connection of the pool (no LISTEN there) unless it is closing it: a restart's
    notice, then the end of the stream. So anything to read is read, without waiting (the
    notice, then the end, which marks the connection broken for the pool to drop), and the
    connection is not used."""
    if conn.broken or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
        return False
    poller = select.poll()  # (not select.select: a serve's descriptors may pass FD_SETSIZE)
    poller.register(conn.pgconn.socket, select.POLLIN)
    if not poller.poll(0):
        return True
    for _ in range(2):
        try:
            conn.pgconn.consume_input()
        except psycopg.Error:
            break
    return False


class Database:
    """A PostgreSQL store's connections (see the module's docstring)."""

    def __init__(self, url: str, readonly: bool = False, patience: float = 0.0, say=None) -> None:
        self.url, self.readonly = url, readonly
        self.pool: ConnectionPool | None = _pool(url, readonly, patience, say)

    def close(self) -> None:
        if self.pool is not None:
            self.pool = None
            _unpool(self.url, self.readonly)

    def _connection(self):
        if self.pool is None:
            raise StoreError(f"{shown(self.url)}: the store was closed")
        return self.pool.connection()

    def _begin(self) -> tuple[ExitStack, psycopg.Connection]:
        """A pooled connection in a transaction just begun. A connection the server broke
        since it was last used (a restart) fails at its BEGIN, before anything was done:
        the pool's other idle ones are checked, and it is tried once more on a fresh one
        (the pool waits for the server to accept connections again, up to its timeout)."""
        for attempt in (1, 2):
            stack = ExitStack()
            try:
                conn = stack.enter_context(self._connection())
                stack.enter_context(conn.transaction())
                return stack, conn
            except psycopg.Error as error:
                try:
                    stack.close()  # the broken connection goes back to the pool, which drops it
                except psycopg.Error:
                    pass
                if attempt == 1 and _lost(error) and self.pool is not None:
                    self.pool.check()
                    continue
                raise StoreError(describe(self.url, error)) from None
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self, pipeline: bool = False):
        """A write transaction on one pooled connection: `with db.transaction() as tx: ...`.
        Not tried again when the connection breaks once it began: its outcome is not known.
        `pipeline`: its statements after the BEGIN are pipelined (`Tx`); the BEGIN itself
        waits for its answer, so that a connection the server broke is still found there,
        before anything was done, and the transaction begun again on a fresh one."""
        stack, conn = self._begin()
        try:
            with stack:
                if pipeline:
                    with conn.pipeline() as pipe:
                        yield Tx(conn, pipe)
                else:
                    yield Tx(conn)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
            raise StoreBusy(describe(self.url, error)) from None
        except psycopg.Error as error:
            if _lost(error) and self.pool is not None:
                self.pool.check()  # replace the other connections the restart broke, too
            raise StoreError(describe(self.url, error) + (" (the operation was not done, or its outcome is "
                                                          "unknown)" if _lost(error) else "")) from None

    def call(self, query: str, params=(), refused: dict[str, type[Exception]] | None = None):
        """One statement on its own (the pool's connections are in autocommit: a transaction of
        its own, one round trip), answering its first row: a server-side function that does a
        whole transaction's work. Not tried again once sent: its outcome is not known when the
        connection breaks. A connection the server closed while it was idle (a restart) is
        found before anything is sent, by reading what the server said meanwhile, and another
        is taken. `refused`: SQLSTATEs the function raises on purpose, and the exception each
        becomes (with the server's message)."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    if attempt == 1 and not _alive(conn):
                        raise _Closed()
                    try:
                        return conn.execute(query, params).fetchone()
                    except psycopg.Error as error:
                        if refused and error.sqlstate in refused:
                            raise refused[error.sqlstate](error.diag.message_primary or str(error)) from None
                        raise
            except _Closed:
                if self.pool is not None:
                    self.pool.check()
                continue
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                raise StoreBusy(describe(self.url, error)) from None
            except psycopg.Error as error:
                if _lost(error) and self.pool is not None:
                    self.pool.check()
                raise StoreError(describe(self.url, error) + (" (the operation was not done, or its outcome is "
                                                              "unknown)" if _lost(error) else "")) from None
        raise StoreError(f"{shown(self.url)}: no connection to the server")

    def read(self, query: str, params=(), many: bool = True):
        """A read outside any transaction: its rows (`many`) or its first row (or None). A
        broken connection is replaced and the read tried once more."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    cursor = Tx(conn).execute(query, params)
                    return cursor.fetchall() if many else cursor.fetchone()
            except psycopg.Error as error:
                if attempt == 1 and _lost(error) and self.pool is not None:
                    self.pool.check()
                    continue
                raise StoreError(describe(self.url, error)) from None
        raise AssertionError("unreachable")


# -- wake-ups: a dedicated listening connection per process and URL -----------------------------------

RECONNECT = 1.0      # seconds between tries to connect the listening connection again
KEEPALIVE = 10.0     # seconds between checks that the listening connection still works
LOOK = 0.5           # seconds between looks at whether the listener was closed


class Subscription:
    """A loop's interest in wake-ups: its event is set when a notification on one of its
    channels comes (for steps, naming one of its endpoints), and when the listener
    reconnects. `close()` ends it (the last one closes the listener)."""

    def __init__(self, listener: "Listener", event: threading.Event, channels: dict[str, frozenset | None]) -> None:
        self.listener, self.event, self.channels = listener, event, channels

    @property
    def listening(self) -> bool:
        return self.listener.listening

    def close(self) -> None:
        _unsubscribe(self)


class Listener:
    """LISTEN on `channels` over one connection of its own (not the pool's: a pooled
    connection goes back to other work and misses notifications), in a daemon thread."""

    def __init__(self, url: str, channels: tuple[str, ...]) -> None:
        self.url, self.channels = url, channels
        self.listening = False
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._main, name="flowmetal-listener", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()

    def _deliver(self, channel: str | None, payload: str | None) -> None:
        """Set the events of the subscriptions the notification concerns (every one for None)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            if channel is None:
                subscription.event.set()
            elif channel in subscription.channels:
                wanted = subscription.channels[channel]
                if wanted is None or payload in wanted:
                    subscription.event.set()

    def _main(self) -> None:
        while not self._closed.is_set():
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                       application_name="flowmetal-listener", keepalives=1, keepalives_idle=30,
                                       keepalives_interval=10, keepalives_count=3)
            except Exception:  # noqa: BLE001 - the server is down or restarting: polling covers it meanwhile
                self._closed.wait(RECONNECT)
                continue
            try:
                with conn:
                    for channel in self.channels:
                        conn.execute(f'LISTEN "{channel}"')
                    self.listening = True
                    self._deliver(None, None)  # what was said while nobody listened is lost: look now
                    checked = time.monotonic()
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=LOOK):
                            self._deliver(note.channel, note.payload)
                        if time.monotonic() - checked >= KEEPALIVE:
                            conn.execute("SELECT 1")   # a connection dropped silently raises here
                            checked = time.monotonic()
            except Exception:  # noqa: BLE001 - the connection broke: connect again
                pass
            finally:
                self.listening = False
            if not self._closed.is_set():
                self._deliver(None, None)   # the loops poll at their short interval until it is back
                self._closed.wait(RECONNECT)


_LISTENERS: dict[str, Listener] = {}
_LISTENERS_LOCK = threading.Lock()


def subscribe(url: str, channels: tuple[str, ...], event: threading.Event,
              wanted: dict[str, frozenset | None]) -> Subscription:
    """Set `event` at each notification on a channel of `wanted` (whose payload is among its
    values, unless None), through the process's listener for `url` (started now if none is)."""
    with _LISTENERS_LOCK:
        found = _LISTENERS.get(url)
        if found is None:
            found = _LISTENERS[url] = Listener(url, channels)
        subscription = Subscription(found, event, wanted)
        with found._lock:
            found._subscriptions.append(subscription)
    return subscription


def _unsubscribe(subscription: Subscription) -> None:
    """End a subscription; the listener goes with its last one."""
    found = subscription.listener
    with _LISTENERS_LOCK:
        with found._lock:
            if subscription in found._subscriptions:
                found._subscriptions.remove(subscription)
            last = not found._subscriptions
        if last and _LISTENERS.get(found.url) is found:
            del _LISTENERS[found.url]
            found.close()


# -- the schema: SQLite's versions in PostgreSQL's types ----------------------------------------------

# `Store.commit` of a run's progress whose only other changes are steps performed in the run's
# own process (`inline_steps`, `inline_results`) and its snapshot, as one server-side function:
# one statement and one round trip where the transaction takes five, the same statements
# and checks in the same order. Its arguments: one JSON text (psycopg adapts one text much
# faster than arrays), {"events": [[kind, step, data, time or null, line]], "results":
# [[step, endpoint, args, key, completed?, text]], "asked": [step]}, and the snapshot's text
# apart (null: none), not escaped into the JSON. A run no longer held, or a result for a step
# the store knows already, raises SQLSTATE FM409 (`LEASE_LOST`), which undoes it all; the
# answer is the steps asked for that the store does not know (performed here).
#
# Every statement finds its rows by a whole key (the run's id; the run's id and a step's
# number), one step at a time: PL/pgSQL keeps the plans of its first calls, which on a new
# store are made for empty tables, and a join with the JSON list then read every step of the
# run for each result (a step's cost grew with the run).
LEASE_LOST = "FM409"
COMMIT_INLINE = """\
CREATE OR REPLACE FUNCTION flowmetal_commit_inline_2(p_run text, p_worker text, p_epoch integer, p_body text,
                                                      p_snapshot text)
RETURNS integer[] LANGUAGE plpgsql AS $fn$
DECLARE
  r record; x record; v_now float8; b jsonb := p_body::jsonb; n integer; k integer; unknown integer[] := '{}';
BEGIN
  SELECT owner, status, next_seq, epoch INTO r FROM runs WHERE id = p_run FOR UPDATE;
  IF NOT FOUND OR r.owner IS DISTINCT FROM p_worker OR r.status <> 'running' OR r.epoch <> p_epoch THEN
    RAISE EXCEPTION 'the run % is no longer held by %', p_run, p_worker USING ERRCODE = 'FM409';
  END IF;
  v_now := extract(epoch FROM clock_timestamp())::float8;
  n := jsonb_array_length(b->'events');
  INSERT INTO events(run_id, seq, time, kind, step, data, line)
    SELECT p_run, r.next_seq + e.o - 1, coalesce((e.v->>3)::float8, v_now), e.v->>0, (e.v->>1)::integer,
           e.v->>2, (e.v->>4)::integer
    FROM jsonb_array_elements(b->'events') WITH ORDINALITY AS e(v, o);
  FOR x IN SELECT e.v FROM jsonb_array_elements(b->'results') AS e(v) LOOP
    INSERT INTO steps(run_id, step, endpoint, args, key, status, result, error, created, completed, claimed_by)
      VALUES (p_run, (x.v->>0)::integer, x.v->>1, x.v->>2, x.v->>3, 'applied',
              CASE WHEN (x.v->>4)::boolean THEN x.v->>5 END, CASE WHEN (x.v->>4)::boolean THEN NULL ELSE x.v->>5 END,
              v_now, v_now, p_worker)
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'the step % of the run % was performed by another', x.v->>0, p_run USING ERRCODE = 'FM409';
    END IF;
  END LOOP;
  FOR k IN SELECT (e.v)::integer FROM jsonb_array_elements_text(b->'asked') AS e(v) LOOP
    PERFORM 1 FROM steps WHERE run_id = p_run AND step = k;
    IF NOT FOUND THEN
      unknown := unknown || k;
    END IF;
  END LOOP;
  IF p_snapshot IS NOT NULL THEN
    INSERT INTO snapshots(run_id, seq, state) VALUES (p_run, r.next_seq + n - 1, p_snapshot)
      ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, state = excluded.state;
  END IF;
  UPDATE runs SET next_seq = r.next_seq + n, updated = v_now, change_seq = pg_current_xact_id()::text::bigint
    WHERE id = p_run;
  RETURN unknown;
END
$fn$"""
CALL_COMMIT_INLINE = "SELECT flowmetal_commit_inline_2(%s, %s, %s, %s, %s)"


def _statements(statements: list[str]):
    def migrate(conn) -> None:
        for statement in statements:
            conn.execute(statement)
    return migrate


_VERSIONS = {
    1: [
        'CREATE TABLE "meta" ("key" TEXT PRIMARY KEY, "value" TEXT)',
        'CREATE TABLE "sources" ("hash" TEXT PRIMARY KEY, "name" TEXT, "text" TEXT)',
        '''CREATE TABLE "runs" (
   "id" TEXT PRIMARY KEY,
   "entry" TEXT NOT NULL,
   "args" TEXT,
   "program" TEXT NOT NULL,
   "code_hash" TEXT,
   "status" TEXT NOT NULL,
   "result" TEXT,
   "error" TEXT,
   "created" DOUBLE PRECISION,
   "updated" DOUBLE PRECISION,
   "owner" TEXT,
   "lease_until" DOUBLE PRECISION,
   "wake_at" DOUBLE PRECISION,
   "next_seq" INTEGER DEFAULT 1,
   "cancel_requested" INTEGER DEFAULT 0,
   "recorded" BIGINT GENERATED ALWAYS AS IDENTITY
)''',
        'CREATE INDEX "idx_runs_status_wake_at" ON "runs" ("status", "wake_at")',
        'CREATE INDEX "runs_by_updated" ON "runs" ("updated")',
        '''CREATE TABLE "events" (
   "run_id" TEXT REFERENCES "runs"("id"),
   "seq" INTEGER,
   "time" DOUBLE PRECISION,
   "kind" TEXT,
   "step" INTEGER,
   "data" TEXT,
   "line" INTEGER,
   PRIMARY KEY ("run_id", "seq")
)''',
        'CREATE TABLE "snapshots" ("run_id" TEXT PRIMARY KEY REFERENCES "runs"("id"), "seq" INTEGER, "state" TEXT)',
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
   "lease_until" DOUBLE PRECISION,
   "created" DOUBLE PRECISION,
   "completed" DOUBLE PRECISION,
   PRIMARY KEY ("run_id", "step")
)''',
        'CREATE INDEX "idx_steps_endpoint_status" ON "steps" ("endpoint", "status")',
        '''CREATE TABLE "timers" (
   "run_id" TEXT REFERENCES "runs"("id"),
   "step" INTEGER,
   "due" DOUBLE PRECISION,
   "status" TEXT,
   PRIMARY KEY ("run_id", "step")
)''',
        'CREATE INDEX "idx_timers_status_due" ON "timers" ("status", "due")',
        '''CREATE TABLE "callbacks" (
   "token" TEXT PRIMARY KEY,
   "run_id" TEXT REFERENCES "runs"("id"),
   "step" INTEGER,
   "created" DOUBLE PRECISION,
   "body" TEXT,
   "delivered" DOUBLE PRECISION
)''',
    ],
    2: ['CREATE INDEX "events_by_step" ON "events" ("run_id", "step")'],
    3: ['''CREATE TABLE "run_keys" ("key" TEXT PRIMARY KEY, "fingerprint" TEXT NOT NULL, "run_id" TEXT NOT NULL,
   "created" DOUBLE PRECISION)'''],
    4: [
        'CREATE TABLE "settings" ("key" TEXT PRIMARY KEY, "value" TEXT NOT NULL)',
        "INSERT INTO settings(key, value) VALUES('store_id', replace(gen_random_uuid()::text, '-', '')) "
        "ON CONFLICT DO NOTHING",
    ],
    5: [
        '''CREATE TABLE "presence" ("name" TEXT PRIMARY KEY, "pid" INTEGER, "host" TEXT, "kind" TEXT NOT NULL,
   "endpoints" TEXT NOT NULL, "seen" DOUBLE PRECISION NOT NULL)''',
        'CREATE INDEX "steps_by_status" ON "steps" ("status")',
    ],
    6: [
        '''CREATE TABLE "signals" (
   "run_id" TEXT NOT NULL REFERENCES "runs"("id"),
   "seq" INTEGER NOT NULL,
   "name" TEXT NOT NULL,
   "body" TEXT NOT NULL,
   "key" TEXT,
   "sent" DOUBLE PRECISION,
   "step" INTEGER,
   "consumed" DOUBLE PRECISION,
   PRIMARY KEY ("run_id", "seq"),
   UNIQUE ("run_id", "key")
)''',
        'CREATE INDEX "signals_queued" ON "signals" ("run_id", "name", "step", "seq")',
    ],
    7: [
        'ALTER TABLE "runs" ADD COLUMN "parent" TEXT',
        'CREATE INDEX "runs_by_parent" ON "runs" ("parent")',
    ],
    8: [
        '''CREATE TABLE "snapshot_parts" ("run_id" TEXT NOT NULL REFERENCES "runs"("id"), "key" TEXT NOT NULL,
           "state" TEXT NOT NULL, PRIMARY KEY ("run_id", "key"))''',
        'CREATE INDEX "steps_by_run_status" ON "steps" ("run_id", "status", "endpoint")',
        'CREATE INDEX "timers_by_run_status" ON "timers" ("run_id", "status", "due")',
    ],
    9: ['ALTER TABLE "runs" ADD COLUMN "epoch" INTEGER NOT NULL DEFAULT 0'],
    # The change feed (`store.PostgresStore`): runs recorded before are stamped with the id of
    # the transaction that migrates, below any stamp to come.
    10: [
        'ALTER TABLE "runs" ADD COLUMN "change_seq" BIGINT',
        'UPDATE "runs" SET "change_seq" = pg_current_xact_id()::text::bigint',
        'CREATE INDEX "runs_by_change" ON "runs" ("change_seq")',
    ],
    11: ['ALTER TABLE "steps" ADD COLUMN IF NOT EXISTS "claim_epoch" INTEGER NOT NULL DEFAULT 0'],
    # The commit of a step performed in the run's own process, as one statement (`PostgresStore.commit`).
    12: [COMMIT_INLINE],
    # The index of a run's steps by status holds only the steps not yet given to their run
    # (nor cancelled): the few a run looks for, not every step it ever made, and a step
    # given to its run leaves it without a new entry. Every query that uses it names such a
    # status. The inline commit's function records a step performed in the run's own process
    # once, with its result, and finds rows by their keys; under a new name, so that a process
    # of the version before, still running against the store, fails to call it rather than
    # calling it with the arguments it had.
    13: [
        "DROP FUNCTION IF EXISTS flowmetal_commit_inline(text, text, integer, text, text)",
        'DROP INDEX IF EXISTS "steps_by_run_status"',
        'CREATE INDEX "steps_by_run_status" ON "steps" ("run_id", "status", "endpoint") '
        "WHERE status IN ('pending', 'claimed', 'completed', 'failed')",
        COMMIT_INLINE,
    ],
}

MIGRATIONS = {version: _statements(statements) for version, statements in _VERSIONS.items()}

# The store's hooks in PostgreSQL's SQL (see `store.Store`).
TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema=current_schema()"
CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8"
MIGRATION_LOCKING = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"
# What changes whenever any transaction that wrote commits (and only then, apart from other
# databases' commits on the same server: a look for nothing): the current snapshot. Two equal
# snapshots see the same committed transactions; a commit between them either had an id at or
# past the first's `xmax` (then `xmax` moved on) or was in progress (in its `xip` list, then
# gone from it). Reading it takes no lock and writes nothing, so commits never queue on it.
CHANGE_TOKEN = "SELECT pg_current_snapshot()::text"
