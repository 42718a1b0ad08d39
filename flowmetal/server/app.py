"""The HTTP API and the callback endpoint of `flowmetal serve`, as an aiohttp application.

`make_app(store_location)` builds the application; `flowmetal.server.serve`
runs it together with the executor. Every route is described in
docs/http-api.md and in the OpenAPI document (`flowmetal.server.openapi`).

How it is built, and why:

- One store connection, used from one thread. SQLite calls block, and a
  connection must not run two transactions at once, so every store call is
  sent to a single dedicated thread (`_Api.db`). The event loop never waits
  on SQLite, and the store sees one caller at a time. Programs are checked
  (`load`) on a second thread, so a slow check delays no store call.
- Input is validated completely before anything is written: bodies are read
  up to `MAX_BODY` bytes (413 beyond), parsed as strict JSON (no NaN, no
  lone surrogates, bounded depth: 400 otherwise), every field checked (400),
  programs, entries, arguments and step results checked (422), states
  checked (404 unknown, 409 already done). Only then is the one store call
  that makes the change issued, and the store's own once-only checks
  (`complete_step`, `deliver_callback`) decide the races. So a 4xx answer
  never leaves a trace in the store.
- Errors are always JSON: `{"error": "..."}` naming the problem. A middleware
  turns aiohttp's own answers (unknown route 404, wrong method 405, 413) and
  any unexpected exception into that shape; `make_runner` does the same for
  what aiohttp answers before the application sees a request (a malformed
  request line or header: 400). An unexpected exception is a fault of the
  server's own, never an answer to bad input: a 500 with an error id, and
  one line on stderr with the same id (the whole traceback too when
  `FLOWMETAL_DEBUG=1`), so a client's report can be matched to the log.
- Web pages are kept out (`flowmetal.server.addresses`): a request whose
  `Host` does not name this server is refused (421: DNS rebinding), as is
  one whose `Origin` is another site's (403: CSRF), on every route; and an
  `/api/` request with a body must say `Content-Type: application/json`
  (415), which a web page cannot send to another site without asking first.
- `POST /api/runs` with an `Idempotency-Key` starts one run however often it
  is retried: the key, the request's fingerprint and the run id are stored
  (`SQLiteStore.record_run_key`) before the run is, and a retry answers 200
  with the same run (422 when the key came with another request).
- `POST /api/runs/{id}/signals/{name}` queues a signal (`flowmetal.runtime.signals`)
  in one store call, `send_signal`, which also decides its key's repeats (202
  with the first answer, 422 for another signal) and an ended run (409).
- Long polls (`/api/steps/claim` with `wait`) poll the store every `POLL`
  seconds: another process sharing the store (a `flowmetal worker`) changes
  it without telling this one. On PostgreSQL a long poll is told instead (a
  notification that a step of its endpoints was created,
  `flowmetal.runtime.wakeups`): it claims at once when told, and looks on its
  own only every `LISTENING_POLL` seconds. The live event streams share one
  look at the store per process (`_Follow`: the change feed, read when told on
  PostgreSQL, when the change token moved on SQLite), which wakes the streams
  of the runs that changed.
- When `FLOWMETAL_TOKEN` (or `token=`) is set, every `/api/` request must
  carry `Authorization: Bearer <token>`. Callbacks are not under `/api/`:
  their unguessable token is their authorisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import sqlite3
import re
import sys
import time
import traceback
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from flowmetal.lang import filenames
from flowmetal.runtime.store import SIGNAL_WAIT, Store, StoreError, open_store
from flowmetal.runtime.wakeups import LISTENING_POLL
from flowmetal.server.addresses import Served
from flowmetal.server.bounds import (CURSOR_HEADER, ENDPOINT_NAME, MAX_CURSOR, MAX_EPOCH, MAX_LAST, MAX_LEASE,
                                     MAX_LIMIT, MAX_WAIT, NOT_BLANK)
from flowmetal.statuses import RUN_STATUSES, is_entry

MAX_BODY = 1024 * 1024          # bytes: request bodies above this are refused with 413
POLL = 0.1                      # seconds between looks at the store in long polls and streams
FOLLOW_POLL = 0.25               # seconds between the live streams' looks at PostgreSQL's change feed
KEEPALIVE = 15.0                # seconds between comments on an idle event stream
FINAL = ("completed", "failed", "cancelled")
OPEN_STEP = ("pending", "claimed")

MAX_KEY = 255                   # characters of an Idempotency-Key

TOKEN_KEY = web.AppKey("token", object)
API_KEY = web.AppKey("api", object)
SERVED_KEY = web.AppKey("served", Served)


class ApiError(Exception):
    """An answer other than success: its status and the message naming the problem."""

    def __init__(self, status: int, message: str, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _error(status: int, message: str, headers: dict | None = None, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


# -- reading requests --------------------------------------------------------------------------------

async def read_body(request: web.Request) -> bytes:
    """The request's body, at most MAX_BODY bytes (413 beyond, without reading it all)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"the body is {request.content_length} bytes; the limit is {MAX_BODY} bytes (1 MiB)")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"the body is over the limit of {MAX_BODY} bytes (1 MiB)")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str):
    raise ValueError(f"`{name}` is not JSON")


def parse_json(raw: bytes):
    """Strict JSON: UTF-8, no NaN or Infinity, no lone surrogates, nested at most MAX_DEPTH."""
    from flowmetal.server.jsonvalues import JSONShapeError, check_json
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"the body is not UTF-8 text: {error.reason} at byte {error.start}") from None
    if not text.strip():
        raise ApiError(400, "malformed JSON: the body is empty; a JSON object is expected")
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    except ValueError as error:
        raise ApiError(400, f"malformed JSON: {error}") from None
    try:
        check_json(data)
    except JSONShapeError as error:
        raise ApiError(400, str(error)) from None
    return data


