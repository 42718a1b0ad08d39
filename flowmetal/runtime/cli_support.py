"""What the runtime commands of the command line do, kept out of `flowmetal.cli`
so that the command line stays a thin layer of argument parsing.

- `program_files(FILE)`: a run's program is FILE and, from the `*.flow` files
  beside it, those defining the packages it requires (transitively). Their
  sources are stored with the run, so editing the files later changes nothing
  in flight.
- `wait_for`: drive one run in this process until it ends, sleeping until its
  next timer; on a terminal, a live status line (the step, what it waits on,
  for how long).
- `print_events`: a run's log, human or JSON, optionally following it.
- `work`: the worker loop.
- `InProcess`: what `run` drives besides the run itself (SPEC section 6): the
  HTTP callback server on `--port` (any free port by default) and the HTTP
  request connector, in threads of this process, so that a program that
  calls out and waits for its callback runs to its end with one command.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from flowmetal.forms import lower
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import Run, SQLiteStore
from flowmetal.syntax import read

FINAL = ("completed", "failed", "cancelled")


def _packages(text: str, name: str) -> tuple[set[str], set[str]]:
    module = lower(read(text, name))
    defined = {p.name for p in module.packages}
    required = {r.package for p in module.packages for r in p.requires}
    return defined, required


def program_files(file: str) -> dict[str, str]:
    path = Path(file)
    if not path.is_file():
        raise OSError(f"{file}: no such file")
    text = path.read_text(encoding="utf-8")
    sources = {path.name: text}
    defined, wanted = _packages(text, path.name)
    neighbours = {}
    for other in sorted(path.parent.glob("*.flow")):
        if other.resolve() == path.resolve():
            continue
        try:
            other_text = other.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        neighbours[other.name] = (other_text, *_packages(other_text, other.name))
    missing = wanted - defined
    while missing:
        name = next((n for n, (_, d, _) in neighbours.items() if d & missing and n not in sources), None)
        if name is None:
            break
        other_text, d, r = neighbours[name]
        sources[name] = other_text
        defined |= d
        missing = (missing | r) - defined
    return sources


def check_entry(program, entry: str, args: list) -> None:
    """Refuse a run that could not start: no such function, wrong arguments' number or types."""
    from flowmetal.runtime.builtins import is_instance
    from flowmetal.runtime.values import literal
    from flowmetal.types import show
    package, name = program.package_of(entry)
    scope = program.scopes.get(package)
    symbol = scope.decls.get(name) if scope else None
    if symbol is None or symbol.kind != "function":
        raise KeyError(f"no function `{name}` in package `{package}`")
    params = symbol.sig.params
    required = sum(1 for p in params if not p.optional)
    if not required <= len(args) <= len(params):
        takes = f"{required}" if required == len(params) else f"{required} to {len(params)}"
        raise KeyError(f"`{name}` takes {takes} arguments, {len(args)} given")
    for param, value in zip(params, args):
        if not is_instance(value, param.type):
            raise KeyError(f"argument `{param.name}` of `{name}` must be {show(param.type)}, "
                           f"not {literal(value)}")


def wait_for(store: SQLiteStore, executor: Executor, run_id: str, live: bool = False, poll: float = 0.05) -> Run:
    started = time.monotonic()
    shown = False
    while True:
        executor.run_once(run_id)
        run = store.get_run(run_id)
        if run.status in FINAL:
            if shown:
                sys.stderr.write("\r\x1b[K")
            return run
        if live:
            sys.stderr.write("\r\x1b[K" + _status_line(store, run, time.monotonic() - started))
            sys.stderr.flush()
            shown = True
        delay = poll
        if run.status == "waiting" and run.wake_at is not None:
            delay = max(0.0, min(run.wake_at - time.time(), 0.5))
        time.sleep(delay)


def _status_line(store: SQLiteStore, run: Run, elapsed: float) -> str:
    events = store.events(run.id, max(0, run.next_seq - 5))
    last = next((e for e in reversed(events) if e.kind == "step-requested"), None)
    what = f"step {last.step}: {last.data.get('endpoint')}" if last else "starting"
    waiting = ""
    if run.status == "waiting" and run.wake_at:
        waiting = f", wakes in {max(0.0, run.wake_at - time.time()):.1f}s"
    return f"{run.id} {run.status} ({what}{waiting}) {elapsed:.1f}s"


def print_events(store: SQLiteStore, run: Run, as_json: bool = False, follow: bool = False) -> int:
    from flowmetal.runtime.program import load
    sources = store.get_sources(run.program)
    lines = {name: text.splitlines() for name, text in sources.items()}
    main = next(iter(sources))
    after = 0
    collected = []
    while True:
        for event in store.events(run.id, after):
            after = event.seq
            record = {"seq": event.seq, "time": event.time, "kind": event.kind, "line": event.line,
                      "step": event.step, **event.data}
            if as_json:
                collected.append(record)
                continue
            source = ""
            if event.line:
                text = lines[main][event.line - 1].strip() if event.line <= len(lines[main]) else ""
                source = f"  | {event.line}: {text}"
            stamp = time.strftime("%H:%M:%S", time.localtime(event.time)) + f".{int(event.time * 1000) % 1000:03d}"
            details = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in event.data.items()
                               if k not in ("trace",))
            step = f"#{event.step} " if event.step is not None else ""
            print(f"{event.seq:>4} {stamp} {step}{event.kind} {details}{source}".rstrip())
            for frame in event.data.get("trace", []):
                print(f"       in {frame['package']}/{frame['function']}, line {frame['line']}")
        current = store.get_run(run.id)
        if not follow or current.status in FINAL:
            break
        sys.stdout.flush()
        time.sleep(0.2)
    if as_json:
        json.dump(collected, sys.stdout, indent=2)
        sys.stdout.write("\n")
    del load
    return 0


class InProcess:
    """The callback server and the HTTP request connector, for the length of a `run`."""

    def __init__(self, location: str, port: int = 0) -> None:
        import threading
        self.location = location
        self.port = port
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.bound: int | None = None
        self.error: BaseException | None = None
        self.threads: list = []

    def __enter__(self) -> "InProcess":
        import threading
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
                serve_requests(open_store(self.location), worker=f"run:{time.time():.0f}:http", stop=self.stop)
            thread = threading.Thread(target=connector, name="flowmetal-requests", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    @property
    def public_url(self) -> str:
        import os
        return (os.environ.get("FLOWMETAL_PUBLIC_URL") or f"http://127.0.0.1:{self.bound}").rstrip("/")

    def _server(self) -> None:
        import asyncio

        async def main() -> None:
            from aiohttp import web

            from flowmetal.server.app import make_app
            app = make_app(self.location)
            runner = web.AppRunner(app, access_log=None)
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


def work(store: SQLiteStore, once: bool = False, lease: float = 30.0, poll: float = 0.2) -> int:
    executor = Executor(store, lease=lease)
    try:
        while True:
            progress = executor.run_once()
            if progress is not None:
                continue
            if once:
                return 0
            time.sleep(poll)
    except KeyboardInterrupt:
        return 130
