"""`flowmetal serve` as a real process on a free port: runs started over the API complete
through callbacks and connector results; the bearer token; the live event stream; a clean
stop on SIGTERM and SIGINT; and `kill -9` while runs wait for a callback and sleep, then a
new process on the same store finishing each run once, with the right value."""

from __future__ import annotations

import http.server
import json
import signal
import threading
import time
from collections import Counter

import httpx
import pytest

from flowmetal.runtime.store import SQLiteStore
from server_kit import SOURCES, Serve, store_state
from tests.waits import until

FINAL = ("completed", "failed", "cancelled")


class Api:
    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.client = httpx.Client(base_url=serve.url, headers=serve.auth(), timeout=30)

    def start(self, entry: str, args: list[str] = ()) -> str:
        response = self.client.post("/api/runs", json={"sources": SOURCES, "entry": entry, "args": list(args)})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, run_id: str) -> dict:
        response = self.client.get(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def trace(self, run_id: str) -> list[dict]:
        return self.client.get(f"/api/runs/{run_id}/trace").json()

    def callback_url(self, run_id: str) -> str:
        return until(lambda: next((e["message"] for e in self.trace(run_id) if e["kind"] == "log"
                                   and "/callback/" in e["message"]), None))

    def finished(self, run_id: str, timeout: float = 15.0) -> dict:
        return until(lambda: (lambda r: r if r["status"] in FINAL else None)(self.run(run_id)), timeout=timeout)

    def waiting(self, run_id: str) -> dict:
        return until(lambda: (lambda r: r if r["status"] == "waiting" else None)(self.run(run_id)))


def api_store_run(path, run_id: str):
    store = SQLiteStore(path)
    try:
        return store.get_run(run_id)
    finally:
        store.close()


def check_log(trace: list[dict]) -> None:
    """A complete log: seqs 1..n in order, each step requested and completed once, one end."""
    assert [e["seq"] for e in trace] == list(range(1, len(trace) + 1))
    for kind in ("step-requested", "step-completed"):
        counts = Counter(e["step"] for e in trace if e["kind"] == kind)
        assert all(n == 1 for n in counts.values()), (kind, counts)
    assert sum(e["kind"] in ("run-completed", "run-failed", "run-cancelled") for e in trace) == 1


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "store.db"
    with Serve(path) as serve:
        yield serve


@pytest.fixture(scope="module")
def api(server):
    return Api(server)


def test_a_run_waiting_for_a_callback_completes_when_it_is_posted(api):
    run_id = api.start("shop/hook")
    url = api.callback_url(run_id)
    assert url.startswith(api.serve.url + "/callback/")
    api.waiting(run_id)
    response = httpx.post(url, content="approved")
    assert (response.status_code, response.json()) == (200, {"status": "delivered"})
    run = api.finished(run_id)
    assert (run["status"], run["result"]) == ("completed", '"got approved"')
    before = store_state(api.serve.store)
    second = httpx.post(url, content="approved twice")
    assert second.status_code == 409 and "delivered already" in second.json()["error"]
    assert store_state(api.serve.store) == before
    check_log(api.trace(run_id))
    assert httpx.post(api.serve.url + "/callback/unknown-token", content="x").status_code == 404


def test_a_connector_completes_a_step_over_the_api(api):
    run_id = api.start("shop/buy", ['"tea"', "3"])
    response = api.client.post("/api/steps/claim", json={"endpoints": ["shop/price!"], "wait": 10,
                                                          "worker": "test"})
    assert response.status_code == 200
    (step,) = response.json()["steps"]
    assert step["run_id"] == run_id and step["args"] == {"item": "tea", "qty": 3, "tags": ["fast", "cheap"]}
    complete = f"/api/steps/{run_id}/{step['step']}/complete"
    api.waiting(run_id)
    before = store_state(api.serve.store)
    wrong = api.client.post(complete, json={"result": {"price": 12.5, "size": "large", "note": "x"}})
    assert wrong.status_code == 422 and "result.price: expected int?" in wrong.json()["error"]
    assert store_state(api.serve.store) == before
    assert api.run(run_id)["status"] == "waiting"
    right = api.client.post(complete, json={"result": {"price": 12, "size": "large", "note": "x"}})
    assert right.status_code == 200
    run = api.finished(run_id)
    assert (run["status"], run["result"]) == ("completed", "15")
    again = api.client.post(complete, json={"result": {"price": 99, "size": "small", "note": "y"}})
    assert again.status_code == 409 and again.json()["error"]
    assert api.finished(run_id)["result"] == "15"
    check_log(api.trace(run_id))


def test_the_event_stream_is_live(api):
    run_id = api.start("shop/hook")
    url = api.callback_url(run_id)
    api.waiting(run_id)
    seen: list[tuple[float, str, dict]] = []
    with api.client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        block: dict = {}
        delivered_at = None
        for line in stream.iter_lines():
            if line:
                field, _, value = line.partition(": ")
                block[field] = value
                continue
            if not block:
                continue
            seen.append((time.monotonic(), block["event"], json.loads(block["data"])))
            if block["event"] == "step-requested" and seen[-1][2]["endpoint"] == "http.callback/get-callback!":
                time.sleep(0.3)  # the stream stays open, idle, while the run waits
                delivered_at = time.monotonic()
                assert httpx.post(url, content="live").status_code == 200
            if block["event"] == "end":
                break
            block = {}
    kinds = [k for _, k, _ in seen]
    assert kinds[0] == "run-started" and kinds[-2:] == ["run-completed", "end"]
    completed_at = next(t for t, k, _ in seen if k == "run-completed")
    assert delivered_at is not None and completed_at > delivered_at
    assert seen[-2][2]["result"] == '"got live"'
    assert [d for _, k, d in seen[:-1]] == api.trace(run_id)


def test_serve_runs_the_http_request_connector(api):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"pong " + (self.headers.get("Idempotency-Key") or "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        program = ('(defpackage fetch\n  (require [http.request :refer [get! response? response-body]])\n'
                   '  (defn main [url : str?] : str?\n    (let [r (get! url)]\n'
                   '      (if (response? r) (response-body r) "failed"))))\n')
        response = api.client.post("/api/runs", json={"sources": {"fetch.flow": program}, "entry": "fetch/main",
                                                       "args": [json.dumps(f"http://127.0.0.1:{site.server_port}/")]})
        assert response.status_code == 201, response.text
        run = api.finished(response.json()["id"])
        assert run["status"] == "completed", run
        assert run["result"].startswith('"pong ') and response.json()["id"] in run["result"]
    finally:
        site.shutdown()


def test_the_bearer_token_and_the_public_url(tmp_path):
    env = {"FLOWMETAL_TOKEN": "tok-123", "FLOWMETAL_PUBLIC_URL": "http://hooks.example.test:9999"}
    with Serve(tmp_path / "store.db", env=env) as serve:
        bare = httpx.Client(base_url=serve.url)
        for path in ("/api/runs", "/api/openapi.json"):
            response = bare.get(path)
            assert response.status_code == 401 and "Bearer" in response.json()["error"]
        assert bare.get("/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
        response = bare.post("/api/runs", json={"sources": SOURCES, "entry": "shop/hook"})
        assert response.status_code == 401 and store_state(serve.store)["runs"] == []
        api = Api(serve)
        assert api.client.get("/api/runs").status_code == 200
        run_id = api.start("shop/hook")
        url = api.callback_url(run_id)
        assert url.startswith("http://hooks.example.test:9999/callback/")
        api.waiting(run_id)
        # The callback is authorised by its own token, not the API's.
        response = bare.post("/callback/" + url.rsplit("/", 1)[1], content="ok")
        assert response.status_code == 200
        assert api.finished(run_id)["result"] == '"got ok"'


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_with_a_long_poll_and_a_stream_open(tmp_path, sig):
    serve = Serve(tmp_path / "store.db").start()
    api = Api(serve)
    run_id = api.start("shop/hook")
    api.waiting(run_id)
    results = {}

    def long_poll():
        try:
            results["poll"] = api.client.post("/api/steps/claim", json={"endpoints": ["x/y!"], "wait": 60}).status_code
        except httpx.HTTPError as error:
            results["poll"] = type(error).__name__

    def stream():
        try:
            with httpx.stream("GET", f"{serve.url}/api/runs/{run_id}/events", timeout=60) as s:
                results["stream"] = sum(1 for _ in s.iter_lines())
        except httpx.HTTPError as error:
            results["stream"] = type(error).__name__
    threads = [threading.Thread(target=long_poll), threading.Thread(target=stream)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    started = time.monotonic()
    code, out, err = serve.stop(sig)
    assert code == 0, err
    assert time.monotonic() - started < 10
    assert "stopping" in out and "Traceback" not in err
    for t in threads:
        t.join(10)
    assert set(results) == {"poll", "stream"}
    # The run is intact, waiting, and a new server finishes it.
    with Serve(serve.store, port=serve.port) as again:
        api = Api(again)
        assert api.run(run_id)["status"] == "waiting"
        assert httpx.post(api.callback_url(run_id), content="after").status_code == 200
        assert api.finished(run_id)["result"] == '"got after"'


def test_kill_9_while_runs_wait_for_a_callback_and_sleep_then_a_new_serve_finishes_them_once(tmp_path):
    path = tmp_path / "store.db"
    first = Serve(path).start()
    api = Api(first)
    hooked = api.start("shop/hook")
    napping = api.start("shop/nap-then-hook", ["3000"])
    sleeper = api.start("shop/nap", ["2500"])
    hook_url = api.callback_url(hooked)
    nap_url = api.callback_url(napping)
    for run_id in (hooked, napping, sleeper):
        api.waiting(run_id)
    until(lambda: all(any(e["kind"] == "timer-set" for e in api.trace(r)) for r in (napping, sleeper)))
    first.kill9()
    killed_at = time.time()
    for run_id in (hooked, napping, sleeper):  # killed while each waited: two of them mid-sleep
        run = api_store_run(path, run_id)
        assert run.status == "waiting" and run.owner is None
        if run_id != hooked:
            assert run.wake_at > killed_at

    second = Serve(path, port=first.port).start()  # the same port: the callback URLs stay valid
    try:
        api = Api(second)
        # A callback delivered while its run sleeps is kept, and returned when the run asks.
        assert httpx.post(nap_url, content="early").status_code == 202
        assert httpx.post(hook_url, content="late").status_code == 200
        assert httpx.post(hook_url, content="late again").status_code == 409
        results = {r: api.finished(r) for r in (hooked, napping, sleeper)}
        assert {r: (v["status"], v["result"]) for r, v in results.items()} == {
            hooked: ("completed", '"got late"'), napping: ("completed", '"got early"'),
            sleeper: ("completed", "2500")}
        for run_id in (hooked, napping, sleeper):
            trace = api.trace(run_id)
            check_log(trace)
        for run_id in (napping, sleeper):
            trace = api.trace(run_id)
            assert [e["kind"] for e in trace].count("timer-fired") == 1
            woke = next(e for e in trace if e["kind"] == "timer-fired")
            due = next(e for e in trace if e["kind"] == "timer-set")["due"]
            assert woke["time"] >= due
        assert [m["message"] for m in api.trace(sleeper) if m["kind"] == "log"] == ["sleeping", "awake"]
        time.sleep(0.5)  # nothing more happens: each result was applied once
        for run_id in (hooked, napping, sleeper):
            assert sum(e["kind"] == "run-completed" for e in api.trace(run_id)) == 1
    finally:
        code, _, err = second.stop()
        assert code == 0, err
