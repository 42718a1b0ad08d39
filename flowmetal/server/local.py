"""What `flowmetal run` drives besides the run itself (SPEC section 6).

The HTTP callback server and the HTTP request connector, in threads of this
process for the length of one run, so that a program that calls out and waits
for its callback runs to its end with one command. The same application and
connector as `flowmetal serve`.

Callback URLs are built on the store's public URL (`SQLiteStore.public_url`:
`http://127.0.0.1:8700` unless `flowmetal serve` or `FLOWMETAL_PUBLIC_URL` set
it), never on a port this process happened to get, so a callback reaches
whichever callback server serves the store when it arrives: this one while the
run goes on here, a `flowmetal serve` started later after a Ctrl-C. So the
callback server listens where the public URL points (`InProcess()`):

- a loopback URL whose port is free: it listens there;
- a loopback URL whose port a Flowmetal server of the same store holds (a
  `flowmetal serve`, another `flowmetal run`: `flowmetal.server.ports` tells by
  the store id it answers with): callbacks reach the store through it, and this
  process listens nowhere; should that server go, this one takes the port
  (it tries every `RETAKE_EVERY` seconds);
- a loopback URL whose port anything else holds: `PortHeld`, raised before the
  run is recorded (callbacks would be lost to that program);
- a URL of another machine: whatever serves it takes the callbacks; this
  process listens nowhere.

`flowmetal run` starts it only for a program that can use it (`needed_by`):
one that requires `http.callback` or `http.request`; the callback server only
for one that requires `http.callback` (`takes_callbacks`). Any other program's run
never waits on either, and starting them (aiohttp, httpx, a socket, two
threads) would be most of the time a short run takes.

The language server's embedded worker uses it too (`InProcess(location, 0)`:
any free port, callback URLs on it or on `FLOWMETAL_PUBLIC_URL`), and may
narrow what the connector does to the steps of some runs (`runs`): an
untrusted store's other runs are never advanced by the editor
(flowmetal.ide.workbench).
"""

from __future__ import annotations

import time

# The standard packages whose endpoints these serve: callbacks (`make-callback!`, `get-callback!`)
# and HTTP requests (`get!`, `post!`, ...).
SERVED = frozenset({"http.callback", "http.request"})


def takes_callbacks(program) -> bool:
    """Whether a checked program can make callbacks: whether any of its packages requires
    `http.callback` (one that only makes requests needs no callback server)."""
    return any(require.package == "http.callback" for scope in program.scopes.values()
               for require in scope.package.requires)


def needed_by(program) -> bool:
    """Whether a checked program (`flowmetal.runtime.program.Program`) can use the callback
    server or the request connector: whether any of its own packages requires one they serve.
    The standard packages' requires do not count: none of them calls those endpoints itself
    (`flowmetal.retry` requires `http.request` for its `error?` predicate only)."""
    return any(require.package in SERVED for scope in program.scopes.values() if not scope.standard
               for require in scope.package.requires)


RETAKE_EVERY = 1.0  # seconds between tries to take the public URL's port from a server that left it


class PortHeld(OSError):
    """The public URL's port is held by a program that is no Flowmetal server of this store."""


