"""The HTTP request connector under hostile or slow services, against a real HTTP server on
127.0.0.1: bodies over the limit are not read and become a `response-error` naming the size
and the limit; a slow answer keeps its step's lease renewed, so it is sent once however many
connectors share the store; slow services do not hold up fast ones; a whole exchange has a
total time limit; only the connector holding a step's claim records it; stopping gives the
steps in flight back."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from connector_helpers import path, store  # noqa: F401 - fixtures
from connector_helpers import drive, serving, start_run
from flowmetal.connectors.http_request import (ENDPOINTS, MAX_BODY, RequestConnector, run_once,
                                               serve_requests)
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import SQLiteStore
from flowmetal.runtime.values import decode

PROGRAM = """\
(defpackage web
  (require [http.request :refer [get! response? error?]])
  (defn fetch [url : str?] : (union? [response? error?])
    (get! url)))
"""
SOURCES = {"web.flow": PROGRAM}
PATIENT = httpx.Timeout(30.0, connect=5.0)
CHUNK = 64 * 1024


@dataclass
class Service:
    """A server with slow and oversized answers, and what it saw."""
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrivals: dict[str, int] = field(default_factory=dict)     # path -> requests received
    sent: dict[str, int] = field(default_factory=dict)         # path -> body bytes written
    release: threading.Event = field(default_factory=threading.Event)  # set: held answers go out

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return self.arrivals.get(path, 0)

    def wait_for(self, path: str, n: int, seconds: float = 10.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.count(path) >= n:
                return True
            time.sleep(0.02)
        return False


def _handler(service: Service):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def head(self, status: int = 200, length: int | None = None, chunked: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("X-Reply", "big")
            if length is not None:
                self.send_header("Content-Length", str(length))
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def answer(self, body: str) -> None:
            data = body.encode()
            self.head(length=len(data))
            self.wfile.write(data)

        def stream(self, total: int, length: int | None) -> None:
            """`total` bytes of body, counted as they are written, until the client hangs up."""
            path = self.path.split("?")[0]
            self.head(length=length, chunked=length is None)
            written = 0
            try:
                while written < total:
                    piece = b"x" * min(CHUNK, total - written)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if length is None else piece)
                    written += len(piece)
                    with service.lock:
                        service.sent[path] = written
                if length is None:
                    self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client stopped reading and closed the connection
                pass

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            with service.lock:
                service.arrivals[path] = service.arrivals.get(path, 0) + 1
            if path == "/declared":      # says its size up front: over the limit
                self.stream(MAX_BODY + 1024 * 1024, length=MAX_BODY + 1024 * 1024)
            elif path == "/endless":     # chunked, no size, far more than the limit
                self.stream(8 * MAX_BODY, length=None)
            elif path == "/exact":       # chunked, exactly the limit
                self.stream(MAX_BODY, length=None)
            elif path == "/slow":        # answers after some seconds
                time.sleep(float(query or 4))
                self.answer("slow but sure")
            elif path == "/hold":        # answers when the test says so
                service.release.wait(30)
                self.answer("released")
            elif path == "/trickle":     # a byte at a time, never finishing in time
                self.head(length=200)
                try:
                    for _ in range(200):
                        if service.release.wait(0.1):
                            break
                        self.wfile.write(b"x")
                        self.wfile.flush()
                except OSError:
                    pass
            else:
                self.answer("fast")

    return Handler


@pytest.fixture
def service():
    with serving(Service(), _handler) as state:
        yield state


class Connectors:
    """Connector loops in threads, each on its own connection to the store."""

    def __init__(self, path) -> None:
        self.path = path
        self.running: list[tuple[threading.Thread, threading.Event, SQLiteStore]] = []

    def start(self, worker: str, **limits) -> threading.Event:
        stop = threading.Event()
        own = SQLiteStore(self.path)
        thread = threading.Thread(target=serve_requests, args=(own,),
                                  kwargs={"worker": worker, "poll": 0.02, "stop": stop, **limits}, daemon=True)
        thread.start()
        self.running.append((thread, stop, own))
        return stop

    def stop_all(self) -> None:
        for thread, stop, _ in self.running:
            stop.set()
        for thread, _, own in self.running:
            thread.join(15)
            assert not thread.is_alive()
            own.close()


@pytest.fixture
def connectors(path, service):
    group = Connectors(path)
    yield group
    service.release.set()
    group.stop_all()


def waiting_step(store: SQLiteStore, url: str) -> str:
    """A run of `web/fetch` that has asked for its request and waits (not held for the answer):
    its step 1 is recorded (pending, or already taken by a connector running meanwhile)."""
    run_id = start_run(store, SOURCES, "web/fetch", [json.dumps(url)])
    Executor(store, hold=0).run_once(run_id)
    assert store.step(run_id, 1)["status"] in ("pending", "claimed", "completed")
    return run_id


def result_of(store: SQLiteStore, run_id: str):
    return decode(json.loads(store.step(run_id, 1)["result"]))


# -- bodies --------------------------------------------------------------------------------------------

def test_a_body_declared_over_the_limit_is_not_read_and_is_a_response_error_naming_size_and_limit(
        store, service):
    run_id = waiting_step(store, service.url("/declared"))
    assert run_once(store, worker="capped", timeout=PATIENT) == 1
    row = store.step(run_id, 1)
    assert len(row["result"]) < 4096  # what is stored is the verdict, not the body
    value = result_of(store, run_id)
    assert value.record == "response-error"
    status, headers, body = value.values[0].values
    # The status and headers are the server's, as they came; the body says why it is not there.
    assert status == 200 and headers["x-reply"] == "big"
    assert headers["content-length"] == str(MAX_BODY + 1024 * 1024)
    assert str(MAX_BODY + 1024 * 1024) in body and str(MAX_BODY) in body and "10 MiB" in body
    assert "not read" in body
    assert drive(store, run_id) == "completed"
    assert store.get_run(run_id).result.startswith("(response-error (response 200 ")


def test_a_body_without_a_length_is_read_up_to_the_limit_exactly_and_no_further(store, service):
    endless = waiting_step(store, service.url("/endless"))
    exact = waiting_step(store, service.url("/exact"))
    assert run_once(store, worker="capped", timeout=PATIENT) == 2
    value = result_of(store, endless)
    assert value.record == "response-error"
    status, headers, body = value.values[0].values
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert f"more than {MAX_BODY} bytes" in body and "10 MiB" in body
    # The connector hung up after the limit: the server could not write much more than that
    # (what the sockets' buffers take), never the 80 MiB it had.
    with service.lock:
        written = service.sent["/endless"]
    assert written < 3 * MAX_BODY
    # A body of exactly the limit is kept whole.
    kept = result_of(store, exact)
    assert kept.record == "response" and len(kept.values[2]) == MAX_BODY


def test_the_limit_is_a_setting_of_the_process_and_a_bad_one_keeps_the_default(store, service, monkeypatch,
                                                                                caplog):
    from flowmetal.connectors.http_request import MAX_BODY_SETTING, RequestConnector
    monkeypatch.setenv(MAX_BODY_SETTING, "1000")
    run_id = waiting_step(store, service.url("/exact"))  # MAX_BODY bytes: far over 1000
    assert run_once(store, worker="capped", timeout=PATIENT) == 1
    assert len(store.step(run_id, 1)["result"]) < 4096
    value = result_of(store, run_id)
    assert value.record == "response-error"
    assert "limit of 1000 bytes" in value.values[0].values[2]
    assert drive(store, run_id) == "completed"  # an error value the program handles
    monkeypatch.setenv(MAX_BODY_SETTING, "lots")
    with caplog.at_level("WARNING", logger="flowmetal.connectors.http_request"):
        with RequestConnector(store, worker="default") as connector:
            assert connector.max_body == MAX_BODY
    assert any(MAX_BODY_SETTING in r.getMessage() and "'lots'" in r.getMessage() for r in caplog.records)


# -- time ------------------------------------------------------------------------------------------------

def test_a_whole_exchange_has_a_total_time_limit_even_while_bytes_keep_coming(store, service):
    run_id = waiting_step(store, service.url("/trickle"))
    # Each byte comes well within the read timeout; the whole answer never comes within 1 s.
    assert run_once(store, worker="hurried", timeout=PATIENT, total=1.0) == 1
    value = result_of(store, run_id)
    assert value.record == "connection-error"
    assert "timed out" in value.values[0] and "within 1 s" in value.values[0]


def test_a_slow_answer_is_sent_once_while_its_lease_is_renewed_by_two_connectors_sharing_the_store(
        store, service, connectors):
    # The lease (1 s) runs out four times over while the server takes 4 s to answer.
    connectors.start("first", lease=1.0, timeout=PATIENT)
    connectors.start("second", lease=1.0, timeout=PATIENT)
    run_id = waiting_step(store, service.url("/slow?4"))
    assert drive(store, run_id, until=20) == "completed"
    assert service.count("/slow") == 1
    value = result_of(store, run_id)
    assert value.record == "response" and value.values[2] == "slow but sure"
    assert store.step(run_id, 1)["claimed_by"] in ("first", "second")


def test_slow_services_do_not_hold_up_a_fast_one(store, service, connectors):
    slow = 20  # more than the old pool's 8 threads
    connectors.start("busy", timeout=PATIENT)
    held = [waiting_step(store, service.url("/hold")) for _ in range(slow)]
    assert service.wait_for("/hold", slow), f"only {service.count('/hold')} of {slow} slow requests were sent"
    fast = waiting_step(store, service.url("/fast"))
    assert drive(store, fast) == "completed"
    assert result_of(store, fast).values[2] == "fast"
    # It went through while every slow request was still waiting for its answer.
    assert [store.step(run_id, 1)["status"] for run_id in held] == ["claimed"] * slow
    service.release.set()
    for run_id in held:
        assert drive(store, run_id) == "completed"
        assert result_of(store, run_id).values[2] == "released"


# -- claims ----------------------------------------------------------------------------------------------

def test_only_the_connector_holding_a_claim_renews_it_and_records_its_result(store, service):
    run_id = waiting_step(store, service.url("/fast"))
    key = (run_id, 1)
    (claimed,) = store.claim_steps(list(ENDPOINTS), "late", lease=0.2)
    assert store.renew_step_leases("late", [key], 0.2) == {key}
    assert store.renew_step_leases("stranger", [key], 30) == set()
    # A lapsed lease nobody has taken over is still its holder's to record ...
    time.sleep(0.3)
    assert store.renew_step_leases("late", [key], 0.2) == {key}
    time.sleep(0.3)
    # ... until another connector claims the step: then that claim alone records it.
    (again,) = store.claim_steps(list(ENDPOINTS), "heir", lease=30)
    assert again["key"] == claimed["key"]
    assert store.renew_step_leases("late", [key], 30) == set()
    late = json.dumps({"r": ["http.request", "dns-error", ["message"], ["late"]]})
    assert not store.complete_claimed_step(run_id, 1, "late", late)
    assert not store.fail_claimed_step(run_id, 1, "late", "too late")
    heir = json.dumps({"r": ["http.request", "dns-error", ["message"], ["heir"]]})
    assert store.complete_claimed_step(run_id, 1, "heir", heir)
    assert not store.complete_claimed_step(run_id, 1, "heir", late)  # once
    assert result_of(store, run_id).values == ("heir",)
    assert store.get_run(run_id).wake_at is not None  # the run is woken to take it


def test_a_request_whose_run_is_cancelled_in_flight_is_abandoned_and_frees_its_place(store, service,
                                                                                       connectors):
    connectors.start("single", concurrency=1, lease=0.6, timeout=PATIENT)
    held = waiting_step(store, service.url("/hold"))
    assert service.wait_for("/hold", 1)
    fast = waiting_step(store, service.url("/fast"))
    assert store.request_cancel(held) == "cancelled"
    # The cancelled step's request gives up its place at the next renewal: the fast one goes.
    assert drive(store, fast) == "completed"
    assert store.step(held, 1)["status"] == "cancelled" and store.step(held, 1)["result"] is None
    assert service.count("/hold") == 1


def test_stopping_gives_the_steps_in_flight_back_for_another_connector(path, store, service):
    run_id = waiting_step(store, service.url("/hold"))
    stop = threading.Event()
    own = SQLiteStore(path)
    thread = threading.Thread(target=serve_requests, args=(own,),
                              kwargs={"worker": "leaving", "poll": 0.02, "stop": stop, "grace": 0.3,
                                      "timeout": PATIENT}, daemon=True)
    thread.start()
    try:
        assert service.wait_for("/hold", 1)
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        stop.set()
        own.close()
    row = store.step(run_id, 1)
    assert (row["status"], row["claimed_by"], row["lease_until"]) == ("pending", None, None)
    # Taken at once by the next connector, with no lease to wait out, and sent again.
    service.release.set()
    with RequestConnector(store, worker="next", timeout=PATIENT) as heir:
        assert heir.run_once() == 1
    assert service.count("/hold") == 2
    assert drive(store, run_id) == "completed"
    assert result_of(store, run_id).values[2] == "released"