async def json_object(request: web.Request, fields: dict[str, str]) -> dict:
    """The body as a JSON object whose keys are all among `fields` (name -> what it is)."""
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, not {_kind(data)}")
    unknown = [k for k in data if k not in fields]
    if unknown:
        known = ", ".join(f"`{k}`" for k in fields)
        raise ApiError(400, f"unknown field `{unknown[0]}` (this request takes {known})")
    return data


def _kind(data) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, (int, float)):
        return "a number"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, list):
        return "an array"
    return "an object"


def _number(data: dict, name: str, default: float, low: float, high: float, integer: bool = False) -> float:
    value = data.get(name, default)
    if value is None:
        value = default
    # An integer may be written 5.0: JSON does not tell the two apart, and JSON Schema's `integer` allows it.
    ok = isinstance(value, (int, float)) and (not integer or isinstance(value, int) or value.is_integer())
    if isinstance(value, bool) or not ok:
        what = "an integer" if integer else "a number"
        raise ApiError(400, f"`{name}` must be {what} from {low:g} to {high:g}, not {_kind(value)}")
    if not low <= value <= high:
        raise ApiError(400, f"`{name}` must be from {low:g} to {high:g}, not {value}")
    return value


def _path_text(request: web.Request, name: str, what: str) -> str:
    """A path parameter, refused (404) when it is not text a store could hold."""
    value = request.match_info[name]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(404, f"no {what} with that name") from None
    return value


# -- the application ------------------------------------------------------------------------------

class _Api:
    def __init__(self, location: str, on_change: Callable[[], None] | None) -> None:
        self.location = location
        self.on_change = on_change or (lambda: None)
        self.store_thread = ThreadPoolExecutor(1, thread_name_prefix="flowmetal-store")
        self.check_thread = ThreadPoolExecutor(1, thread_name_prefix="flowmetal-check")
        self.store: Store | None = None
        self.programs: OrderedDict[str, Any] = OrderedDict()
        self.closing = False
        self.follow = _Follow(self)

    def _store(self) -> Store:
        if self.store is None:
            self.store = open_store(self.location)
        return self.store

    async def db(self, fn: Callable, *args):
        """Call fn(store, *args) on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.store_thread, lambda: fn(self._store(), *args))

    async def check(self, fn: Callable, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.check_thread, fn, *args)

    def close(self) -> None:
        self.closing = True

        def shut() -> None:
            if self.store is not None:
                self.store.close()
                self.store = None
        self.store_thread.submit(shut).result()
        self.store_thread.shutdown(wait=True)
        self.check_thread.shutdown(wait=True)

    # -- programs of runs, for checking step results --

    async def program_of(self, run) -> Any:
        """The run's program, loaded once per code hash (its sources read on the store's
        thread, checked on the check thread)."""
        from flowmetal.runtime.program import load
        program = self.programs.get(run.code_hash)
        if program is None:
            sources = await self.db(Store.get_sources, run.program)
            program = await self.check(load, sources)
            self.programs[run.code_hash] = program
            while len(self.programs) > 32:
                self.programs.popitem(last=False)
        else:
            self.programs.move_to_end(run.code_hash)
        return program


def make_app(location: str, *, token: str | None = None, on_change: Callable[[], None] | None = None,
             host: str | None = None, public_url: str | None = None) -> web.Application:
    """The application over the store at `location` (an SQLite path). `token`: the bearer
    token every `/api/` request must carry (None: no authorisation). `on_change` is called
    after every change that may make a run runnable (a new run, a step's result, a callback,
    a cancellation), to wake the executor. `host` (the name it listens on) and `public_url`
    are names, besides the address a request arrives at, that `Host` and `Origin` may give."""
    app = web.Application(middlewares=[_errors, _same_site, _authorise, _json_bodies], client_max_size=MAX_BODY)
    api = _Api(location, on_change)
    app[API_KEY] = api
    app[TOKEN_KEY] = token or None
    app[SERVED_KEY] = Served(host, public_url)

    async def closing(app: web.Application) -> None:
        api.closing = True

    async def cleanup(app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, api.close)

    app.on_shutdown.append(closing)
    app.on_cleanup.append(cleanup)
    app.router.add_post("/callback/{token}", callback)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/runs", create_run)
    app.router.add_get("/api/runs", list_runs)
    app.router.add_get("/api/runs/{run_id}", get_run)
    app.router.add_get("/api/runs/{run_id}/sources", get_sources)
    app.router.add_get("/api/runs/{run_id}/trace", trace)
    app.router.add_get("/api/runs/{run_id}/events", events)
    app.router.add_post("/api/runs/{run_id}/cancel", cancel)
    app.router.add_post("/api/runs/{run_id}/signals/{name}", send_signal)
    app.router.add_post("/api/steps/claim", claim)
    app.router.add_post(r"/api/steps/{run_id}/{step:[0-9]{1,18}}/complete", complete)
    app.router.add_post(r"/api/steps/{run_id}/{step:[0-9]{1,18}}/fail", fail)
    return app


def begin_shutdown(app: web.Application) -> None:
    """End the open event streams and long polls (within POLL seconds), before the server
    waits for its handlers to finish."""
    app[API_KEY].closing = True


def _api(request: web.Request) -> _Api:
    return request.app[API_KEY]


def _http_error(request: web.BaseRequest, error: web.HTTPException) -> web.Response:
    """aiohttp's own error answer as JSON."""
    if error.status == 404:
        return _error(404, f"no route {request.path}: see /api/openapi.json for the API's routes")
    if error.status == 405:
        allowed = error.headers.get("Allow", "")
        return _error(405, f"{request.method} is not allowed on {request.path} (allowed: {allowed})",
                      {"Allow": allowed})
    if error.status == 413:
        return _error(413, f"the body is over the limit of {MAX_BODY} bytes (1 MiB)")
    return _error(error.status, error.reason or "refused")


