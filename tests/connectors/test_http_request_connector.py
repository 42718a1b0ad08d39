"""The HTTP request connector against a real HTTP server on 127.0.0.1: runs calling
`get! post! put! delete!` get a `response`, a `response-error`, a `connection-error` or a
`dns-error` back as values; every request carries `Idempotency-Key: RUN:STEP`; a step
whose connector died after sending is sent again, with the same key, and its result is
applied once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from connector_helpers import path, store  # noqa: F401 - fixtures
from connector_helpers import closed_port, drive, recording_server, start_run
from flowmetal.connectors.http_request import ENDPOINTS, RequestConnector, perform, run_once, serve_requests
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import SQLiteStore
from flowmetal.runtime.values import RecordValue, decode

PROGRAM = """\
(defpackage web
  (require [http.request :refer [get! post! put! delete! response? error? dns-error? connection-error?
                                 response-error? response-status response-error-response]])
  (defn fetch [url : str?] : (union? [response? error?])
    (get! url :headers {"x-test" "yes"}))
  (defn send [url : str? body : str?] : (union? [response? error?])
    (post! url :data body :headers {"content-type" "text/plain"}))
  (defn replace [url : str? body : str?] : (union? [response? error?])
    (put! url :data body))
  (defn remove [url : str?] : (union? [response? error?])
    (delete! url))
  (defn outcome [url : str?] : str?
    (let [r (get! url)]
      (cond
        (response? r) (str "ok " (response-status r))
        (response-error? r) (str "http " (response-status (response-error-response r)))
        (dns-error? r) "dns"
        (connection-error? r) "connection"
        :else "other"))))
