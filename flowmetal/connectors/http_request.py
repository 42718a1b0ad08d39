"""The HTTP request connector: performs `http.request/get! post! put! delete!` for runs.

How: a loop claims pending steps of the four endpoints from the store (with a
lease), sends each request with httpx on a small thread pool, and records the
answer with `complete_step` as an `http.request` value:

    2xx answer                      (response status headers body)
    any other status                (response-error (response status headers body))
    the host name does not resolve  (dns-error "message")
    refused, reset, timed out, TLS  (connection-error "message")

Why this shape: failures are values the program matches on (SPEC section 4),
so nothing a remote server or the network does escapes the loop as an
exception; a request that cannot be performed at all still ends its step with
an error value, and the run goes on. Redirects are not followed: a 3xx is a
`response-error` whose headers hold the `location`, and the program decides.
Response header names are lower-cased; repeated headers are joined with ", ".

Delivery is at least once, application exactly once. Every request carries
`Idempotency-Key: RUN:STEP`, the step's key from the store, so the same key is
sent on every retry of one step: when a connector dies after sending but before
recording, the step's lease runs out, another connector (or this one,
restarted) claims it again and sends it again with the same key, and the
server can recognise it. The store applies the first recorded result and
ignores any later one (`complete_step` returns False).

Only the loop's thread touches the store; the pool's threads only talk HTTP.
Arguments arrive in stored form (`values.encode`) and are decoded here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import secrets
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import httpx

from flowmetal.connectors import pause, stopped
from flowmetal.runtime.values import RecordValue, decode, encode, key_value

PACKAGE = "http.request"
ENDPOINTS = {
    "http.request/get!": "GET",
    "http.request/post!": "POST",
    "http.request/put!": "PUT",
    "http.request/delete!": "DELETE",
}
KEY_HEADER = "Idempotency-Key"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
DEFAULT_THREADS = 8

log = logging.getLogger("flowmetal.connectors.http_request")

# What getaddrinfo says when a name does not resolve, on the platforms we know,
# for when the resolver's exception is not in the chain (a proxy, another transport).
_DNS_WORDS = ("name or service not known", "nodename nor servname", "no address associated with hostname",
              "temporary failure in name resolution", "getaddrinfo failed", "name resolution")


# -- values -----------------------------------------------------------------------------------------------

def response_value(answer: httpx.Response) -> RecordValue:
    """`(response status headers body)` of an answer: header names lower-cased, body as text."""
    headers = {name.lower(): ", ".join(answer.headers.get_list(name)) for name in answer.headers.keys()}
    return RecordValue(PACKAGE, "response", ("status", "headers", "body"), (answer.status_code, headers, answer.text))


def result_value(answer: httpx.Response) -> RecordValue:
    """A 2xx answer as a `response`, any other as a `response-error` holding it."""
    response = response_value(answer)
    if 200 <= answer.status_code < 300:
        return response
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
        todo += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]


def _is_dns(error: BaseException) -> bool:
    if any(isinstance(e, socket.gaierror) for e in _causes(error)):
        return True
    text = str(error).lower()
    return isinstance(error, httpx.ConnectError) and any(w in text for w in _DNS_WORDS)


def failure_value(error: Exception, method: str, url: str) -> RecordValue:
    """The error value for a request that got no answer."""
    detail = str(error).strip() or type(error).__name__
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
    if not isinstance(headers, dict):
        raise BadRequest(f"the headers of `{endpoint}` must be a (map? str? str?), not {headers!r}")
    plain = {}
    for name, value in headers.items():
        name = key_value(name)
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadRequest(f"the headers of `{endpoint}` must be a (map? str? str?): {name!r} {value!r}")
        plain[name] = value
    return method, url, data, plain


def perform(client: httpx.Client, endpoint: str, args: dict, key: str) -> RecordValue:
    """Send one step's request and return its `http.request` value. Raises only `BadRequest`."""
    method, url, data, headers = request_of(endpoint, args)
    try:
        sent = httpx.Headers(headers)
        sent[KEY_HEADER] = key  # replaces any spelling of it the program gave: the step's key is the key
        answer = client.request(method, url, content=data.encode("utf-8") if data is not None else None,
                                headers=sent)
    except Exception as error:  # noqa: BLE001 - every failure of the request is a value
        return failure_value(error, method, url)
    return result_value(answer)


# -- the connector ----------------------------------------------------------------------------------------