def _debug() -> bool:
    return os.environ.get("FLOWMETAL_DEBUG", "") not in ("", "0")


def internal_error(request: web.BaseRequest | None, error: BaseException | None) -> web.Response:
    """A fault of the server's own: one line on stderr naming it under a new error id (the
    whole traceback too with FLOWMETAL_DEBUG=1), and a 500 giving the client that id."""
    error_id = uuid.uuid4().hex[:12]
    where = ""
    if error is not None and error.__traceback__ is not None:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f" at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    what = f"{type(error).__name__}: {_clip(error)}" if error is not None else "unknown"
    route = f"{request.method} {_clip(request.path, 100)}" if request is not None else "a request"
    print(f"flowmetal serve: internal error {error_id} answering {route}: {what}{where}"
          + ("" if _debug() or error is None else " (FLOWMETAL_DEBUG=1 logs the traceback)"),
          file=sys.stderr, flush=True)
    if _debug() and error is not None:
        traceback.print_exception(error, file=sys.stderr)
    return _error(500, f"internal error {error_id}: a fault of the server's own; its log says more under "
                       f"this id", id=error_id)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as error:
        headers = {"WWW-Authenticate": 'Bearer realm="flowmetal"'} if error.status == 401 else None
        return _error(error.status, error.message, headers, **error.extra)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _http_error(request, error)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as error:  # a fault of the server's own, never an answer to bad input
        return internal_error(request, error)


def _local(request: web.Request) -> tuple | None:
    """(address, port) the request's connection arrived at."""
    transport = request.transport
    return transport.get_extra_info("sockname") if transport is not None else None


@web.middleware
async def _same_site(request: web.Request, handler):
    """Refuse requests for another name (DNS rebinding) and from other sites' pages (CSRF)."""
    served, local = request.app[SERVED_KEY], _local(request)
    host = request.headers.getall("Host", [])
    if len(host) > 1 or not served.host_ok(host[0] if host else None, local):
        given = ", ".join(_clip(h, 100) for h in host)
        raise ApiError(421, f"the Host header `{given}` does not name this server, which answers to "
                            f"{served.describe(local)}: another name is how DNS rebinding reaches a server (to "
                            f"reach it under another name, make that name its --public-url)")
    origin = request.headers.getall("Origin", [])
    if origin and (len(origin) > 1 or not served.origin_ok(origin[0], local)):
        given = ", ".join(_clip(o, 100) for o in origin)
        raise ApiError(403, f"the Origin header `{given}` is not this server's origin "
                            f"({served.describe(local)}): requests from other sites' web pages are refused")
    return await handler(request)


def _is_api(request: web.Request) -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


@web.middleware
async def _json_bodies(request: web.Request, handler):
    """An `/api/` request with a body must say it is JSON (UTF-8)."""
    if _is_api(request) and request.body_exists and request.match_info.http_exception is None:
        given = request.headers.get("Content-Type")
        charset = (request.charset or "utf-8").lower()
        if request.content_type != "application/json" or given is None or charset not in ("utf-8", "utf8"):
            what = f"`{_clip(given, 100)}`" if given is not None else "no Content-Type"
            raise ApiError(415, f"this API takes JSON bodies: send `Content-Type: application/json` "
                                f"(UTF-8); the request has {what}")
    return await handler(request)