"""
SOURCES = {"web.flow": PROGRAM}
FAST = httpx.Timeout(5.0, connect=2.0)


def lit(text: str) -> str:
    return json.dumps(text)


@pytest.fixture
def server():
    with recording_server() as state:
        yield state


@pytest.fixture
def connector(path):
    """The connector's loop in a thread, on its own connection to the store."""
    stop = threading.Event()
    own = SQLiteStore(path)
    thread = threading.Thread(target=serve_requests, args=(own,),
                              kwargs={"worker": "http-test", "lease": 10, "poll": 0.02, "stop": stop,
                                      "timeout": FAST}, daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    own.close()


def result_of(store: SQLiteStore, run_id: str, step: int = 1):
    row = store.step(run_id, step)
    return decode(json.loads(row["result"]))


def test_a_2xx_answer_is_a_response_with_status_headers_and_body(store, server, connector):
    run_id = start_run(store, SOURCES, "web/fetch", [lit(server.url("/ok"))])
    assert drive(store, run_id) == "completed"
    value = result_of(store, run_id)
    assert isinstance(value, RecordValue) and (value.package, value.record) == ("http.request", "response")
    status, headers, body = value.values
    assert status == 200 and body == "hello GET"
    assert headers["x-reply"] == "hello" and headers["content-type"].startswith("text/plain")
    assert all(name == name.lower() for name in headers)
    assert store.get_run(run_id).result.startswith('(response 200 {')
    (seen,) = server.requests_to("/ok")
    assert seen.method == "GET"
    assert seen.headers["idempotency-key"] == f"{run_id}:1"
    assert seen.headers["x-test"] == "yes"
    assert seen.body == ""


def test_post_put_delete_send_the_data_and_headers_with_the_steps_key(store, server, connector):
    posted = start_run(store, SOURCES, "web/send", [lit(server.url("/echo")), lit("ping ✓")])
    put = start_run(store, SOURCES, "web/replace", [lit(server.url("/echo")), lit("new")])
    deleted = start_run(store, SOURCES, "web/remove", [lit(server.url("/echo"))])
    for run_id in (posted, put, deleted):
        assert drive(store, run_id) == "completed"
    status, headers, body = result_of(store, posted).values
    assert (status, body, headers["x-method"]) == (201, "ping ✓", "POST")
    assert result_of(store, put).values[2] == "new"
    by_key = {s.headers["idempotency-key"]: s for s in server.requests_to("/echo")}
    assert set(by_key) == {f"{posted}:1", f"{put}:1", f"{deleted}:1"}
    assert (by_key[f"{posted}:1"].method, by_key[f"{posted}:1"].body) == ("POST", "ping ✓")
    assert by_key[f"{posted}:1"].headers["content-type"] == "text/plain"
    assert (by_key[f"{put}:1"].method, by_key[f"{put}:1"].body) == ("PUT", "new")
    assert (by_key[f"{deleted}:1"].method, by_key[f"{deleted}:1"].body) == ("DELETE", "")


def test_a_500_is_a_response_error_holding_the_whole_answer(store, server, connector):
    run_id = start_run(store, SOURCES, "web/fetch", [lit(server.url("/fail"))])
    assert drive(store, run_id) == "completed"
    value = result_of(store, run_id)
    assert value.record == "response-error"
    (inner,) = value.values
    assert inner.record == "response"
    status, headers, body = inner.values
    assert (status, body, headers["x-reply"]) == (500, "broken", "sorry")
    assert store.get_run(run_id).result.startswith("(response-error (response 500 ")


def test_the_program_tells_the_outcomes_apart(store, server, connector):
    cases = {
        server.url("/ok"): '"ok 200"',
        server.url("/fail"): '"http 500"',
        server.url("/redirect"): '"http 302"',  # redirects are not followed: the program decides
        f"http://127.0.0.1:{closed_port()}/": '"connection"',
        "http://no-such-host.flowmetal.invalid/": '"dns"',
    }
    runs = {start_run(store, SOURCES, "web/outcome", [lit(url)]): expected for url, expected in cases.items()}
    for run_id, expected in runs.items():
        assert drive(store, run_id) == "completed"
        assert store.get_run(run_id).result == expected


def test_a_closed_port_is_a_connection_error(store, server, connector):
    port = closed_port()
    run_id = start_run(store, SOURCES, "web/fetch", [lit(f"http://127.0.0.1:{port}/x")])
    assert drive(store, run_id) == "completed"
    value = result_of(store, run_id)
    assert value.record == "connection-error"
    assert str(port) in value.values[0] and "refused" in value.values[0].lower()


def test_a_name_that_does_not_resolve_is_a_dns_error(store, server, connector):
    run_id = start_run(store, SOURCES, "web/fetch", [lit("http://no-such-host.flowmetal.invalid/")])
    assert drive(store, run_id) == "completed"
    value = result_of(store, run_id)
    assert value.record == "dns-error"
    assert "no-such-host.flowmetal.invalid" in value.values[0]


def test_a_timeout_is_a_connection_error(store, server):
    server.hang_first.set()
    run_id = start_run(store, SOURCES, "web/fetch", [lit(server.url("/hang"))])
    Executor(store).run_once(run_id)
    assert run_once(store, worker="impatient", timeout=httpx.Timeout(0.3)) == 1
    assert drive(store, run_id) == "completed"
    value = result_of(store, run_id)
    assert value.record == "connection-error" and "timed out" in value.values[0]


def test_a_step_reclaimed_after_its_connector_died_is_sent_again_with_the_same_key(store, server):
    run_id = start_run(store, SOURCES, "web/send", [lit(server.url("/echo")), lit("once")])
    Executor(store).run_once(run_id)
    assert store.get_run(run_id).status == "waiting"
    # A connector claims the step, sends the request, and dies before recording the answer.
    (claimed,) = store.claim_steps(list(ENDPOINTS), "doomed", lease=0.3)
    async def send() -> None:
        async with httpx.AsyncClient(timeout=FAST) as client:
            await perform(client, claimed["endpoint"], claimed["args"], claimed["key"])
    asyncio.run(send())
    # While its lease holds, nobody else takes the step.
    assert run_once(store, worker="heir", timeout=FAST) == 0
    time.sleep(0.4)
    assert run_once(store, worker="heir", timeout=FAST) == 1
    sent = server.requests_to("/echo")
    assert [s.headers["idempotency-key"] for s in sent] == [f"{run_id}:1", f"{run_id}:1"]
    assert [s.body for s in sent] == ["once", "once"]
    # The dead connector's answer arriving late changes nothing: one result, applied once.
    assert not store.complete_step(run_id, 1, json.dumps({"r": ["http.request", "dns-error", ["message"], ["x"]]}))
    assert drive(store, run_id) == "completed"
    assert result_of(store, run_id).values[0] == 201
    kinds = [(e.kind, e.step) for e in store.events(run_id) if e.step == 1]
    assert kinds == [("step-requested", 1), ("step-completed", 1)]


def test_a_connector_process_killed_mid_request_is_replaced_and_the_request_resent(path, store, server):
    server.hang_first.set()  # the first request is never answered: the connector is killed waiting
    run_id = start_run(store, SOURCES, "web/fetch", [lit(server.url("/hang"))])
    Executor(store).run_once(run_id)
    script = ("import sys\n"
              "from flowmetal.runtime.store import SQLiteStore\n"
              "from flowmetal.connectors.http_request import serve_requests\n"
              "serve_requests(SQLiteStore(sys.argv[1]), worker='doomed', lease=float(sys.argv[2]), poll=0.02)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), "1.0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert server.arrived.wait(15), proc.stderr.read1().decode() if proc.poll() is not None else "no request"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert store.step(run_id, 1)["status"] == "claimed" and store.step(run_id, 1)["claimed_by"] == "doomed"
    with RequestConnector(store, worker="heir", timeout=FAST) as heir:
        deadline = time.monotonic() + 10
        while heir.run_once() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the dead connector's lease runs out
    assert drive(store, run_id) == "completed"
    sent = server.requests_to("/hang")
    assert len(sent) == 2
    assert {s.headers["idempotency-key"] for s in sent} == {f"{run_id}:1"}
    status, _, body = result_of(store, run_id).values
    assert (status, body) == (200, "done at last")
    assert [e.kind for e in store.events(run_id) if e.step == 1] == ["step-requested", "step-completed"]


def test_bad_arguments_fail_the_step_and_never_stop_the_loop(store, server):
    run_id = start_run(store, SOURCES, "web/fetch", [lit(server.url("/ok"))])
    Executor(store).run_once(run_id)
    store.conn.execute("UPDATE steps SET args=? WHERE run_id=?", (json.dumps({"url": 42}), run_id))
    assert run_once(store, worker="strict", timeout=FAST) == 1
    assert store.step(run_id, 1)["status"] == "failed"
    assert drive(store, run_id) == "failed"
    assert "url" in store.get_run(run_id).error
    # A URL the client cannot use is a value, not a crash.
    other = start_run(store, SOURCES, "web/fetch", [lit("ftp://example.invalid/file")])
    Executor(store).run_once(other)
    assert run_once(store, worker="strict", timeout=FAST) == 1
    assert drive(store, other) == "completed"
    assert result_of(store, other).record == "connection-error"
