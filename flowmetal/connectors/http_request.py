"""The HTTP request connector: performs `http.request/get! post! put! delete!` for runs.

How: the connector's thread claims pending steps of the four endpoints from the
store (with a lease), hands each to an asyncio loop running in a thread of its
own, where one httpx client sends it, and records the answer with
`complete_claimed_step` as an `http.request` value:

    2xx answer                      (response status headers body)
    any other status                (response-error (response status headers body))
    a body over MAX_BODY            (response-error (response status headers "why"))
    the host name does not resolve  (dns-error "message")
    refused, reset, timed out, TLS  (connection-error "message")

Why this shape: failures are values the program matches on (SPEC section 4),
so nothing a remote server or the network does escapes the loop as an
exception; a request that cannot be performed at all still ends its step with
an error value, and the run goes on. Redirects are not followed: a 3xx is a
`response-error` whose headers hold the `location`, and the program decides.
Response header names are lower-cased; repeated headers are joined with ", ".

Limits, so that no service can exhaust the connector:

- Bodies: a response body is streamed and kept up to `MAX_BODY` (10 MiB, after
  content decoding; `FLOWMETAL_MAX_RESPONSE_BODY`, in bytes, sets another limit
  for every request connector of the process: the worker's, serve's, run's). A larger one is not read further (a `Content-Length` over
  the limit is not read at all) and the result is a `response-error` holding
  the answer's status and headers (header blocks are bounded by httpcore, at
  100 KiB) and, as its body, a message naming the size and the limit.
- Time: `DEFAULT_TIMEOUT` bounds each phase (10 s to connect, 120 s without a
  byte read or written); `TOTAL_TIMEOUT` (300 s) bounds the whole exchange,
  body included, so a server trickling bytes cannot hold a request forever.
  Either is a `connection-error` saying "timed out".
- Concurrency: up to `DEFAULT_CONCURRENCY` (64) requests in flight, each a
  coroutine, not a thread: slow services hold their own requests, never the
  others'. The connector claims no more steps than it can send at once, so a
  claimed step is always being sent.
- Leases: a step is claimed for `lease` seconds (30) and the lease is renewed
  every `lease / 3` seconds while its request is in flight
  (`renew_step_leases`), so a slow answer is never sent again by another
  connector meanwhile. A step no longer ours at a renewal (its run was
  cancelled, or our lease lapsed, say while the store was locked, and another
  connector claimed it) has its request abandoned.

Delivery is at least once, application exactly once. Every request carries
`Idempotency-Key: RUN:STEP`, the step's key from the store, so the same key is
sent on every retry of one step: when a connector dies after sending but before
recording, the step's lease runs out, another connector (or this one,
restarted) claims it again and sends it again with the same key, and the
server can recognise it. Recording is fenced by the claim: only the connector
holding a step's claim records its result (`complete_claimed_step`), and the
store applies a step's result once. Stopping, the connector waits up to
`grace` seconds (5) for the requests in flight, then abandons the rest and
gives their steps back (`release_steps`) for the next connector to send.

Only the connector's thread touches the store (SQLite calls block, and a busy
store must not stall requests in flight); the loop's thread only talks HTTP.
Arguments arrive in stored form (`values.encode`) and are decoded here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait

import httpx

from flowmetal.connectors import Presence, pause, stopped
from flowmetal.runtime.storeerrors import StoreError
from flowmetal.runtime.values import Map, RecordValue, decode, encode, key_value
from flowmetal.runtime.wakeups import Wakeup

PACKAGE = "http.request"
ENDPOINTS = {
    "http.request/get!": "GET",
    "http.request/post!": "POST",
    "http.request/put!": "PUT",
    "http.request/delete!": "DELETE",
}
KEY_HEADER = "Idempotency-Key"
MiB = 1024 * 1024
MAX_BODY = 10 * MiB                                  # the largest response body kept, in bytes
MAX_BODY_SETTING = "FLOWMETAL_MAX_RESPONSE_BODY"     # another limit, in bytes, for every connector of the process
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)  # per phase: connect, and each read or write
TOTAL_TIMEOUT = 300.0                                # seconds for a whole exchange, body included
DEFAULT_CONCURRENCY = 64                             # requests in flight at once
DEFAULT_LEASE = 30.0                                 # seconds a claim lasts without renewal
SHUTDOWN_GRACE = 5.0                                 # seconds to finish requests in flight when stopping

log = logging.getLogger("flowmetal.connectors.http_request")

# What getaddrinfo says when a name does not resolve, on the platforms we know,
# for when the resolver's exception is not in the chain (a proxy, another transport).
_DNS_WORDS = ("name or service not known", "nodename nor servname", "no address associated with hostname",
              "temporary failure in name resolution", "getaddrinfo failed", "name resolution")


# -- values -----------------------------------------------------------------------------------------------

def _headers(answer: httpx.Response) -> dict[str, str]:
    return {name.lower(): ", ".join(answer.headers.get_list(name)) for name in answer.headers.keys()}


def response_value(answer: httpx.Response, body: str | None = None) -> RecordValue:
    """`(response status headers body)` of an answer: header names lower-cased, body as text
    (`body`, when the answer was streamed; else the answer's own, read)."""
    text = answer.text if body is None else body
    return RecordValue(PACKAGE, "response", ("status", "headers", "body"), (answer.status_code, _headers(answer), text))


def result_value(answer: httpx.Response, body: str | None = None) -> RecordValue:
    """A 2xx answer as a `response`, any other as a `response-error` holding it."""
    response = response_value(answer, body)
    if 200 <= answer.status_code < 300:
        return response
    return RecordValue(PACKAGE, "response-error", ("response",), (response,))


def too_large_value(answer: httpx.Response, limit: int, declared: int | None = None) -> RecordValue:
    """The `response-error` for an answer whose body is over `limit` bytes: its status and
    headers as they came, and for a body the reason it was not kept."""
    if declared is not None:
        size = f"its Content-Length is {declared} bytes; it was not read"
    else:
        size = f"more than {limit} bytes arrived; reading stopped there"
    message = (f"the response body is larger than the HTTP request connector's limit of {limit} bytes "
               f"({limit / MiB:g} MiB): {size}")
    response = RecordValue(PACKAGE, "response", ("status", "headers", "body"),
                           (answer.status_code, _headers(answer), message))
    return RecordValue(PACKAGE, "response-error", ("response",), (response,))


def dns_error(message: str) -> RecordValue:
    return RecordValue(PACKAGE, "dns-error", ("message",), (message,))


def connection_error(message: str) -> RecordValue:
    return RecordValue(PACKAGE, "connection-error", ("message",), (message,))


def _causes(error: BaseException):
    """The error and everything it was raised from or wraps (httpx → httpcore → socket)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException)),
                 *getattr(e, "exceptions", ())]


def _is_dns(error: BaseException) -> bool:
    if any(isinstance(e, socket.gaierror) for e in _causes(error)):
        return True
    text = str(error).lower()
    return isinstance(error, httpx.ConnectError) and any(w in text for w in _DNS_WORDS)


def _system_reason(error: BaseException) -> str | None:
    """What the operating system said, when the error comes from a failed system call: the
    asyncio transport words it "Connect call failed", and only the errno says "refused"."""
    for e in _causes(error):
        if isinstance(e, OSError) and isinstance(e.errno, int) and e.errno > 0:
            return os.strerror(e.errno)
    return None


def failure_value(error: Exception, method: str, url: str) -> RecordValue:
    """The error value for a request that got no answer."""
    detail = str(error).strip() or type(error).__name__
    reason = _system_reason(error)
    if reason and reason.lower() not in detail.lower():
        detail = f"{detail}: {reason}"
    if isinstance(error, httpx.TimeoutException):
        return connection_error(f"{method} {url}: timed out ({type(error).__name__}: {detail})")
    if _is_dns(error):
        try:
            host = httpx.URL(url).host
        except Exception:  # noqa: BLE001 - only for the message
            host = url
        return dns_error(f"cannot resolve {host}: {detail}")
    if isinstance(error, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return connection_error(f"{method} {url}: not a URL this connector can request: {detail}")
    if isinstance(error, httpx.HTTPError):
        return connection_error(f"{method} {url}: {detail}")
    return connection_error(f"{method} {url}: the request could not be sent: {type(error).__name__}: {detail}")


# -- one request ------------------------------------------------------------------------------------------

class BadRequest(Exception):
    """A step's arguments are not a request (the checker makes this rare: a stored step from elsewhere)."""


def request_of(endpoint: str, args: dict) -> tuple[str, str, str | None, dict[str, str]]:
    """(method, url, body, headers) from a step's arguments in stored form."""
    method = ENDPOINTS.get(endpoint)
    if method is None:
        raise BadRequest(f"`{endpoint}` is not an endpoint of {PACKAGE}")
    try:
        values = {name: decode(value) for name, value in args.items()}
    except (ValueError, TypeError, KeyError) as error:
        raise BadRequest(f"the arguments of `{endpoint}` cannot be read: {error}") from error
    url = values.get("url")
    data = values.get("data")
    headers = values.get("headers") or {}
    if not isinstance(url, str):
        raise BadRequest(f"`{endpoint}` needs a str? url, not {url!r}")
    if data is not None and not isinstance(data, str):
        raise BadRequest(f"the data of `{endpoint}` must be a str? or nil, not {data!r}")
    if not isinstance(headers, (Map, dict)):
        raise BadRequest(f"the headers of `{endpoint}` must be a (map? str? str?), not {headers!r}")
    plain = {}
    for name, value in headers.items():
        name = key_value(name)
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadRequest(f"the headers of `{endpoint}` must be a (map? str? str?): {name!r} {value!r}")
        plain[name] = value
    return method, url, data, plain


def _declared_length(answer: httpx.Response) -> int | None:
    try:
        return int(answer.headers["content-length"])
    except (KeyError, ValueError):
        return None


async def _read(answer: httpx.Response, limit: int) -> RecordValue:
    """The value of a streamed answer, reading at most `limit` bytes of its body (and one chunk)."""
    declared = _declared_length(answer)
    if declared is not None and declared > limit:
        return too_large_value(answer, limit, declared)
    body = bytearray()
    async for chunk in answer.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return too_large_value(answer, limit)
    return result_value(answer, body.decode(answer.encoding or "utf-8", errors="replace"))


async def perform(client: httpx.AsyncClient, endpoint: str, args: dict, key: str, *,
                  total: float = TOTAL_TIMEOUT, max_body: int = MAX_BODY) -> RecordValue:
    """Send one step's request and return its `http.request` value. Raises only `BadRequest`
    (and `CancelledError` when cancelled)."""
    method, url, data, headers = request_of(endpoint, args)
    deadline = asyncio.timeout(total)
    try:
        sent = httpx.Headers(headers)
        sent[KEY_HEADER] = key  # replaces any spelling of it the program gave: the step's key is the key
        async with deadline:
            async with client.stream(method, url, content=data.encode("utf-8") if data is not None else None,
                                     headers=sent) as answer:
                return await _read(answer, max_body)
    except Exception as error:  # noqa: BLE001 - every failure of the request is a value
        if deadline.expired():
            return connection_error(f"{method} {url}: timed out: no whole answer within {total:g} s, "
                                    f"the HTTP request connector's limit for one request")
        return failure_value(error, method, url)


def outcome_of(future: Future) -> str:
    """A few words on what came of a step's request, for a log line: `200`, `response-error
    404`, `dns-error: ...`, `connection-error: ...`, or the connector's own failure."""
    try:
        value = future.result()
    except Exception as error:  # noqa: BLE001
        return f"failed: {error}"
    if value.record == "response":
        return str(value.values[0])
    if value.record == "response-error":
        return f"response-error {value.values[0].values[0]}"
    return f"{value.record}: {value.values[0]}"


def describe(step: dict) -> str:
    """`GET http://host/path` for a step's request (its endpoint, when its arguments are no request)."""
    try:
        method, url, _, _ = request_of(step["endpoint"], step["args"])
    except BadRequest:
        return step["endpoint"]
    return f"{method} {url}"


# -- the connector ----------------------------------------------------------------------------------------

def default_worker() -> str:
    return f"http-request:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class _Sender:
    """An asyncio loop in a thread of its own and the one httpx client its requests share;
    coroutines are submitted from the connector's thread and come back as futures."""

    def __init__(self, timeout: httpx.Timeout, concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="flowmetal-http", daemon=True)
        self.thread.start()
        self.client = self.submit(self._client(timeout, concurrency)).result()

    @staticmethod
    async def _client(timeout: httpx.Timeout, concurrency: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=concurrency))

    def submit(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.aclose()
        try:
            self.submit(shutdown()).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            if not self.thread.is_alive():
                self.loop.close()


def max_body_setting() -> int:
    """The largest response body kept: `FLOWMETAL_MAX_RESPONSE_BODY` bytes when it is set (a
    value that is not a positive whole number is said in the log, and `MAX_BODY` used)."""
    text = os.environ.get(MAX_BODY_SETTING, "").strip()
    if not text:
        return MAX_BODY
    try:
        value = int(text)
        if value <= 0:
            raise ValueError
    except ValueError:
        log.warning("%s=%r is not a positive number of bytes: the limit stays %d bytes (%g MiB)",
                    MAX_BODY_SETTING, text, MAX_BODY, MAX_BODY / MiB)
        return MAX_BODY
    return value


class RequestConnector:
    """Claims `http.request` steps and performs them; `run_once` for one batch, `serve` for a loop.

    The store is used from the calling thread only; up to `concurrency` requests are in
    flight at once on the sender's loop. `lease`, `timeout`, `total`, `max_body` and
    `grace` are the limits of the module's docstring.
    """

    def __init__(self, store, *, worker: str | None = None, lease: float = DEFAULT_LEASE,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT, total: float = TOTAL_TIMEOUT,
                 concurrency: int = DEFAULT_CONCURRENCY, max_body: int | None = None,
                 grace: float = SHUTDOWN_GRACE, kind: str = "http-request", report=None) -> None:
        if lease <= 0 or total <= 0:
            raise ValueError(f"the lease ({lease}) and the total timeout ({total}) must be positive seconds")
        self.store = store
        self.worker = worker or default_worker()
        self.lease = lease
        self.renew_every = lease / 3  # two renewals can fail before the lease lapses
        self.total = total
        self.max_body = max_body if max_body is not None else max_body_setting()
        self.grace = grace
        self.concurrency = max(1, concurrency)
        self.sender = _Sender(timeout, self.concurrency)
        self.in_flight: dict[Future, dict] = {}
        self.renewed = time.monotonic()
        self.handled = 0
        self.presence = Presence(store, self.worker, kind, ENDPOINTS)
        # report(step, outcome): told of each step performed (its claim, as `claim_steps` gives
        # it, and a few words on what came of it), for a process that logs them.
        self.report = report

    def close(self) -> None:
        try:
            self.give_back()
        finally:
            try:
                self.sender.close()
            finally:
                self.presence.close()

    def __enter__(self) -> "RequestConnector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- claiming, renewing, recording --

    def claim(self, limit: int) -> int:
        if limit <= 0:
            return 0
        steps = self.store.claim_steps(list(ENDPOINTS), self.worker, self.lease, limit=limit)
        if steps and not self.in_flight:
            self.renewed = time.monotonic()  # the claim itself set the leases
        for step in steps:
            coroutine = perform(self.sender.client, step["endpoint"], step["args"], step["key"],
                                total=self.total, max_body=self.max_body)
            self.in_flight[self.sender.submit(coroutine)] = step
        return len(steps)

    def renew(self) -> None:
        """Extend the leases of the steps in flight; abandon the requests of those no longer ours."""
        keys = {future: (step["run_id"], step["step"], step.get("epoch")) for future, step in self.in_flight.items()}
        held = self.store.renew_step_leases(self.worker, list(keys.values()), self.lease)
        self.renewed = time.monotonic()
        for future, (run_id, number, epoch) in keys.items():
            if (run_id, number, epoch) not in held and future in self.in_flight:
                del self.in_flight[future]
                future.cancel()
                self.handled += 1
                log.info("step %s of run %s is no longer this connector's (cancelled, done, or claimed by "
                         "another after the lease ran out): its request is abandoned", number, run_id)

    def record(self, future: Future) -> None:
        step = self.in_flight.pop(future)
        run_id, number, epoch = step["run_id"], step["step"], step.get("epoch")
        try:
            value = future.result()
        except BadRequest as error:
            log.warning("step %s of run %s: %s", number, run_id, error)
            recorded = self.store.fail_claimed_step(run_id, number, self.worker, str(error), epoch)
        except Exception as error:  # noqa: BLE001 - a fault of this connector still ends the step
            log.exception("step %s of run %s: the connector failed", number, run_id)
            recorded = self.store.complete_claimed_step(run_id, number, self.worker, json.dumps(encode(
                connection_error(f"the request could not be sent: {type(error).__name__}: {error}"))), epoch)
        else:
            recorded = self.store.complete_claimed_step(run_id, number, self.worker, json.dumps(encode(value)),
                                                        epoch)
        if self.report is not None:
            try:
                self.report(step, outcome_of(future) + ("" if recorded else f" (not recorded: {recorded.reason})"))
            except Exception:  # noqa: BLE001 - a log line must not lose a result
                log.exception("reporting a step failed")
        if not recorded:
            # Cancelled meanwhile, or claimed by another connector after our lease ran out: that
            # claim's result is the one recorded. The store says which.
            log.info("step %s of run %s: its result is dropped: %s", number, run_id, recorded.reason)
        self.handled += 1

    def collect(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for answers, recording those that come; renew the
        leases when they are due."""
        due = self.renewed + self.renew_every - time.monotonic()
        if self.in_flight:
            done, _ = wait(list(self.in_flight), timeout=max(0.0, min(timeout, due)), return_when=FIRST_COMPLETED)
            for future in done:
                self.record(future)
        if self.in_flight and time.monotonic() >= self.renewed + self.renew_every:
            self.renew()

    def give_back(self) -> None:
        """Abandon the requests in flight and release their steps for another connector."""
        if not self.in_flight:
            return
        keys = [(step["run_id"], step["step"], step.get("epoch")) for step in self.in_flight.values()]
        for future in self.in_flight:
            future.cancel()
        self.in_flight.clear()
        try:
            released = self.store.release_steps(self.worker, keys)
        except Exception:  # noqa: BLE001 - their leases run out instead, and they are sent again
            log.exception("the steps in flight could not be given back; they are taken again when their leases end")
        else:
            log.info("gave back %d step(s) whose requests were still in flight", released)

    # -- loops --

    def run_once(self) -> int:
        """Claim what is pending (up to `concurrency`), perform it, record it: how many steps."""
        before = self.handled
        self.claim(self.concurrency - len(self.in_flight))
        while self.in_flight:
            self.collect(self.renew_every)
        return self.handled - before

    def serve(self, poll: float = 0.1, stop=None) -> int:
        """Claim, perform and record until `stop` is set, claiming more as answers come. Then
        waits up to `grace` seconds for the requests in flight and gives the rest back. Returns
        the steps handled."""
        wakeup = Wakeup(self.store, endpoints=ENDPOINTS)  # a step created wakes it (PostgreSQL)
        try:
            while not stopped(stop):
                self.presence.beat()
                try:
                    wakeup.clear()
                    claimed = self.claim(self.concurrency - len(self.in_flight))
                    if self.in_flight:
                        self.collect(poll)
                    elif not claimed:
                        wakeup.sleep(wakeup.interval(poll), stop)
                except StoreError as error:  # the store was busy or gone for a moment: one line, try again
                    log.warning("the HTTP request connector could not reach the store (%s); retrying", error)
                    pause(stop, max(poll, 1.0))
                except Exception:  # noqa: BLE001 - a bug: in full, and try again
                    log.exception("the HTTP request connector failed; retrying")
                    pause(stop, poll)
        finally:
            wakeup.close()
        deadline = time.monotonic() + self.grace
        while self.in_flight and time.monotonic() < deadline:
            try:
                self.collect(deadline - time.monotonic())
            except Exception:  # noqa: BLE001 - what is left is given back below
                log.exception("a request in flight could not be recorded at shutdown")
                break
        self.give_back()
        return self.handled


def run_once(store, *, worker: str | None = None, **limits) -> int:
    """Claim the pending `http.request` steps (up to `concurrency`), perform and record them:
    how many. `limits` are `RequestConnector`'s (lease, timeout, total, concurrency, max_body)."""
    with RequestConnector(store, worker=worker, **limits) as connector:
        return connector.run_once()


def serve_requests(store, *, worker: str | None = None, poll: float = 0.1, stop=None, **limits) -> int:
    """The connector's loop, until `stop` (a `threading.Event` or a callable) says to end; the
    steps handled. `limits` are `RequestConnector`'s (lease, timeout, total, concurrency,
    max_body, grace)."""
    with RequestConnector(store, worker=worker, **limits) as connector:
        return connector.serve(poll=poll, stop=stop)


__all__ = ["ENDPOINTS", "KEY_HEADER", "MAX_BODY", "DEFAULT_TIMEOUT", "TOTAL_TIMEOUT", "DEFAULT_CONCURRENCY",
           "DEFAULT_LEASE", "SHUTDOWN_GRACE", "RequestConnector", "run_once", "serve_requests", "perform",
           "request_of", "response_value", "result_value", "too_large_value", "failure_value", "BadRequest"]