class _JsonErrorsHandler(RequestHandler):
    """aiohttp's connection handler, answering in JSON what it answers itself: a request
    it cannot parse (400) and a fault outside the application (500)."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the answer is on its way: nothing can be said
            raise ConnectionError("the answer was sent already; cannot send an error after it")
        if status >= 500:
            response = internal_error(request, exc)
            if status != 500:
                response.set_status(status)
        else:
            response = _error(status, f"malformed HTTP request: {_clip(message or exc or 'unreadable')}")
        response.force_close()
        return response


class _JsonErrorsServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorsHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        app_handler = server.request_handler

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await app_handler(request)
            except web.HTTPException as error:  # raised outside the middlewares (an unknown `Expect`)
                if error.status < 400:
                    raise
                return _http_error(request, error)
        server.request_handler = handle
        server.__class__ = _JsonErrorsServer
        return server


def make_runner(app: web.Application, **kwargs) -> web.AppRunner:
    """An `AppRunner` for `app` whose every error answer is JSON, those aiohttp gives before
    the application sees the request included. aiohttp has no hook for these, so its
    connection handler is subclassed here (tests/server/test_serve_errors.py pins the answers)."""
    return _Runner(app, **kwargs)


@web.middleware
async def _authorise(request: web.Request, handler):
    expected = request.app[TOKEN_KEY]
    if expected and _is_api(request):
        given = request.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        try:
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                credential.strip().encode("utf-8", "surrogateescape"), expected.encode("utf-8"))
        except (TypeError, UnicodeError):
            ok = False
        if not ok:
            what = "no `Authorization: Bearer` token" if not given else "a wrong bearer token"
            raise ApiError(401, f"this API needs `Authorization: Bearer <token>` (FLOWMETAL_TOKEN); "
                                f"the request has {what}")
    return await handler(request)


# -- callbacks ------------------------------------------------------------------------------------------

async def callback(request: web.Request) -> web.Response:
    api = _api(request)
    token = _path_text(request, "token", "callback")
    raw = await read_body(request)
    charset = request.charset or "utf-8"
    try:
        body = raw.decode(charset)
        body.encode("utf-8")
    except LookupError:
        raise ApiError(415, f"unknown charset `{charset}`") from None
    except UnicodeError:
        raise ApiError(400, f"the body is not {charset} text") from None
    outcome = await api.db(Store.deliver_callback, token, body)
    if outcome == "unknown":
        raise ApiError(404, "no callback with this token (a callback URL is made by `make-callback!`)")
    if outcome == "duplicate":
        raise ApiError(409, "this callback was delivered already; a callback takes one delivery, "
                            "and this second one changed nothing")
    if outcome == "gone":
        raise ApiError(410, "the run this callback belongs to has ended; the body was not used and nothing "
                            "was recorded")
    api.on_change()
    if outcome == "kept":
        # Accepted, but nothing waits for it yet (or the last wait timed out): say so.
        return web.json_response({"status": "kept", "note": "the run is not waiting for this callback now; "
                                  "the body is kept for its next `get-callback!` on it"}, status=202)
    return web.json_response({"status": "delivered"})


# -- runs ---------------------------------------------------------------------------------------------------

def _run_json(run) -> dict:
    return {"id": run.id, "entry": run.entry, "status": run.status, "result": run.result, "error": run.error,
            "args": run.args, "code_hash": run.code_hash, "created": run.created, "updated": run.updated,
            "last_seq": run.next_seq - 1, "parent": run.parent}


def _event_json(event) -> dict:
    return {"seq": event.seq, "time": event.time, "kind": event.kind, "step": event.step, "line": event.line,
            **event.data}


async def _run_or_404(api: _Api, run_id: str):
    run = await api.db(Store.get_run, run_id)
    if run is None:
        raise ApiError(404, f"no run `{run_id}`")
    return run


def _check_new_run(sources: dict[str, str], entry: str, args: list[str]):
    """Check a program, its entry and its arguments as `flowmetal run` does (422 when refused):
    the run's code hash and what it stores (its files and the standard packages it uses)."""
    from flowmetal.runtime.driving import check_entry
    from flowmetal.runtime.literals import LiteralError, read_literal
    from flowmetal.runtime.program import ProgramError, ProgramNameError, load_new
    try:
        program = load_new(sources)
    except ProgramNameError as error:
        raise ApiError(400, f"`sources`: {error}") from None
    except ProgramError as error:
        diagnostics = [f"{d.span.source.name}:{d.span.line}:{d.span.column}: {d.code}: {d.message}"
                       for d in error.diagnostics]
        raise ApiError(422, f"the program has errors: {diagnostics[0]}" + (
            f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""), diagnostics=diagnostics) from None
    try:
        package, _ = program.package_of(entry)
        values = [read_literal(text, program, package) for text in args]
        check_entry(program, entry, values)
    except (KeyError, LiteralError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise ApiError(422, f"cannot start `{entry}`: {message}") from None
    return program.stored_hash, program.stored


def _idempotency_key(request: web.Request) -> str | None:
    """The request's `Idempotency-Key`: 1 to MAX_KEY printable ASCII characters (400 otherwise)."""
    given = request.headers.getall("Idempotency-Key", [])
    if not given:
        return None
    if len(given) > 1:
        raise ApiError(400, "the request has more than one `Idempotency-Key` header; give one")
    key = given[0]
    if not 1 <= len(key) <= MAX_KEY or not all(" " <= c <= "~" for c in key):
        raise ApiError(400, f"`Idempotency-Key` must be 1 to {MAX_KEY} printable ASCII characters, not "
                            f"{len(key)} characters {_clip(repr(key), 60)}")
    return key


def fingerprint(sources: dict, entry: str, args: list) -> str:
    """What a request asks for, as a hash: a retry must ask for the same."""
    text = json.dumps({"sources": sources, "entry": entry, "args": args}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _created(run_id: str, first: bool) -> web.Response:
    return web.json_response({"id": run_id}, status=201 if first else 200, headers={"Location": f"/api/runs/{run_id}"})


async def create_run(request: web.Request) -> web.Response:
    api = _api(request)
    key = _idempotency_key(request)
    data = await json_object(request, {"sources": "files", "entry": "name", "args": "literals"})
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ApiError(400, "`sources` must be a non-empty object of file names to their text "
                            "(`{\"name.flow\": \"(defpackage ...)\"}`)")
    for name, text in sources.items():
        why = filenames.problem(name)
        if why is not None:  # names become paths in tools that show a run's code
            raise ApiError(400, f"`sources`: bad file name {filenames.shown(name)}: {why}")
        if not isinstance(text, str):
            raise ApiError(400, f"`sources`: the text of `{name}` must be a string, not {_kind(text)}")
    entry = data.get("entry")
    if not isinstance(entry, str) or not re.search(NOT_BLANK, entry):
        raise ApiError(400, "`entry` must be the function to run, as `package/name` (or `name` when the "
                            "program has one package)")
    args = data.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ApiError(400, "`args` must be an array of strings, each a Flowmetal literal (`\"42\"`, "
                            "`\"\\\"host-1\\\"\"`, `\"[+reboot+]\"`)")
    asked = fingerprint(sources, entry, args) if key is not None else None

    def same_request(recorded: tuple[str, str]) -> str:
        run_id, was = recorded
        if was != asked:
            raise ApiError(422, f"the Idempotency-Key `{key}` was used for another request (which started run "
                                f"`{run_id}`): a retry must repeat its request exactly; a new request takes a "
                                f"new key")
        return run_id

    if key is not None:
        def look(store: Store):
            recorded = store.run_key(key)
            return recorded, recorded is not None and store.get_run(recorded[0]) is not None
        recorded, exists = await api.db(look)
        if recorded is not None:
            run_id = same_request(recorded)
            if exists:
                return _created(run_id, first=False)
    code, stored = await api.check(_check_new_run, sources, entry, args)

    def store_run(store: Store) -> tuple[str, bool]:
        """The run's id, and whether this request created it."""
        run_id = None
        if key is not None:
            # The key first: a retry after a crash between the two creates the run it names.
            run_id = same_request(store.record_run_key(key, asked, uuid.uuid4().hex[:16]))
            if store.get_run(run_id) is not None:
                return run_id, False
        program = store.put_sources(stored)
        try:
            return store.create_run(entry, list(args), program, code, run_id=run_id), True
        except sqlite3.IntegrityError:
            if run_id is None or store.get_run(run_id) is None:
                raise
            return run_id, False  # another process created it meanwhile, for the same key
    run_id, first = await api.db(store_run)
    if first:
        api.on_change()
    return _created(run_id, first)


def _since(request: web.Request) -> int | float | None:
    """`?since=`: a change cursor (digits: an int), or, as older clients send, a Unix time (a
    float), or None."""
    if "since" not in request.query:
        return None
    text = request.query["since"]
    if text.isascii() and text.isdigit():
        if int(text) > MAX_CURSOR:
            raise ApiError(400, f"`since` is past the largest change cursor ({MAX_CURSOR}): {text[:40]!r}")
        return int(text)
    try:
        since = float(text)
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        raise ApiError(400, f"`since` must be a change cursor (digits, as the {CURSOR_HEADER} header gave it), "
                            f"not {text[:40]!r}")
    return since


def _narrowing(request: web.Request) -> dict:
    """`?status=S[,S...]`, `?entry=ENTRY`, `?last=N`: the runs narrowed as `flowmetal runs`
    narrows them (`select_runs`)."""
    query = request.query
    out: dict = {}
    if "status" in query:
        wanted = query["status"].split(",")
        wrong = [s for s in wanted if s not in RUN_STATUSES]
        if wrong:
            raise ApiError(400, f"`status` must be run states separated by commas ({', '.join(RUN_STATUSES)}), "
                                f"not {wrong[0][:40]!r}")
        out["statuses"] = sorted(set(wanted))
    if "entry" in query:
        entry = query["entry"]
        if len(entry) > 1024 or not is_entry(entry):
            raise ApiError(400, f"`entry` must be a function, package/name or a name alone, not {entry[:40]!r}")
        out["entry"] = entry
    if "last" in query:
        text = query["last"]
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LAST:
            raise ApiError(400, f"`last` must be a number of runs, 1 to {MAX_LAST}, not {text[:40]!r}")
        out["last"] = int(text)
    return out


async def list_runs(request: web.Request) -> web.Response:
    """Every run with the change feed's cursor before the listing; or, given a cursor, the runs
    changed after it (`Store.changes`) and the next cursor; or, given a Unix time (the old
    form), the runs updated at or after it by their writers' clocks. Each narrowed by status,
    entry and the last started (of the listing) or changed last (of the changes), if asked
    (`_narrowing`); the cursor is the same as without."""
    since = _since(request)
    narrowing = _narrowing(request)

    def listed(store: Store) -> tuple[list, int]:
        from flowmetal.runtime.driving import narrowed, select_runs
        if isinstance(since, int):
            runs, cursor = store.changes(since)
            return narrowed(store, runs, **narrowing), cursor
        cursor = store.change_cursor()  # first: whatever changes after the listing is above it
        if since is not None:
            return narrowed(store, store.list_runs(since), **narrowing), cursor
        return select_runs(store, **narrowing), cursor
    runs, cursor = await _api(request).db(listed)
    return web.json_response([_run_json(r) for r in runs], headers={CURSOR_HEADER: str(cursor)})


async def get_run(request: web.Request) -> web.Response:
    run = await _run_or_404(_api(request), _path_text(request, "run_id", "run"))
    return web.json_response(_run_json(run))


async def get_sources(request: web.Request) -> web.Response:
    """The exact program a run runs: its files' names and texts, as stored with it."""
    api = _api(request)
    run = await _run_or_404(api, _path_text(request, "run_id", "run"))
    try:
        sources = await api.db(Store.get_sources, run.program)
    except StoreError as error:
        raise ApiError(409, f"the program of run `{run.id}` cannot be read: {error}") from None
    return web.json_response(sources)


def _after(request: web.Request) -> int:
    """The event number to start after: the `Last-Event-ID` header if given, else `?after=`, else 0.
    Each, when given, must be 1 to 18 digits (an empty one too is refused)."""
    after = 0
    for name, given in (("after", request.query), ("Last-Event-ID", request.headers)):
        if name in given:
            text = given[name]
            if not text.isascii() or not text.isdigit() or len(text) > 18:
                raise ApiError(400, f"`{name}` must be an event number (1 to 18 digits), not {text[:40]!r}")
            after = int(text)
    return after


async def trace(request: web.Request) -> web.Response:
    api = _api(request)
    run = await _run_or_404(api, _path_text(request, "run_id", "run"))
    after = _after(request)
    found = await api.db(Store.events, run.id, after)
    return web.json_response([_event_json(e) for e in found])


async def events(request: web.Request) -> web.StreamResponse:
    """The run's events as server-sent events: those logged so far, then each as it is
    committed, until the run has ended (a last `end` event gives its status). The stream reads
    the store when the process's one look at it (`_Follow`) says its run changed."""
    api = _api(request)
    run = await _run_or_404(api, _path_text(request, "run_id", "run"))
    after = _after(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    last_write = time.monotonic()
    changed = api.follow.add(run.id)
    try:
        while True:
            changed.clear()  # before reading: a change from now on is read at the next turn
            run = await api.db(Store.get_run, run.id)
            found = await api.db(Store.events, run.id, after)
            chunks = []
            for event in found:
                after = event.seq
                chunks.append(f"id: {event.seq}\nevent: {event.kind}\ndata: "
                              f"{json.dumps(_event_json(event), ensure_ascii=False)}\n\n")
            if run.status in FINAL:
                chunks.append(f"event: end\ndata: {json.dumps({'status': run.status})}\n\n")
            if chunks:
                await response.write("".join(chunks).encode("utf-8"))
                last_write = time.monotonic()
            if run.status in FINAL or api.closing:
                break
            # Until the run changes, in slices of POLL (a stopping server ends the stream within
            # POLL), and no longer than KEEPALIVE: no store call meanwhile.
            while not changed.is_set() and not api.closing and time.monotonic() - last_write < KEEPALIVE:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), POLL)
            if not changed.is_set() and time.monotonic() - last_write >= KEEPALIVE:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        api.follow.remove(run.id, changed)
    return response


class _Follow:
    """What the live streams of a process follow, and its one look at the store for them: which
    runs changed, from the store's change feed (`Store.changes` from its cursor), and the
    streams of those runs woken. So the store is read for the streams at a cost that does not
    grow with their number (each stream reads its run's new events once woken).

    When to look: on SQLite, every POLL, at the cheap change token first (`change_token`: the
    feed is read only when something was committed); on PostgreSQL, when a notification comes
    (`Store.listen(changes=True)`: a step requested, a run woken or ended, by any process), and
    every LISTENING_POLL besides, for what no notification tells (a run that computes between
    its waits commits without one; a child cancelled with its parent), or every POLL while the
    listening connection is down. Besides: every FOLLOW_POLL seconds while a stream follows, for
    the commits no notification tells of (making every commit notify would halve the store's
    commit rate under concurrent writers: a notifying transaction holds the server's
    notification lock until it commits), so that a stream shows a run's events within a
    fraction of a second on both stores, at one cheap query a FOLLOW_POLL per process."""

    def __init__(self, api: "_Api") -> None:
        self.api = api
        self.streams: dict[str, set[asyncio.Event]] = {}
        self.task: asyncio.Task | None = None

    def add(self, run_id: str) -> asyncio.Event:
        changed = asyncio.Event()
        self.streams.setdefault(run_id, set()).add(changed)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._main())
        return changed

    def remove(self, run_id: str, changed: asyncio.Event) -> None:
        streams = self.streams.get(run_id)
        if streams is not None:
            streams.discard(changed)
            if not streams:
                del self.streams[run_id]

    def _wake(self, run_ids=None) -> None:
        for run_id in (list(self.streams) if run_ids is None else run_ids):
            for changed in self.streams.get(run_id, ()):
                changed.set()

    async def _main(self) -> None:
        api = self.api
        told = _Told(asyncio.get_running_loop())
        subscription = None
        try:
            with contextlib.suppress(StoreError):
                subscription = await api.db(lambda store: store.listen(told, changes=True))
            cursor = token = None
            while self.streams and not api.closing:
                told.event.clear()
                looked = time.monotonic()
                try:
                    if cursor is None:
                        cursor = await api.db(Store.change_cursor)
                        self._wake()  # what changed before the cursor, after the streams' first reads
                    else:
                        moved = True
                        if subscription is None:  # SQLite: the feed only when something was committed
                            now = await api.db(lambda store: store.change_token())
                            moved, token = now != token, now
                        if moved:
                            runs, cursor = await api.db(Store.changes, cursor)
                            self._wake({run.id for run in runs})
                except StoreError:  # the store failed under the streams: each reads (and says) it itself
                    self._wake()
                await _next_look(api, told, subscription, looked, math.inf, FOLLOW_POLL)
        finally:
            if subscription is not None:
                subscription.close()
            self.task = None