class InProcess:
    """The callback server and the HTTP request connector, for the length of a `run`.

    `port` None: on the store's public URL, or `public_url` (module docstring); `serving` then says where
    callbacks are taken: "here", "shared" (a server of the same store holds the port) or
    "elsewhere" (the public URL names another machine), or "none" (`callbacks` False: no callback
    server, the request connector alone). An int: on that port of 127.0.0.1
    (0: any free one), callback URLs on it unless `FLOWMETAL_PUBLIC_URL` is set."""

    def __init__(self, location: str, port: int | None = None, runs=None, public_url: str | None = None,
                 callbacks: bool = True) -> None:
        import threading
        self.location = location
        self.callbacks = callbacks  # False: the request connector alone (a program that makes no callbacks)
        self.wanted_url = public_url  # instead of the store's (a `FLOWMETAL_PUBLIC_URL` about to be stored)
        self.endpoints: frozenset[str] = frozenset()  # those the request connector here performs
        self.port = port
        self.runs = runs  # () -> the runs whose steps the connector may perform (None: any), or None
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.bound: int | None = None
        self.error: BaseException | None = None
        self.threads: list = []
        self.given_url: str | None = None
        self.host = "127.0.0.1"
        self.serving = "here"
        self.store_id: str | None = None

    def __enter__(self) -> "InProcess":
        import os
        import threading

        from flowmetal.server.addresses import AddressError, check_public_url
        if not self.callbacks:
            self.serving = "none"
        elif self.port is None:
            self._on_public_url()
        else:
            self.given_url = os.environ.get("FLOWMETAL_PUBLIC_URL") or None
            if self.given_url:
                try:
                    self.given_url = check_public_url(self.given_url)
                except AddressError as error:
                    raise OSError(f"FLOWMETAL_PUBLIC_URL: {error}") from None
        if self.serving not in ("elsewhere", "none"):
            server = threading.Thread(target=self._server, name="flowmetal-callbacks", daemon=True)
            server.start()
            self.threads.append(server)
            self.ready.wait(30)
            if self.error is not None:
                self.__exit__()
                if isinstance(self.error, PortHeld):
                    raise self.error
                raise OSError(f"cannot listen for callbacks on port {self.port}: {self.error}")
        try:
            from flowmetal.connectors.http_request import ENDPOINTS, serve_requests
        except ImportError:  # pragma: no cover - the connector ships with the package
            serve_requests = None
        if serve_requests is not None:
            self.endpoints = frozenset(ENDPOINTS)
            from flowmetal.runtime.store import open_store

            def connector() -> None:
                store = open_store(self.location)
                if self.runs is not None:
                    store = StepsOf(store, self.runs)
                serve_requests(store, worker=f"run:{time.time():.0f}:http", stop=self.stop)
            thread = threading.Thread(target=connector, name="flowmetal-requests", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _on_public_url(self) -> None:
        """Where the store's public URL says to listen, and whether this process can."""
        from urllib.parse import urlsplit

        from flowmetal.runtime.store import open_store
        from flowmetal.server.addresses import DEFAULT_PORTS, is_loopback
        store = open_store(self.location)
        try:
            self.given_url = (self.wanted_url or store.public_url()).rstrip("/")
            self.store_id = store.store_id()
        finally:
            store.close()
        parts = urlsplit(self.given_url)
        if not is_loopback(parts.hostname):
            self.serving = "elsewhere"
            return
        self.host = parts.hostname
        self.port = parts.port if parts.port is not None else DEFAULT_PORTS[parts.scheme]

    @property
    def public_url(self) -> str:
        return self.given_url or f"http://127.0.0.1:{self.bound}"

    def _server(self) -> None:
        import asyncio
        import errno

        async def main() -> None:
            from aiohttp import web

            from flowmetal.server.app import make_app, make_runner
            from flowmetal.server.ports import holder, identify
            app = make_app(self.location, host=self.host, public_url=self.given_url)
            identify(app, self.store_id)
            runner = make_runner(app, access_log=None)
            await runner.setup()
            site = None
            while site is None and not self.stop.is_set():
                site = web.TCPSite(runner, self.host, self.port)
                try:
                    await site.start()
                except OSError as error:
                    await site.stop()  # unregistered from the runner
                    site = None
                    if self.ready.is_set():  # still held by the other server: try again later
                        await asyncio.sleep(RETAKE_EVERY)
                        continue
                    if error.errno != errno.EADDRINUSE or self.store_id is None:
                        self.error = error
                    else:
                        held = await asyncio.get_running_loop().run_in_executor(None, holder, self.host, self.port)
                        if held == self.store_id:
                            self.serving = "shared"
                        else:
                            self.error = PortHeld(
                                f"the store's public URL is {self.given_url}, but another program holds port "
                                f"{self.port} (no Flowmetal server of this store): callbacks sent there would "
                                f"not reach this run. Stop that program, or set the public URL to a free port "
                                f"(`FLOWMETAL_PUBLIC_URL=http://127.0.0.1:PORT`, or `flowmetal serve "
                                f"--public-url`); nothing was run")
                    self.ready.set()
                    if self.error is not None:
                        await runner.cleanup()
                        return
                    continue
            if site is not None:
                self.bound = site._server.sockets[0].getsockname()[1]
                self.serving = "here"
                self.ready.set()
                while not self.stop.is_set():
                    await asyncio.sleep(0.05)
            await runner.cleanup()
        asyncio.run(main())

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


class StepsOf:
    """The store as a connector sees it, narrowed to the steps of the runs `runs()` names
    (asked at each claim; None: every run's). Such a connector serves its endpoints for a few
    runs only, so it records no presence (`announce` is None): the other runs' steps are
    still unserved."""

    announce = None

    def __init__(self, store, runs) -> None:
        self._store = store
        self._runs = runs

    def claim_steps(self, endpoints, worker, lease, limit=10, **options):
        return self._store.claim_steps(endpoints, worker, lease, limit, runs=self._runs(), **options)

    def __getattr__(self, name):
        return getattr(self._store, name)
