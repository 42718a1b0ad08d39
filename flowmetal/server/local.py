"""What `flowmetal run` drives besides the run itself (SPEC section 6).

The HTTP callback server on `--port` (any free port by default) and the HTTP
request connector, in threads of this process for the length of one run, so
that a program that calls out and waits for its callback runs to its end with
one command. The same application and connector as `flowmetal serve`.

It listens on 127.0.0.1 only; callback URLs are built on
`FLOWMETAL_PUBLIC_URL` when set (checked as `serve` checks `--public-url`:
never `0.0.0.0`), else on `http://127.0.0.1:PORT`.

`flowmetal run` starts it only for a program that can use it (`needed_by`):
one that requires `http.callback` or `http.request`. Any other program's run
never waits on either, and starting them (aiohttp, httpx, a socket, two
threads) would be most of the time a short run takes.

The language server's embedded worker uses it too, and may narrow what the
connector does to the steps of some runs (`runs`): an untrusted store's other
runs are never advanced by the editor (flowmetal.ide.workbench).
"""

from __future__ import annotations

import time

# The standard packages whose endpoints these serve: callbacks (`make-callback!`, `get-callback!`)
# and HTTP requests (`get!`, `post!`, ...).
SERVED = frozenset({"http.callback", "http.request"})


def needed_by(program) -> bool:
    """Whether a checked program (`flowmetal.runtime.program.Program`) can use the callback
    server or the request connector: whether any of its own packages requires one they serve.
    The standard packages' requires do not count: none of them calls those endpoints itself
    (`flowmetal.retry` requires `http.request` for its `error?` predicate only)."""
    return any(require.package in SERVED for scope in program.scopes.values() if not scope.standard
               for require in scope.package.requires)


class InProcess:
    """The callback server and the HTTP request connector, for the length of a `run`."""

    def __init__(self, location: str, port: int = 0, runs=None) -> None:
        import threading
        self.location = location
        self.port = port
        self.runs = runs  # () -> the runs whose steps the connector may perform (None: any), or None
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.bound: int | None = None
        self.error: BaseException | None = None
        self.threads: list = []
        self.given_url: str | None = None

    def __enter__(self) -> "InProcess":
        import os
        import threading

        from flowmetal.server.addresses import AddressError, check_public_url
        self.given_url = os.environ.get("FLOWMETAL_PUBLIC_URL") or None
        if self.given_url:
            try:
                self.given_url = check_public_url(self.given_url)
            except AddressError as error:
                raise OSError(f"FLOWMETAL_PUBLIC_URL: {error}") from None
        server = threading.Thread(target=self._server, name="flowmetal-callbacks", daemon=True)
        server.start()
        self.threads.append(server)
        self.ready.wait(30)
        if self.error is not None:
            raise OSError(f"cannot listen for callbacks on port {self.port}: {self.error}")
        try:
            from flowmetal.connectors.http_request import serve_requests
        except ImportError:  # pragma: no cover - the connector ships with the package
            serve_requests = None
        if serve_requests is not None:
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

    @property
    def public_url(self) -> str:
        return self.given_url or f"http://127.0.0.1:{self.bound}"

    def _server(self) -> None:
        import asyncio

        async def main() -> None:
            from aiohttp import web

            from flowmetal.server.app import make_app, make_runner
            app = make_app(self.location, host="127.0.0.1", public_url=self.given_url)
            runner = make_runner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            try:
                await site.start()
            except OSError as error:
                self.error = error
                self.ready.set()
                return
            self.bound = site._server.sockets[0].getsockname()[1]
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
    (asked at each claim; None: every run's)."""

    def __init__(self, store, runs) -> None:
        self._store = store
        self._runs = runs

    def claim_steps(self, endpoints, worker, lease, limit=10, **options):
        return self._store.claim_steps(endpoints, worker, lease, limit, runs=self._runs(), **options)

    def __getattr__(self, name):
        return getattr(self._store, name)