async def cancel(request: web.Request) -> web.Response:
    api = _api(request)
    run_id = _path_text(request, "run_id", "run")

    def cancel_run(store: Store):
        run = store.get_run(run_id)
        if run is None:
            return None
        if run.status in FINAL:
            return run.status, False
        # The run may have ended since that look (a worker in another connection): then the
        # store answers how it ended, and nothing was cancelled.
        status = store.request_cancel(run_id)
        return status, status in ("cancelled", "cancelling")
    outcome = await api.db(cancel_run)
    if outcome is None:
        raise ApiError(404, f"no run `{run_id}`")
    status, changed = outcome
    if not changed:
        raise ApiError(409, f"run `{run_id}` has ended already ({status}): there is nothing to cancel")
    api.on_change()
    return web.json_response({"id": run_id, "status": status}, status=200 if status == "cancelled" else 202)


# -- signals ----------------------------------------------------------------------------------------------

async def send_signal(request: web.Request) -> web.Response:
    """Queue a signal for a run: 202 with its number (the same answer again for a repeat with
    the same Idempotency-Key)."""
    from flowmetal.runtime.signals import SignalError, check_body, check_name
    api = _api(request)
    run_id = _path_text(request, "run_id", "run")
    try:
        name = check_name(request.match_info["name"])
    except SignalError as error:
        raise ApiError(400, f"the signal's name in the path: {error}") from None
    key = _idempotency_key(request)
    raw = await read_body(request)
    if not raw.strip():
        raise ApiError(400, "malformed JSON: the body is empty; a signal's body is a JSON value (`null` for none)")
    parse_json(raw)  # strict JSON, as every body (400 otherwise)
    try:
        body = check_body(raw.decode("utf-8"))
    except SignalError as error:  # a number no Flowmetal value holds
        raise ApiError(400, str(error)) from None
    sent = await api.db(Store.send_signal, run_id, name, body, key)
    if sent.outcome == "unknown":
        raise ApiError(404, f"no run `{run_id}`")
    if sent.outcome == "ended":
        raise ApiError(409, f"run `{run_id}` has ended ({sent.status}): no signal can reach it; nothing was queued")
    if sent.outcome == "conflict":
        raise ApiError(422, f"the Idempotency-Key `{key}` was used for another signal to run `{run_id}` (#{sent.seq} "
                            f"`{sent.name}`): a retry must repeat its request exactly; a new signal takes a new key")
    if sent.outcome == "queued":
        api.on_change()
    return web.json_response({"run": run_id, "name": sent.name, "seq": sent.seq}, status=202)


