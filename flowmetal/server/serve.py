"""`flowmetal serve`: the HTTP API, callbacks, executor and connectors in one process.

What runs, and why this way:

- The aiohttp application of `flowmetal.server.app` on `host:port`. Port 0
  takes any free port; the address actually bound is printed, as
  `flowmetal serve: listening on http://HOST:PORT`, once the socket is
  listening (tests and scripts wait for that line).
- Executor threads (`Executors`: 4, or `FLOWMETAL_EXECUTORS`), each running
  `Executor(store, stop=...).run_once()` in a loop on its own
  store connection. When no run is runnable one sleeps until the store's
  `next_wake()` (the next timer) or `IDLE_POLL` seconds, whichever comes
  first, and the API wakes them at once when it changes something that may
  make a run runnable (a new run, a step's result, a callback). Other processes
  may share the store: on PostgreSQL their changes wake the executors too (a
  notification, `flowmetal.runtime.wakeups`), and the executors then poll only
  as a fallback (`LISTENING_POLL`); on SQLite they poll at `IDLE_POLL`. Threads, not asyncio
  tasks: running a run is CPU work and SQLite calls block. A run that computes
  for long makes way for waiting runs after its time slice (see
  `flowmetal.runtime.executor`), so a few runaway runs cannot starve the rest.
- The HTTP request connector (`flowmetal.connectors.http_request`), when
  that module is installed, with its own store connection.
- SIGINT and SIGTERM stop it cleanly: no new requests, open event streams
  and long polls end, each executor commits a checkpoint of the run it holds
  and releases it (runnable again by any worker; never left mid-commit), and
  the connector stops; exit status 0. A `kill -9` loses
  nothing either: every wait is committed before it is waited on, and a run
  held when the process died is taken over once its lease expires.

Callback URLs are `{public_url}/callback/{token}`; `public_url` is
`--public-url`, else `FLOWMETAL_PUBLIC_URL`, else `http://HOST:PORT`. Once
listening, the server writes it into the store as the deployment's public URL
(`SQLiteStore.set_public_url`), which every process (a `flowmetal run`, another
serve's executors) builds callback URLs on, so a callback reaches whichever
server serves the store when it arrives; a change of it is said on stderr, as
callback URLs given out before still name the old one. Every answer carries
`Flowmetal-Store: <store id>` (`flowmetal.server.ports`), so that `flowmetal run`
can tell a server of its own store on the public URL's port from another
program. A port already in use is a clear error (exit 2), naming what holds it
when that is a Flowmetal server.

Safe by default (`check_listen`, before anything listens): an address other
than loopback needs `FLOWMETAL_TOKEN`, or else `--insecure-no-token`, which
is said loudly on stderr; a wildcard address (`0.0.0.0`, `::`) needs a
public URL, since callback URLs must name an address callers can reach, and
`http://0.0.0.0:PORT` is none. Guessing one (127.0.0.1, or the machine's
name) would give URLs that work from some callers and silently not from
others, so the server refuses and says which option to give.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import sys
import threading
import time
import traceback

from aiohttp import web

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import open_store
from flowmetal.runtime.wakeups import Wakeup
from flowmetal.server.addresses import AddressError, check_public_url, is_wildcard, needs_token, url_of
from flowmetal.server.app import begin_shutdown, make_app, make_runner
from flowmetal.server.ports import holder, identify

IDLE_POLL = 0.25     # seconds: the longest the executor sleeps without looking at the store
ERROR_PAUSE = 1.0    # seconds: the pause after an unexpected error in the executor's loop


EXECUTORS = 4        # executor threads, unless FLOWMETAL_EXECUTORS says otherwise
MAX_EXECUTORS = 64


class Executors:
    """Executor threads, each with its own store connection, running runnable runs until
    `stop` is set (then each releases the run it holds: see `Executor`); `wake` cuts their
    sleeps short. How many: `count`, else `FLOWMETAL_EXECUTORS`, else `EXECUTORS`."""

    def __init__(self, location: str, public_url: str | None, stop: threading.Event, wake: threading.Event,
                 count: int | None = None) -> None:
        self.location = location
        self.public_url = public_url
        self.stop = stop
        self.wake = wake
        self.count = count or self._configured()
        self.threads = [threading.Thread(target=self._loop, name=f"flowmetal-executor-{i + 1}", daemon=True)
                        for i in range(self.count)]

    @staticmethod
    def _configured() -> int:
        text = os.environ.get("FLOWMETAL_EXECUTORS", "").strip()
        if not text:
            return EXECUTORS
        if text.isdigit() and 1 <= int(text) <= MAX_EXECUTORS:
            return int(text)
        print(f"flowmetal serve: FLOWMETAL_EXECUTORS must be a whole number from 1 to {MAX_EXECUTORS}, "
              f"not {text!r}; running {EXECUTORS} executors", file=sys.stderr, flush=True)
        return EXECUTORS

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        store = open_store(self.location)
        executor = Executor(store, public_url=self.public_url, stop=self.stop)
        wakeup = Wakeup(store, runs=True, event=self.wake)
        try:
            while not self.stop.is_set():
                self.wake.clear()
                try:
                    progress = executor.run_once()
                except Exception:  # a fault of the executor's own: report it and carry on
                    traceback.print_exc(file=sys.stderr)
                    self.stop.wait(ERROR_PAUSE)
                    continue
                if progress is not None:
                    continue
                listening = wakeup.listening
                delay = wakeup.interval(IDLE_POLL)
                try:
                    wake_at = store.next_wake(leases=listening)
                    now = store.clock() if wake_at is not None else 0.0  # due times are on the store's clock
                except Exception:
                    wake_at = None
                if wake_at is not None:
                    delay = max(0.0, min(delay, wake_at - now))
                if delay > 0:
                    self.wake.wait(delay)
        finally:
            wakeup.close()
            store.close()


def _request_connector():
    """`serve_requests` of the HTTP request connector, or None when it is not installed."""
    try:
        from flowmetal.connectors.http_request import serve_requests
    except ModuleNotFoundError as error:
        if error.name and (error.name == "flowmetal.connectors" or error.name.startswith("flowmetal.connectors.")):
            return None
        raise
    return serve_requests


class _Connector:
    """The HTTP request connector, run in this process (a thread, or a task when its
    `serve_requests` is a coroutine function)."""

    def __init__(self, location: str, worker: str) -> None:
        self.location = location
        self.worker = worker
        self.thread: threading.Thread | None = None
        self.task: asyncio.Task | None = None
        self.stop_thread = threading.Event()
        self.stop_task: asyncio.Event | None = None
        self.store = None

    def start(self, serve_requests) -> None:
        if inspect.iscoroutinefunction(serve_requests):
            self.store = open_store(self.location)
            self.stop_task = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(
                serve_requests(self.store, worker=self.worker, stop=self.stop_task))
            return

        def run() -> None:
            store = open_store(self.location)
            try:
                serve_requests(store, worker=self.worker, stop=self.stop_thread)
            except Exception:
                traceback.print_exc(file=sys.stderr)
            finally:
                store.close()
        self.thread = threading.Thread(target=run, name="flowmetal-http-requests", daemon=True)
        self.thread.start()

    async def stop(self) -> None:
        self.stop_thread.set()
        if self.task is not None:
            self.stop_task.set()
            try:
                await asyncio.wait_for(self.task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()
            except Exception:
                traceback.print_exc(file=sys.stderr)
            self.store.close()
        if self.thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.thread.join, 10)


class ServeError(Exception):
    """The server cannot start as asked: the message names the problem and the fix."""


def check_listen(host: str, public_url: str | None, token: str | None, insecure_no_token: bool = False
                 ) -> str | None:
    """Refuse an unsafe address (ServeError); the public URL, checked, or None."""
    shown = host or "every address"
    if needs_token(host) and not token and not insecure_no_token:
        raise ServeError(f"refusing to listen on {shown} without a token: anyone who can reach that address "
                         f"could start, read and cancel runs. Set FLOWMETAL_TOKEN to a secret (clients then send "
                         f"`Authorization: Bearer <token>`), or listen on 127.0.0.1, or pass --insecure-no-token "
                         f"to accept the risk")
    if public_url:
        try:
            return check_public_url(public_url)
        except AddressError as error:
            raise ServeError(str(error)) from None
    if is_wildcard(host):
        raise ServeError(f"--host {shown} listens on every address, so callback URLs cannot be built on it: give "
                         f"--public-url (or FLOWMETAL_PUBLIC_URL), the URL callers reach this server at, as "
                         f"`--public-url http://flows.example.com:8700`")
    return None


async def _serve(location: str, host: str, port: int, public_url: str | None, token: str | None) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    store = open_store(location)  # create or migrate the store, and refuse a bad one, before listening
    try:
        store_id = store.store_id()
        url = url_of(host or "0.0.0.0", port)
        stop = threading.Event()
        wake = threading.Event()
        app = make_app(location, token=token, on_change=wake.set, host=host, public_url=public_url)
        identify(app, store_id)
        runner = make_runner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, shutdown_timeout=5.0)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ServeError(_cannot_listen(host, port, url, error, store_id)) from None
        bound = port
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            bound = server.sockets[0].getsockname()[1]
        url = url_of(host or "0.0.0.0", bound)
        public = public_url or url
        before = store.set_public_url(public)  # the deployment's: every process builds callback URLs on it
    finally:
        store.close()

    executor = Executors(location, None, stop, wake)  # callback URLs on the store's public URL
    executor.start()
    connector = None
    # The HTTP request connector runs here when installed (flowmetal.connectors.http_request).
    serve_requests = _request_connector()
    if serve_requests is not None:
        connector = _Connector(location, f"serve:{os.getpid()}:http")
        connector.start(serve_requests)
    print(f"flowmetal serve: listening on {url}", flush=True)
    print(f"flowmetal serve: callbacks at {public}/callback/<token>; store {location}; "
          f"HTTP request connector {'on' if connector else 'not installed'}", flush=True)
    if before is not None and before != public:
        print(f"flowmetal serve: the store's public URL was {before}; callback URLs made before now "
              f"still name it", file=sys.stderr, flush=True)

    await stopping.wait()
    print("flowmetal serve: stopping", flush=True)
    stop.set()
    wake.set()
    begin_shutdown(app)
    await runner.cleanup()
    if connector is not None:
        await connector.stop()
    await loop.run_in_executor(None, executor.join, 30)
    return 0


def _cannot_listen(host: str, port: int, url: str, error: OSError, store_id: str | None) -> str:
    """Why the server cannot listen, and what to do."""
    import errno
    if error.errno != errno.EADDRINUSE:
        return f"cannot listen on {url}: {error.strerror or error}"
    probe = "127.0.0.1" if is_wildcard(host) else host
    held = holder(probe, port)
    if held is not None and held == store_id:
        who = "a `flowmetal serve` (or `flowmetal run`) on this same store already listens there"
    elif held is not None:
        who = "a Flowmetal server of another store listens there"
    else:
        who = "another program listens there"
    return f"cannot listen on {url}: the port is in use ({who}); stop it, or give another --port"


def serve(location: str | None, host: str = "127.0.0.1", port: int = 8700, public_url: str | None = None,
          token: str | None = None, insecure_no_token: bool = False) -> int:
    """Run the server until SIGINT or SIGTERM; the exit status. ServeError, before anything
    listens, when the address is unsafe or the public URL unusable (`check_listen`)."""
    location = location or os.environ.get("FLOWMETAL_STORE") or os.path.join(".flowmetal", "store.db")
    public_url = check_listen(host, public_url or os.environ.get("FLOWMETAL_PUBLIC_URL"), token, insecure_no_token)
    if needs_token(host) and not token:
        print(f"flowmetal serve: WARNING: listening on {host or 'every address'} with NO TOKEN "
              f"(--insecure-no-token): anyone who can reach it can start, read and cancel runs; set "
              f"FLOWMETAL_TOKEN to require one", file=sys.stderr, flush=True)
    return asyncio.run(_serve(location, host, port, public_url, token))