def default_worker() -> str:
    return f"http-request:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RequestConnector:
    """Claims `http.request` steps and performs them; `run_once` for one batch, `serve` for a loop.

    The store is used from the calling thread only; requests run on a pool of
    `threads` threads sharing one httpx client.
    """

    def __init__(self, store, *, worker: str | None = None, lease: float = 30.0,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT, threads: int = DEFAULT_THREADS,
                 client: httpx.Client | None = None) -> None:
        self.store = store
        self.worker = worker or default_worker()
        self.lease = lease
        self.threads = max(1, threads)
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False,
                                             limits=httpx.Limits(max_connections=self.threads * 2))
        self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="flowmetal-http")
        self.in_flight: dict[Future, dict] = {}
        self.handled = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self._own_client:
            self.client.close()

    def __enter__(self) -> "RequestConnector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- claiming, performing, recording --

    def claim(self, limit: int) -> int:
        if limit <= 0:
            return 0
        steps = self.store.claim_steps(list(ENDPOINTS), self.worker, self.lease, limit=limit)
        for step in steps:
            self.in_flight[self.pool.submit(perform, self.client, step["endpoint"], step["args"], step["key"])] = step
        return len(steps)

    def record(self, future: Future) -> None:
        step = self.in_flight.pop(future)
        try:
            value = future.result()
        except BadRequest as error:
            log.warning("step %s of run %s: %s", step["step"], step["run_id"], error)
            self.store.fail_step(step["run_id"], step["step"], str(error))
        except Exception as error:  # noqa: BLE001 - a fault of this connector still ends the step
            log.exception("step %s of run %s: the connector failed", step["step"], step["run_id"])
            self.store.complete_step(step["run_id"], step["step"], json.dumps(encode(
                connection_error(f"the request could not be sent: {type(error).__name__}: {error}"))))
        else:
            if not self.store.complete_step(step["run_id"], step["step"], json.dumps(encode(value))):
                # Cancelled meanwhile, or recorded by another connector that claimed it after our
                # lease ran out: the first result stands.
                log.info("step %s of run %s was no longer pending; its result is dropped",
                         step["step"], step["run_id"])
        self.handled += 1

    def run_once(self) -> int:
        """Claim what is pending (up to the pool's size), perform it, record it: how many steps."""
        before = self.handled
        self.claim(self.threads - len(self.in_flight))
        while self.in_flight:
            done, _ = wait(list(self.in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                self.record(future)
        return self.handled - before

    def serve(self, poll: float = 0.1, stop=None) -> int:
        """Claim, perform and record until `stop` is set; keeps the pool busy as answers come.
        Finishes and records the requests in flight before returning. Returns the steps handled."""
        while not stopped(stop):
            try:
                claimed = self.claim(self.threads - len(self.in_flight))
                if self.in_flight:
                    done, _ = wait(list(self.in_flight), timeout=poll, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.record(future)
                elif not claimed:
                    pause(stop, poll)
            except Exception:  # noqa: BLE001 - the store was busy or gone for a moment: try again
                log.exception("the HTTP request connector could not reach the store; retrying")
                pause(stop, poll)
        for future in list(self.in_flight):
            try:
                self.record(future)
            except Exception:  # noqa: BLE001 - the step's lease runs out and it is sent again
                log.exception("a request in flight could not be recorded at shutdown")
        return self.handled


def run_once(store, *, worker: str | None = None, lease: float = 30.0, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
             threads: int = DEFAULT_THREADS) -> int:
    """Claim the pending `http.request` steps (up to `threads`), perform and record them: how many."""
    with RequestConnector(store, worker=worker, lease=lease, timeout=timeout, threads=threads) as connector:
        return connector.run_once()


def serve_requests(store, *, worker: str | None = None, lease: float = 30.0, poll: float = 0.1, stop=None,
                   timeout: httpx.Timeout = DEFAULT_TIMEOUT, threads: int = DEFAULT_THREADS) -> int:
    """The connector's loop, until `stop` (a `threading.Event` or a callable) says to end; the steps handled."""
    with RequestConnector(store, worker=worker, lease=lease, timeout=timeout, threads=threads) as connector:
        return connector.serve(poll=poll, stop=stop)


__all__ = ["ENDPOINTS", "KEY_HEADER", "DEFAULT_TIMEOUT", "RequestConnector", "run_once", "serve_requests",
           "perform", "request_of", "response_value", "result_value", "failure_value", "BadRequest"]