# -- steps, for connectors ---------------------------------------------------------------------------------

def _step_json(row: dict) -> dict:
    from flowmetal.runtime.values import decode, literal
    from flowmetal.server.jsonvalues import to_json
    args, literals = {}, {}
    stored = row["args"] if isinstance(row["args"], dict) else {}
    for name, data in stored.items():
        try:
            value = decode(data)
        except (ValueError, TypeError, KeyError, AttributeError):
            args[name], literals[name] = data, None
            continue
        args[name], literals[name] = to_json(value), literal(value)
    return {"run_id": row["run_id"], "step": row["step"], "endpoint": row["endpoint"], "key": row["key"],
            "args": args, "literals": literals, "epoch": row["epoch"]}


async def claim(request: web.Request) -> web.Response:
    api = _api(request)
    data = await json_object(request, {"endpoints": "names", "lease": "seconds", "wait": "seconds",
                                       "limit": "count", "worker": "name"})
    endpoints = data.get("endpoints")
    if (not isinstance(endpoints, list) or not endpoints or len(endpoints) > 100
            or not all(isinstance(e, str) for e in endpoints)):
        raise ApiError(400, "`endpoints` must be a non-empty array (at most 100) of endpoint names, as "
                            "`package/name!`")
    for name in endpoints:
        # A name no endpoint can have would be waited for in vain: say so instead.
        if not re.fullmatch(ENDPOINT_NAME, name):
            raise ApiError(400, f"`endpoints`: {name[:80]!r} is not an endpoint name, `package/name` "
                                f"without spaces (as `shop/price!`)")
    lease = _number(data, "lease", 30.0, 1.0, MAX_LEASE)
    wait = _number(data, "wait", 0.0, 0.0, MAX_WAIT)
    limit = int(_number(data, "limit", 10, 1, MAX_LIMIT, integer=True))
    worker = data.get("worker")
    if worker is None:
        worker = f"http:{request.remote or 'client'}"
    if not isinstance(worker, str) or not worker or len(worker) > 200:
        raise ApiError(400, "`worker` must be a name for the claiming connector (1 to 200 characters)")
    # The client serves these endpoints as long as it keeps claiming: its presence, under a name
    # of its worker and endpoints (a worker may claim different endpoints in different polls).
    named = hashlib.sha256(json.dumps(sorted(endpoints)).encode()).hexdigest()[:12]
    await api.db(Store.announce, f"api:{worker}:{named}", "api", list(endpoints), None, request.remote)
    deadline = time.monotonic() + wait
    told = _Told(asyncio.get_running_loop())
    subscription = await api.db(Store.listen, told, False, list(endpoints)) if wait > 0 else None
    try:
        while True:
            told.event.clear()
            looked = time.monotonic()
            steps = await api.db(Store.claim_steps, list(endpoints), worker, lease, limit)
            if steps or api.closing or time.monotonic() >= deadline:
                break
            await _next_look(api, told, subscription, looked, deadline)
    finally:
        if subscription is not None:
            subscription.close()
    return web.json_response({"steps": [_step_json(s) for s in steps]})


