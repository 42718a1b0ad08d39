"""The runs of a workspace as an editor sees them: start, cancel, replay, list, trace, inspect, watch.

The language server's run and trace features (docs/lsp-protocol.md) are thin
protocol handlers over this module, which knows nothing of the protocol: it
answers in plain data (`Run`, `inspect.TraceEvent`, `inspect.State`) with spans
in the runs' stored sources, and the server turns those into positions.

Same store, same runtime as the command line. A workbench works on one store
(the workspace's `.flowmetal/store.db` unless configured otherwise), so runs
started by `flowmetal run`, a `worker` or `serve` on that store show up here as
they go, and runs started here are ordinary runs that any of them can drive.
Who drives the runs started here:

- with `serve_url` (a running `flowmetal serve`, here or on another machine),
  everything goes through its HTTP API: new runs are handed to it (`POST
  /api/runs`) and cancelled through it, its workers and connectors drive them,
  and runs, logs and programs are read from it (`server.remote.RemoteStore`,
  which has no snapshots: states come from replaying the log);
- otherwise the workbench hosts an *embedded worker*: a thread that claims
  runnable runs from the store, with the HTTP callback server and the HTTP
  request connector of `flowmetal run` (`server.local.InProcess`), callbacks on
  the store's public URL as everywhere (a run waiting for one when the editor
  closes gets it from a `serve` of the store; only when another program holds
  that port does the worker listen on a port of its own, and log why). It starts
  with the first run started here, or, in a trusted store, at once when the
  store holds unfinished runs (a run that slept while the editor was closed
  wakes when it opens again).

Trust. A store can come with the files the editor opens (a cloned repository
may hold `.flowmetal/store.db` with runs waiting in it), and driving a run
means doing what its program says: sending its HTTP requests, among others.
So the workbench is *untrusted* unless told otherwise (`trusted`): its
embedded worker then claims only the runs started through this workbench
and the child runs they start, theirs too (`store.claim(..., run_id=...)` for
each), fires only their timers, and its request connector performs only their
steps; the other runs are read and
shown, never advanced (`blocked` says why). Trusted, it drives every runnable
run of the store, as `flowmetal worker` does. The set of runs started here
lives in this process only: nothing in the store, which may have been written
by anyone, can widen it.

Watching (`changes`): the store is shared with other processes, which tell
this one nothing, so it is polled. The store's change token (`PRAGMA
data_version` on SQLite, the current snapshot on PostgreSQL) says in one cheap
call whether anyone committed since the last look (a serve is asked every
time); only then is the store's change feed read from the cursor of the last
look (`Store.changes`: the runs changed since, whatever the machines' clocks
and the order their transactions committed in), each run compared with what
was seen, and its new events read. On PostgreSQL the feed holds back what
committed after a transaction still in flight; that transaction's end moves
the token, so the next look reads it.
A run is reported once for each change of its status or log, and a waiting run
again when the endpoints it waits on that no live process serves change (a
connector for them started or stopped: `unserved`, from the store's presence
table; with a serve, none are known).

Threads: a `SQLiteStore` is one connection, so every method here must be
called from one thread (the language server runs them on a single worker
thread); the embedded worker has its own connections.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from flowmetal.runtime import inspect
from flowmetal.runtime.program import Program, ProgramError, ProgramNameError, load
from flowmetal.runtime.store import Run, SQLiteStore, StoreError, is_postgres, open_store
from flowmetal.runtime.wakeups import Wakeup

FINAL = ("completed", "failed", "cancelled")
LOOK_EVERY = 0.2       # seconds between looks at the store for changes


class WorkbenchError(Exception):
    """A request that cannot be carried out: a message naming the problem, nothing changed."""

    def __init__(self, message: str, diagnostics: list | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


@dataclass
class Changes:
    runs: list[Run] = field(default_factory=list)                          # runs whose status or log changed
    events: list[tuple[Run, inspect.TraceEvent]] = field(default_factory=list)   # new events, in order


BLOCKED = ("the store is not trusted: the editor drives only the runs started from it, so this one waits "
           "(trust the store to have the editor run it, or run `flowmetal worker` on it)")


class Workbench:
    def __init__(self, store: str | None = None, serve_url: str | None = None, token: str | None = None,
                 root: str | None = None, trusted: bool = False) -> None:
        location = store or os.environ.get("FLOWMETAL_STORE") or os.path.join(".flowmetal", "store.db")
        if root and not os.path.isabs(location) and "://" not in location:
            location = os.path.join(root, location)
        self.location = location
        # Where files of the editor's own go (read-only copies of stored sources): beside an SQLite
        # store, in the workspace's `.flowmetal` for a PostgreSQL one.
        self.local_folder = (os.path.join(root or ".", ".flowmetal") if is_postgres(location)
                             else os.path.dirname(location) or ".")
        self.serve_url = serve_url.rstrip("/") if serve_url else None
        self.token = token
        self._store: SQLiteStore | None = None
        self._programs: dict[str, Program] = {}
        self._entries: dict[str, str] = {}
        self._seen: dict[str, tuple[str, int]] = {}   # run id -> (status, next_seq) last reported
        self._cursor = 0                               # the store's change feed, read up to here
        self._version: tuple[int, int] | None = None
        self._stocked = False
        self._logs: dict[str, tuple[int, list]] = {}  # run id -> (its next seq, its events)
        self._replays = inspect.Replays()              # stepping forward through a run goes on from here
        self._requests: dict[str, dict] = {}          # run id -> step -> span of its request (watching)
        self.worker: EmbeddedWorker | None = None
        self.trusted = bool(trusted)
        self._started: set[str] = set()               # the runs started here (the embedded worker's, untrusted)
        self._started_lock = threading.Lock()
        self._unserved: dict[str, list[str]] = {}     # run id -> its unserved endpoints last seen (watching)

    # -- trust --

    def set_trusted(self, trusted: bool) -> None:
        """Trust the store (its worker drives every run from now on) or stop trusting it (only the
        runs started here, from the next one it claims)."""
        self.trusted = bool(trusted)
        if self.trusted:
            self.resume_unfinished()

    def drivable(self) -> frozenset[str] | None:
        """The runs the embedded worker may advance: None for all of them (trusted), else those
        started here. Called from the worker's threads."""
        if self.trusted:
            return None
        with self._started_lock:
            return frozenset(self._started)

    def blocked(self, run: Run) -> str | None:
        """Why the editor does not drive `run`, when it waits for that: an untrusted store's run
        that was not started here."""
        if self.serve_url is not None or self.trusted or run.status in FINAL:
            return None
        with self._started_lock:
            started = frozenset(self._started)
        for _ in range(1000):  # a child run of one started here (`flowmetal.run`) is driven too
            if run.id in started:
                return None
            if run.parent is None:
                break
            run = self.store.get_run(run.parent)
            if run is None:
                break
        return BLOCKED

    def unserved(self, run: Run) -> list[str]:
        """The endpoints a waiting run waits on that no live process serves: a run that will
        wait until a connector for them runs (`store.unserved`). Unknown with a serve: []."""
        if run.status != "waiting" or self.serve_url is not None:
            return []
        return self.store.unserved(run.id)

    # -- the store --

    @property
    def store(self):
        """The store: the SQLite file, or the configured serve read through its API."""
        if self._store is None:
            if self.serve_url:
                from flowmetal.server.remote import RemoteStore
                self._store = RemoteStore(self.serve_url, self.token)
                return self._store
            try:
                self._store = open_store(self.location)
            except (StoreError, OSError, ValueError) as error:
                raise WorkbenchError(f"cannot open the store {self.location}: {error}") from None
        return self._store

    def exists(self) -> bool:
        return (self.serve_url is not None or self._store is not None or is_postgres(self.location)
                or Path(self.location).is_file())

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- programs --

    def program(self, run: Run) -> Program:
        program = self._programs.get(run.code_hash)
        if program is None:
            try:
                program = load(self.store.get_sources(run.program))
            except ProgramError as error:  # stored by another version of the checker
                raise WorkbenchError(f"run `{run.id}`: its stored program does not check here: {error}") from None
            self._programs[run.code_hash] = program
        return program

    def sources(self, run: Run) -> dict[str, str]:
        return self.store.get_sources(run.program)

    def origin(self, run: Run) -> str | None:
        """The directory the run's files were read from, when it was recorded (an absolute path;
        anything else in the store is no directory)."""
        first = self.store.events(run.id, 0, until=1)
        origin = first[0].data.get("origin") if first else None
        if not isinstance(origin, str) or not os.path.isabs(origin) or "\0" in origin:
            return None
        return origin

    def entry(self, run: Run) -> str:
        """The run's entry as `package/name` (a run may have been started with `name` alone)."""
        from flowmetal.runtime.driving import qualified_entry
        return qualified_entry(run.entry, self.store, run, self._entries)

    # -- actions --

    def start(self, sources: dict[str, str], entry: str, args: list[str], origin: str | None = None) -> str:
        """Check and record a run; the embedded worker (or the configured serve) drives it."""
        from flowmetal.runtime.driving import prepare, record_run
        from flowmetal.runtime.literals import LiteralError
        try:
            code, program, _ = prepare(sources, entry, args)
        except ProgramNameError as error:
            raise WorkbenchError(f"{error}: nothing was run") from None
        except ProgramError as error:
            raise WorkbenchError(f"the program has errors: nothing was run ({error})", error.diagnostics) from None
        except (LiteralError, KeyError, ValueError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            raise WorkbenchError(str(message)) from None
        if self.serve_url:
            return self._serve_start(sources, entry, args)
        run_id = record_run(self.store, program.stored, entry, args, code, origin=origin)
        with self._started_lock:
            self._started.add(run_id)
        self.ensure_worker()
        return run_id

    def cancel(self, run_id: str) -> str:
        run = self.find(run_id)
        if run.status in FINAL:  # nothing to cancel: say how it ended, as the command line does
            return run.status
        if self.serve_url:
            answer = self._serve("POST", f"/api/runs/{run.id}/cancel")
            return str(answer.get("status") or answer.get("outcome") or "cancelling")
        return self.store.request_cancel(run.id)

    def replay(self, run_id: str, verify: bool = True):
        from flowmetal.runtime.replay import replay
        run = self.find(run_id)
        return replay(self.store, run.id, verify=verify)

    def ensure_worker(self) -> None:
        if self.serve_url is None and (self.worker is None or not self.worker.alive()):
            self.worker = EmbeddedWorker(self.location, runs=self.drivable)
            self.worker.start()

    def resume_unfinished(self) -> bool:
        """In a trusted store, start the embedded worker if the store holds runs that are not
        finished (untrusted, it starts with the first run started here)."""
        if self.serve_url is not None or not self.trusted or not self.exists():
            return False
        unfinished = self.store.has_unfinished_runs()
        if unfinished:
            self.ensure_worker()
        return unfinished

    # -- reading --

    def find(self, run_id: str) -> Run:
        if not isinstance(run_id, str) or not run_id:
            raise WorkbenchError("`runId` must be a run's id")
        try:
            return self.store.find_run(run_id)
        except StoreError as error:
            raise WorkbenchError(str(error)) from None

    def runs(self, entry: str | None = None, statuses: list[str] | None = None, last: int | None = None) -> list[Run]:
        """The runs, oldest first, narrowed as `flowmetal runs` narrows them (`select_runs`)."""
        if not self.exists():
            return []
        from flowmetal.runtime.driving import select_runs
        return select_runs(self.store, statuses=statuses, entry=entry or None, last=last, cache=self._entries)

    def entry_counts(self) -> dict[str, int]:
        """How many runs each entry (`package/name`) has: counted by the store where it can
        (one grouped query), else from every run (a serve's API lists them)."""
        if not self.exists():
            return {}
        counted = getattr(self.store, "count_runs", None)
        if counted is None:
            groups = [(run.entry, run, 1) for run in self.store.list_runs()]
        else:
            from flowmetal.runtime.program import stored_code_hash
            groups = [(entry, SimpleNamespace(program=program, code_hash=stored_code_hash(program)), n)
                      for entry, program, n in counted()]
        from flowmetal.runtime.driving import qualified_entry
        out: dict[str, int] = {}
        for entry, run, n in groups:
            name = qualified_entry(entry, self.store, run, self._entries)
            out[name] = out.get(name, 0) + n
        return out

    def trace(self, run_id: str) -> tuple[Run, Program, list[inspect.TraceEvent]]:
        run = self.find(run_id)
        program = self.program(run)
        return run, program, inspect.trace(program, run, self.store.events(run.id))

    def state_at(self, run_id: str, seq: int) -> tuple[Run, Program, inspect.State]:
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise WorkbenchError(f"`seq` must be an event number (1 or more), not {json.dumps(seq)}")
        run = self.find(run_id)
        program = self.program(run)
        try:
            parts = getattr(self.store, "snapshot_parts", None)
            state = inspect.state_at(program, run, self._log(run), seq, self.store.snapshot(run.id), self._replays,
                                     (lambda keys: parts(run.id, keys)) if parts else None)
        except inspect.InspectError as error:
            raise WorkbenchError(str(error)) from None
        return run, program, state

    def _log(self, run: Run) -> list:
        """The run's events, read again only when it has logged more (stepping through a
        run asks for the same log again and again)."""
        kept = self._logs.get(run.id)
        if kept is None or kept[0] != run.next_seq:
            kept = self._logs[run.id] = (run.next_seq, self.store.events(run.id))
            while len(self._logs) > 4:
                self._logs.pop(next(iter(self._logs)))
        return kept[1]

    # -- watching --

    def changes(self) -> Changes:
        """What changed in the store since the last call (nothing on the first: it takes stock)."""
        out = Changes()
        if not self.exists():
            self._stocked = True  # no store yet: every run that will appear is new
            return out
        store = self.store
        # A token that moves with every commit, this connection's own too (SQLite's data_version and
        # total_changes; PostgreSQL's current snapshot).
        version = store.change_token()
        if version is not None and version == self._version:
            return out
        changed, cursor = store.changes(self._cursor)  # (may fail: then nothing is taken as seen)
        first, self._stocked = not self._stocked, True
        self._version, self._cursor = version, cursor
        for listed in changed:
            run_id = listed.id
            seen = self._seen.get(run_id)
            now = (listed.status, listed.next_seq)
            if seen == now:
                continue
            self._seen[run_id] = now
            if first:
                continue
            # The run may have moved on since the row was read: report it as it is now, with
            # the events up to that point exactly (the next look starts from there: each
            # event is reported once).
            run = store.get_run(run_id)
            self._seen[run_id] = (run.status, run.next_seq)
            out.runs.append(run)
            after = seen[1] - 1 if seen else 0
            events = store.events(run.id, after, until=run.next_seq - 1)
            if not events:
                continue
            try:
                program = self.program(run)
            except (WorkbenchError, StoreError):
                continue
            # Events of a step take the span of its request, which may be in an earlier piece.
            requests = self._requests.get(run.id)
            if requests is None:
                requests = self._requests[run.id] = {}
                if after:
                    earlier = store.events(run.id, 0, until=after, kind="step-requested")
                    inspect.trace(program, run, earlier, requests)
            out.events += [(run, traced) for traced in inspect.trace(program, run, events, requests)]
            if run.status in FINAL:
                self._requests.pop(run.id, None)
        if self.serve_url is None:
            self._unserved_changes(store, out, first)
        return out

    def _unserved_changes(self, store, out: Changes, first: bool) -> None:
        """Add to `out` the waiting runs whose unserved endpoints changed since the last look
        (a connector started or stopped: a commit to the presence table, which `changes` saw)."""
        now = {run_id: sorted({e for _, e in steps}) for run_id, steps in store.unserved_steps().items()}
        before, self._unserved = self._unserved, now
        if first:
            return
        reported = {run.id for run in out.runs}
        for run_id in sorted(set(before) | set(now)):
            if before.get(run_id) != now.get(run_id) and run_id not in reported:
                run = store.get_run(run_id)
                if run is not None:
                    out.runs.append(run)

    # -- a configured serve --

    def _serve(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(method, self.serve_url + path, json=body, headers=headers, timeout=30.0)
        except httpx.HTTPError as error:
            raise WorkbenchError(f"cannot reach flowmetal serve at {self.serve_url}: {error}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 400:
            raise WorkbenchError(f"flowmetal serve at {self.serve_url} refused: "
                                 f"{answer.get('error') if isinstance(answer, dict) else response.text}")
        return answer if isinstance(answer, dict) else {}

    def _serve_start(self, sources: dict[str, str], entry: str, args: list[str]) -> str:
        answer = self._serve("POST", "/api/runs", {"sources": sources, "entry": entry, "args": list(args)})
        run_id = answer.get("id")
        if not isinstance(run_id, str):
            raise WorkbenchError(f"flowmetal serve at {self.serve_url} answered without a run id")
        return run_id


class EmbeddedWorker:
    """A worker thread with the callback server and request connector of `flowmetal run`.

    `runs()`, asked before each round, names the runs it may advance and whose steps its
    connector may perform: None for any run of the store, else only those and the child runs
    they started (`flowmetal.run`), theirs too.
    """

    def __init__(self, location: str, poll: float = 0.1, runs=None) -> None:
        self.location = location
        self.poll = poll
        self.runs = runs or (lambda: None)
        self._ended: set[str] = set()   # runs of `runs()` known to have ended: not claimed again
        self._family: frozenset[str] | None = None  # `runs()` and their children, as of the last round
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.public_url: str | None = None
        self.error: str | None = None
        self.port_note: str | None = None  # why callbacks are not on the store's public URL, if not

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="flowmetal-embedded-worker", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _main(self) -> None:
        import traceback

        from flowmetal.runtime.executor import Executor
        from flowmetal.server.local import InProcess, PortHeld
        try:
            store = open_store(self.location)
            # Callbacks on the store's public URL (SPEC section 6), so that a run waiting for one
            # still gets it after the editor is closed, from a `serve` of the store. Only when
            # another program holds that port, on a port of this process's own, and says so.
            connectors = InProcess(store.path, runs=lambda: self._family)
            try:
                connectors.__enter__()
            except PortHeld as held:
                import logging
                logging.getLogger(__name__).warning("%s; callbacks of runs started here go to a port of this "
                                                    "editor's own until it closes", held)
                self.port_note = str(held)
                connectors = InProcess(store.path, 0, runs=lambda: self._family)
                connectors.__enter__()
            wakeup = Wakeup(store, runs=True)  # another process's change wakes it (PostgreSQL)
            try:
                self.public_url = connectors.public_url
                executor = Executor(store, public_url=connectors.public_url, stop=self._stop)
                while not self._stop.is_set():
                    try:
                        wakeup.clear()
                        progress = self._round(executor, store)
                    except Exception:  # a bug or a store error: say so, and go on with the next run
                        self.error = traceback.format_exc()
                        self._stop.wait(1.0)
                        continue
                    if progress is None:
                        wakeup.sleep(self._delay(store, wakeup), self._stop)
            finally:
                wakeup.close()
                connectors.__exit__(None, None, None)
            store.close()
        except Exception:
            self.error = traceback.format_exc()

    def _delay(self, store, wakeup) -> float:
        """How long to sleep idle: `poll`; while notifications come, until the next due time
        (a timer, a lease another process may take over) or `LISTENING_POLL` at the most."""
        if not wakeup.listening:
            return self.poll
        delay = wakeup.interval(self.poll)
        due = store.next_wake(leases=True)
        return delay if due is None else max(0.0, min(delay, due - store.clock()))

    def _round(self, executor, store):
        """Advance a runnable run: any one (`runs()` is None), else each of those named that is."""
        allowed = self.runs()
        if allowed is not None:
            allowed = frozenset(allowed) | {c.id for r in allowed - self._ended for c in store.descendants(r)}
        self._family = allowed
        if allowed is None:
            return executor.run_once()
        progress = None
        for run_id in sorted(allowed - self._ended):
            advanced = executor.run_once(run_id)
            if advanced is not None:
                progress = advanced
                continue
            run = store.get_run(run_id)
            if run is None or run.status in FINAL:
                self._ended.add(run_id)
        return progress