async def _next_look(api: _Api, told: "_Told", subscription, looked: float, deadline: float,
                     listening_poll: float = LISTENING_POLL) -> None:
    """Wait until a long poll is to look again: `POLL` after its last look; while notifications
    come, when one comes, else `listening_poll` after it; never past the deadline, and in slices
    of `POLL`, so that a stopping server ends the poll within `POLL`."""
    while not api.closing and not told.event.is_set():
        listening = subscription is not None and subscription.listening
        now = time.monotonic()
        until = min(deadline, looked + (listening_poll if listening else POLL))
        if now >= until:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(told.event.wait(), min(POLL, until - now))


class _Told:
    """A notification's wake-up (set on the listener's thread) as an asyncio event of the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def set(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


async def _open_step(api: _Api, run_id: str, step: int):
    def look(store: Store):
        run = store.get_run(run_id)
        return run, (dict(store.step(run_id, step) or {}) if run is not None else None)
    run, row = await api.db(look)
    if run is None:
        raise ApiError(404, f"no run `{run_id}`")
    if not row:
        raise ApiError(404, f"run `{run_id}` has no step {step}")
    if row["endpoint"] == SIGNAL_WAIT:
        raise ApiError(409, f"step {step} of run `{run_id}` is a `receive!`: a signal answers it (POST "
                            f"/api/runs/{run_id}/signals/{{name}}), not a result")
    if row["status"] not in OPEN_STEP:
        status = {"applied": "completed"}.get(row["status"], row["status"])
        raise ApiError(409, f"step {step} of run `{run_id}` is {status} already: it takes one result, and "
                            f"this one changed nothing")
    return run, row


def _result_value(program, endpoint: str, data: dict):
    """The step's result as a Flowmetal value of the endpoint's declared return type (422 if not)."""
    from flowmetal.lang.types import ANY, show
    from flowmetal.runtime.literals import LiteralError, read_literal
    from flowmetal.runtime.primitives import is_instance
    from flowmetal.runtime.values import literal
    from flowmetal.server.jsonvalues import ConversionError, from_json
    package, _, name = endpoint.rpartition("/")
    scope = program.scopes.get(package)
    symbol = scope.decls.get(name) if scope else None
    ret = symbol.sig.ret if symbol is not None and symbol.kind == "endpoint" and symbol.sig else ANY
    try:
        if "literal" in data:
            value = read_literal(data["literal"], program, package if scope else next(iter(program.scopes)))
        else:
            value = from_json(data["result"], ret)
    except (ConversionError, LiteralError) as error:
        raise ApiError(422, f"`{endpoint}` returns {show(ret)}: {error}") from None
    if not is_instance(value, ret):
        raise ApiError(422, f"`{endpoint}` returns {show(ret)}, not {literal(value)}")
    return value


def _step_claim(data: dict) -> tuple[str | None, int | None]:
    """The claim a result is recorded under: `worker`, the name the step was claimed under, and
    `epoch`, the claim's number from `/api/steps/claim` (None, None: any claim, or none)."""
    worker = data.get("worker")
    if worker is not None and (not isinstance(worker, str) or not worker or len(worker) > 200):
        raise ApiError(400, "`worker` must be the name the step was claimed under (1 to 200 characters)")
    epoch = data.get("epoch")
    if epoch is not None:
        epoch = int(_number(data, "epoch", 0, 1, MAX_EPOCH, integer=True))
    return worker, epoch


def _finish(finish: Callable, run_id: str, step: int, worker: str | None, epoch: int | None, text: str):
    """On the store's thread: `finish` (`Store.complete_claimed_step` or `fail_claimed_step`)
    under the claim named. Given only the epoch, under the step's claimant if its claim is that
    one: a claim's epoch is never given twice, so (claimant, epoch) names it, and the store
    checks both in the transaction that records."""
    def record(store: Store):
        holder = worker
        if holder is None:
            row = store.step(run_id, step)
            holder = row["claimed_by"] if row is not None and row["claimed_by"] else ""
        return finish(store, run_id, step, holder, text, epoch=epoch)
    return record


def _refused(recorded, run_id: str, step: int, what: str) -> None:
    """A result or failure the store refused, in the transaction that tried (a race lost after
    `_open_step` looked, or a claim no longer the worker's): 404 or 409 saying why."""
    if recorded:
        return
    status = 404 if recorded.outcome == "unknown" else 409
    raise ApiError(status, f"step {step} of run `{run_id}`: {recorded.reason}; this {what} changed nothing",
                   reason=recorded.outcome)


async def complete(request: web.Request) -> web.Response:
    from flowmetal.runtime.values import encode
    api = _api(request)
    run_id, step = _path_text(request, "run_id", "run"), int(request.match_info["step"])
    data = await json_object(request, {"result": "JSON", "literal": "text", "worker": "name", "epoch": "number"})
    if ("result" in data) == ("literal" in data):
        raise ApiError(400, "give the step's value as `result` (JSON) or as `literal` (a Flowmetal literal), "
                            "one of the two")
    if "literal" in data and not isinstance(data["literal"], str):
        raise ApiError(400, f"`literal` must be a string holding a Flowmetal literal, not {_kind(data['literal'])}")
    worker, epoch = _step_claim(data)
    run, row = await _open_step(api, run_id, step)
    from flowmetal.runtime.program import ProgramError
    try:
        program = await api.program_of(run)
    except (ProgramError, StoreError) as error:
        raise ApiError(409, f"the program of run `{run_id}` cannot be loaded: {error}") from None
    value = await api.check(_result_value, program, row["endpoint"], data)
    stored = json.dumps(encode(value), separators=(",", ":"))
    if worker is None and epoch is None:
        recorded = await api.db(Store.complete_step, run_id, step, stored)
    else:
        recorded = await api.db(_finish(Store.complete_claimed_step, run_id, step, worker, epoch, stored))
    _refused(recorded, run_id, step, "result")
    api.on_change()
    return web.json_response({"run_id": run_id, "step": step, "status": "completed"})


async def fail(request: web.Request) -> web.Response:
    api = _api(request)
    run_id, step = _path_text(request, "run_id", "run"), int(request.match_info["step"])
    data = await json_object(request, {"error": "message", "worker": "name", "epoch": "number"})
    error = data.get("error")
    if not isinstance(error, str) or not re.search(NOT_BLANK, error):
        raise ApiError(400, "`error` must be a non-empty string saying why the endpoint failed")
    worker, epoch = _step_claim(data)
    await _open_step(api, run_id, step)
    if worker is None and epoch is None:
        recorded = await api.db(Store.fail_step, run_id, step, error)
    else:
        recorded = await api.db(_finish(Store.fail_claimed_step, run_id, step, worker, epoch, error))
    _refused(recorded, run_id, step, "failure")
    api.on_change()
    return web.json_response({"run_id": run_id, "step": step, "status": "failed"})


async def openapi(request: web.Request) -> web.Response:
    from flowmetal.server.openapi import document
    return web.json_response(document())
