"""The HTTP API in process, case by case: each route's answers, and every refused request
answered with its 4xx, a JSON error naming the problem, and the store exactly as it was
(every row of every table compared before and after).

The application runs in this process (aiohttp's test server); runs are advanced by an
`Executor` driven by the test, so each state (a run waiting on a connector, on a
callback) is reached on purpose. tests/server/test_serve_process.py does the same
against a real `flowmetal serve`."""

from __future__ import annotations

import json
import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flowmetal.lang.resolve import STDLIB
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import SQLiteStore
from flowmetal.server.app import MAX_BODY, make_app
from server_kit import SOURCES, store_state

FINAL = ("completed", "failed", "cancelled")


class Harness:
    def __init__(self, client: TestClient, path, token: str | None = None) -> None:
        self.client = client
        self.path = path
        self.store = SQLiteStore(path)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, **kw):
        headers = {**self.headers, **kw.pop("headers", {})}
        if "data" in kw and path.startswith("/api/"):  # raw bytes, said to be JSON as the API asks
            headers.setdefault("Content-Type", "application/json")
        response = await self.client.request(method, path, headers=headers, **kw)
        text = await response.text()
        return response.status, (json.loads(text) if text and response.content_type == "application/json"
                                 else text), response

    async def refused(self, method: str, path: str, status: int, says: str, **kw) -> dict:
        """The request is answered `status` with a JSON error containing `says`; nothing changed."""
        before = store_state(self.path)
        got, body, response = await self.call(method, path, **kw)
        assert got == status, (got, body)
        assert response.content_type == "application/json"
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
        assert says in body["error"], body["error"]
        assert store_state(self.path) == before, f"{method} {path} answered {status} but changed the store"
        return body

    async def start(self, entry: str, args: list[str] = ()) -> str:
        status, body, _ = await self.call("POST", "/api/runs", json={"sources": SOURCES, "entry": entry,
                                                                      "args": list(args)})
        assert status == 201, body
        return body["id"]

    def advance(self, run_id: str) -> str:
        """Advance the run in this process until it waits or ends; its status."""
        executor = Executor(self.store, public_url="http://callbacks.test")
        for _ in range(50):
            executor.run_once(run_id)
            status = self.store.get_run(run_id).status
            if status in FINAL or status == "waiting" and self.store.get_run(run_id).wake_at is None:
                return status
        return self.store.get_run(run_id).status

    def token(self, run_id: str) -> str:
        (log,) = [e for e in self.store.events(run_id) if e.kind == "log"]
        return log.data["message"].rsplit("/", 1)[1]


@pytest.fixture
async def api(tmp_path):
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    async with TestClient(TestServer(make_app(str(path)))) as client:
        harness = Harness(client, path)
        yield harness
        harness.store.close()


@pytest.fixture
async def secured(tmp_path):
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    async with TestClient(TestServer(make_app(str(path), token="s3cret"))) as client:
        harness = Harness(client, path)
        yield harness
        harness.store.close()


# -- callbacks ------------------------------------------------------------------------------------------

async def test_a_callback_is_delivered_once_and_wakes_its_run(api):
    run_id = await api.start("shop/hook")
    assert api.advance(run_id) == "waiting"
    token = api.token(run_id)
    status, body, _ = await api.call("POST", f"/callback/{token}", data="approved ✓".encode())
    assert (status, body) == (200, {"status": "delivered"})
    await api.refused("POST", f"/callback/{token}", 409, "delivered already", data=b"again")
    assert api.advance(run_id) == "completed"
    assert api.store.get_run(run_id).result == '"got approved ✓"'
    await api.refused("POST", f"/callback/{token}", 409, "delivered already", data=b"and again")


async def test_callback_errors(api):
    run_id = await api.start("shop/hook")
    api.advance(run_id)
    token = api.token(run_id)
    await api.refused("POST", "/callback/no-such-token", 404, "no callback")
    await api.refused("POST", f"/callback/{token}", 413, "limit", data=b"x" * (MAX_BODY + 1))

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b"y" * 65536
    await api.refused("POST", f"/callback/{token}", 413, "limit", data=chunks())
    await api.refused("POST", f"/callback/{token}", 400, "not utf-8 text", data=b"\xff\xfe",
                      headers={"Content-Type": "text/plain; charset=utf-8"})
    await api.refused("POST", f"/callback/{token}", 415, "unknown charset", data=b"x",
                      headers={"Content-Type": "text/plain; charset=no-such-charset"})
    await api.refused("GET", f"/callback/{token}", 405, "not allowed")
    # Exactly 1 MiB is accepted.
    status, _, _ = await api.call("POST", f"/callback/{token}", data=b"z" * MAX_BODY)
    assert status == 200
    assert api.advance(run_id) == "completed"


# -- runs --------------------------------------------------------------------------------------------------

FAMILY = """\
(defpackage family
  (require [flowmetal.run :refer [start-run! await-run!]])
  (defn double [n : int?] : int? (* 2 n))
  (defn main [n : int?] : int? (+ 1 (await-run! (start-run! double n)))))
"""


async def test_a_child_run_carries_its_parent_and_its_trace_says_so(api):
    status, body, _ = await api.call("POST", "/api/runs", json={"sources": {"family.flow": FAMILY},
                                                                "entry": "family/main", "args": ["20"]})
    assert status == 201, body
    parent = body["id"]
    api.advance(parent)
    (child,) = api.store.children(parent)
    assert api.advance(child.id) == "completed" and api.advance(parent) == "completed"
    status, runs, _ = await api.call("GET", "/api/runs")
    assert status == 200 and {r["id"]: r["parent"] for r in runs} == {parent: None, child.id: parent}
    status, one, _ = await api.call("GET", f"/api/runs/{child.id}")
    assert status == 200 and (one["parent"], one["result"]) == (parent, "40")
    status, parent_run, _ = await api.call("GET", f"/api/runs/{parent}")
    assert (parent_run["parent"], parent_run["result"]) == (None, "41")
    status, trace, _ = await api.call("GET", f"/api/runs/{parent}/trace")
    assert [e["child"] for e in trace if e["kind"] == "child-started"] == [child.id]
    status, trace, _ = await api.call("GET", f"/api/runs/{child.id}/trace")
    assert trace[0]["kind"] == "run-started" and trace[0]["parent"] == parent


async def test_a_client_follows_the_runs_with_the_change_cursor(api):
    first = await api.start("shop/buy", ['"tea"', "3"])
    status, runs, response = await api.call("GET", "/api/runs")
    cursor = response.headers["Flowmetal-Cursor"]
    assert status == 200 and [r["id"] for r in runs] == [first] and cursor.isdigit()
    status, runs, response = await api.call("GET", f"/api/runs?since={cursor}")
    assert (status, runs, response.headers["Flowmetal-Cursor"]) == (200, [], cursor)  # nothing changed
    second = await api.start("shop/buy", ['"jam"', "1"])
    api.store.request_cancel(first)
    status, runs, response = await api.call("GET", f"/api/runs?since={cursor}")
    moved = response.headers["Flowmetal-Cursor"]
    assert status == 200 and [(r["id"], r["status"]) for r in runs] == [(second, "pending"), (first, "cancelled")]
    assert int(moved) > int(cursor)
    status, runs, response = await api.call("GET", f"/api/runs?since={moved}")
    assert (runs, response.headers["Flowmetal-Cursor"]) == ([], moved)
    status, runs, _ = await api.call("GET", "/api/runs?since=0")
    assert [r["id"] for r in runs] == [second, first]


async def test_the_listing_is_narrowed_by_status_entry_and_the_last_started(api):
    teas = [await api.start("shop/buy", [f'"tea-{n}"', "1"]) for n in range(3)]
    api.store.request_cancel(teas[0])

    async def ids(query: str) -> list[str]:
        status, runs, response = await api.call("GET", f"/api/runs?{query}")
        assert status == 200 and response.headers["Flowmetal-Cursor"].isdigit(), runs
        return [r["id"] for r in runs]
    assert await ids("status=pending") == teas[1:]
    assert await ids("status=cancelled,failed") == [teas[0]]
    assert await ids("last=2") == teas[1:]
    assert await ids("entry=shop/buy&status=pending&last=1") == [teas[2]]
    assert await ids("entry=buy") == teas                     # a name alone: that function of any package
    assert await ids("entry=other/buy") == []
    # The changes after a cursor, narrowed the same way; the cursor is the one without.
    status, changed, response = await api.call("GET", "/api/runs?since=0")
    status, narrowed, narrowed_response = await api.call("GET", "/api/runs?since=0&status=pending&last=1")
    assert [r["id"] for r in narrowed] == [r["id"] for r in changed if r["status"] == "pending"][-1:]
    assert narrowed_response.headers["Flowmetal-Cursor"] == response.headers["Flowmetal-Cursor"]
    for query, message in (("status=done", "`status` must be run states"), ("status=", "`status` must be"),
                           ("last=0", "`last` must be a number of runs"), ("last=x", "`last` must be"),
                           ("entry=shop/", "`entry` must be a function"), ("entry=/buy", "`entry` must be")):
        status, body, _ = await api.call("GET", f"/api/runs?{query}")
        assert status == 400 and message in body["error"], (query, body)


async def test_a_run_is_created_listed_and_read(api):
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    status, runs, _ = await api.call("GET", "/api/runs")
    stored = api.store.get_run(run_id)
    assert status == 200 and runs == [
        {"id": run_id, "entry": "shop/buy", "status": "pending", "result": None, "error": None,
         "args": ['"tea"', "3"], "code_hash": stored.code_hash, "created": stored.created,
         "updated": stored.updated, "last_seq": 1, "parent": None}]
    status, recent, _ = await api.call("GET", f"/api/runs?since={stored.updated}")
    assert status == 200 and [r["id"] for r in recent] == [run_id]
    status, recent, _ = await api.call("GET", f"/api/runs?since={stored.updated + 1}")
    assert status == 200 and recent == []
    for bad in ("soon", "nan", "inf", "-", "1e999"):
        await api.refused("GET", f"/api/runs?since={bad}", 400, "`since` must be a change cursor")
    await api.refused("GET", f"/api/runs?since={2 ** 63}", 400, "past the largest change cursor")
    status, sources, _ = await api.call("GET", f"/api/runs/{run_id}/sources")
    # Its own files first, then the standard packages it requires, as installed when it started.
    assert status == 200 and sources == {**SOURCES, **{
        f"@stdlib/{name}": (STDLIB / name).read_text(encoding="utf-8")
        for name in ("flowmetal.log.flow", "flowmetal.time.flow", "http.callback.flow")}}
    assert list(sources)[0] == "shop.flow"
    assert (await api.call("GET", "/api/runs/nope/sources"))[0] == 404
    status, run, _ = await api.call("GET", f"/api/runs/{run_id}")
    assert status == 200 and run["args"] == ['"tea"', "3"] and run["status"] == "pending"
    assert api.store.get_sources(api.store.get_run(run_id).program) == sources
    status, trace, _ = await api.call("GET", f"/api/runs/{run_id}/trace")
    assert status == 200 and [e["kind"] for e in trace] == ["run-started"]
    assert trace[0]["entry"] == "shop/buy" and trace[0]["args"] == ['"tea"', "3"] and trace[0]["seq"] == 1
    assert set(trace[0]) >= {"seq", "time", "kind", "step", "line"}
    api.advance(run_id)
    status, trace, _ = await api.call("GET", f"/api/runs/{run_id}/trace?after=1")
    assert [e["kind"] for e in trace] == ["step-requested"] and trace[0]["endpoint"] == "shop/price!"


async def test_creating_a_run_refuses_bad_requests(api):
    good = {"sources": SOURCES, "entry": "shop/buy", "args": ['"tea"', "3"]}
    post = "/api/runs"
    await api.refused("POST", post, 400, "malformed JSON", data=b'{"sources": ')
    await api.refused("POST", post, 400, "malformed JSON", data=b"")
    await api.refused("POST", post, 400, "must be a JSON object", json=[1, 2])
    await api.refused("POST", post, 400, "unknown field `extra`", json={**good, "extra": 1})
    await api.refused("POST", post, 400, "`sources`", json={"entry": "shop/buy"})
    await api.refused("POST", post, 400, "`sources`", json={**good, "sources": {}})
    await api.refused("POST", post, 400, "text of `shop.flow` must be a string", json={**good, "sources": {"shop.flow": 1}})
    await api.refused("POST", post, 400, "`entry`", json={"sources": SOURCES})
    await api.refused("POST", post, 400, "`entry`", json={**good, "entry": " \t\n"})
    await api.refused("POST", post, 400, "only dots and spaces", json={**good, "sources": {" ": SOURCES["shop.flow"]}})
    await api.refused("POST", post, 400, "`@stdlib/` holds the standard packages",
                      json={**good, "sources": {**SOURCES, "@stdlib/flowmetal.time.flow": "(defpackage flowmetal.time)"}})
    await api.refused("POST", post, 400, "`args`", json={**good, "args": "3"})
    await api.refused("POST", post, 400, "`args`", json={**good, "args": [3]})
    await api.refused("POST", post, 400, "malformed JSON", data=b'{"sources": NaN}')
    await api.refused("POST", post, 400, "nested deeper", data=b"[" * 150 + b"]" * 150)
    await api.refused("POST", post, 400, "nested too deeply", data=b"[" * 200_000 + b"]" * 200_000)
    await api.refused("POST", post, 400, "not valid Unicode", data=b'{"entry": "\\ud800"}')
    await api.refused("POST", post, 400, "not UTF-8", data=b'{"entry": "\xff"}')
    await api.refused("POST", post, 413, "limit", json={**good, "sources": {"a.flow": "x" * MAX_BODY}})
    body = await api.refused("POST", post, 422, "the program has errors",
                             json={"sources": {"a.flow": '(defpackage a\n  (defn f [] : int? "x"))'},
                                   "entry": "a/f"})
    assert body["diagnostics"] and all(re.fullmatch(r"a\.flow:\d+:\d+: FM\d+: .+", d) for d in body["diagnostics"])
    assert body["diagnostics"][0].startswith("a.flow:2:")
    await api.refused("POST", post, 422, "no function `nothing`", json={**good, "entry": "shop/nothing"})
    await api.refused("POST", post, 422, "takes 2 arguments, 1 given", json={**good, "args": ['"tea"']})
    await api.refused("POST", post, 422, "must be int?", json={**good, "args": ['"tea"', '"three"']})
    await api.refused("POST", post, 422, "argument", json={**good, "args": ['"tea"', "(+ 1 2)"]})
    await api.refused("POST", post, 422, "argument", json={**good, "args": ['"tea', "3"]})
    await api.refused("POST", post, 422, "ambiguous",
                      json={"sources": {**SOURCES, "b.flow": "(defpackage b (defn g [] 1))"}, "entry": "hook"})
    # The bare name works when the program has one package.
    status, _, _ = await api.call("POST", post, json={"sources": SOURCES, "entry": "hook"})
    assert status == 201


async def test_unknown_runs_and_routes(api):
    for path in ("/api/runs/nope", "/api/runs/nope/trace", "/api/runs/nope/events"):
        await api.refused("GET", path, 404, "no run `nope`")
    await api.refused("POST", "/api/runs/nope/cancel", 404, "no run `nope`")
    await api.refused("GET", "/api/nothing/here", 404, "no route")
    await api.refused("GET", "/elsewhere", 404, "no route")
    body = await api.refused("DELETE", "/api/runs", 405, "not allowed")
    assert "GET" in body["error"] and "POST" in body["error"]
    run_id = await api.start("shop/hook")
    await api.refused("GET", f"/api/runs/{run_id}/trace?after=x", 400, "`after`")
    await api.refused("GET", f"/api/runs/{run_id}/trace?after=", 400, "`after`")
    await api.refused("GET", f"/api/runs/{run_id}/trace?after=1", 400, "`Last-Event-ID`",
                      headers={"Last-Event-ID": ""})
    # The header is the one that counts, but a malformed `after` beside it is refused all the same.
    await api.refused("GET", f"/api/runs/{run_id}/trace?after=-1", 400, "`after`", headers={"Last-Event-ID": "1"})
    await api.refused("GET", f"/api/runs/{run_id[:4]}", 404, "no run")  # ids are whole, not prefixes


async def test_cancel(api):
    run_id = await api.start("shop/hook")
    api.advance(run_id)
    status, body, _ = await api.call("POST", f"/api/runs/{run_id}/cancel")
    assert (status, body) == (200, {"id": run_id, "status": "cancelled"})
    assert api.store.get_run(run_id).status == "cancelled"
    await api.refused("POST", f"/api/runs/{run_id}/cancel", 409, "ended already")


async def test_cancelling_a_run_that_ends_meanwhile_says_how_it_ended(api, monkeypatch):
    """A worker in another connection fails the run between the handler's look at it and the
    cancel: the answer is 409 with how it ended, not 202 with a status no cancel has."""
    run_id = await api.start("shop/pings")
    assert api.advance(run_id) == "waiting"
    request_cancel = SQLiteStore.request_cancel

    def ended_first(store, run):
        other = SQLiteStore(api.path)
        assert other.fail_step(run, 1, "the pinger is down")
        executor = Executor(other, public_url="http://callbacks.test")
        for _ in range(20):
            executor.run_once(run)
        assert other.get_run(run).status == "failed"
        other.close()
        return request_cancel(store, run)
    monkeypatch.setattr(SQLiteStore, "request_cancel", ended_first)
    status, body, _ = await api.call("POST", f"/api/runs/{run_id}/cancel")
    assert status == 409 and "ended already (failed)" in body["error"], (status, body)


# -- steps -------------------------------------------------------------------------------------------------

async def test_a_client_claiming_steps_serves_their_endpoints_while_it_claims(api):
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    assert api.advance(run_id) == "waiting"
    assert api.store.unserved(run_id) == ["shop/price!"]
    # A client polling for another endpoint serves that one, not this.
    status, body, _ = await api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/refund!"],
                                                                       "worker": "refunds"})
    assert (status, body) == (200, {"steps": []})
    assert [(p["kind"], p["endpoints"]) for p in api.store.presence()] == [("api", ["shop/refund!"])]
    assert api.store.unserved(run_id) == ["shop/price!"]
    # Its step given back after a claim, the run is still served by the claimant, as long as it polls.
    status, body, _ = await api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/price!"],
                                                                       "worker": "prices"})
    assert status == 200 and len(body["steps"]) == 1
    assert api.store.release_steps("prices", [(run_id, 1)]) == 1
    assert api.store.step(run_id, 1)["status"] == "pending"
    assert api.store.unserved(run_id) == []


async def test_a_connector_claims_and_completes_a_step(api):
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    assert api.advance(run_id) == "waiting"
    status, body, _ = await api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/price!"]})
    assert status == 200
    (step,) = body["steps"]
    assert step == {"run_id": run_id, "step": 1, "endpoint": "shop/price!", "key": f"{run_id}:1",
                    "args": {"item": "tea", "qty": 3, "tags": ["fast", "cheap"]},
                    "literals": {"item": '"tea"', "qty": "3", "tags": "[:fast :cheap]"}, "epoch": 1}
    # Claimed: a second claim (within the lease) gets nothing.
    status, body, _ = await api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/price!"], "wait": 0.3})
    assert (status, body) == (200, {"steps": []})
    complete = f"/api/steps/{run_id}/1/complete"
    await api.refused("POST", complete, 422, "result.price: expected int?",
                      json={"result": {"price": "12", "size": "large", "note": ""}})
    await api.refused("POST", complete, 422, "one of: small large",
                      json={"result": {"price": 12, "size": "huge", "note": ""}})
    await api.refused("POST", complete, 422, "lacks `note`", json={"result": {"price": 12, "size": "large"}})
    await api.refused("POST", complete, 422, "returns offer?", json={"result": 12})
    await api.refused("POST", complete, 422, "returns offer?", json={"literal": "12"})
    status, body, _ = await api.call("POST", complete, json={"result": {"price": 12, "size": "+large+",
                                                                         "note": "ok"}})
    assert (status, body) == (200, {"run_id": run_id, "step": 1, "status": "completed"})
    await api.refused("POST", complete, 409, "completed already",
                      json={"result": {"price": 13, "size": "large", "note": "ok"}})
    await api.refused("POST", f"/api/steps/{run_id}/1/fail", 409, "completed already", json={"error": "x"})
    assert api.advance(run_id) == "completed"
    assert api.store.get_run(run_id).result == "15"
    completed = [e for e in api.store.events(run_id) if e.kind == "step-completed"]
    assert [e.data["result"] for e in completed] == ['(offer 12 +large+ "ok")']
    await api.refused("POST", complete, 409, "completed already",
                      json={"result": {"price": 13, "size": "large", "note": "ok"}})


async def test_a_result_may_be_a_literal_and_a_failure_fails_the_run(api):
    first = await api.start("shop/pings")
    api.advance(first)
    status, _, _ = await api.call("POST", f"/api/steps/{first}/1/complete", json={"literal": "20"})
    assert status == 200
    assert api.advance(first) == "waiting"
    status, body, _ = await api.call("POST", f"/api/steps/{first}/2/fail", json={"error": "the pinger is down"})
    assert (status, body) == (200, {"run_id": first, "step": 2, "status": "failed"})
    await api.refused("POST", f"/api/steps/{first}/2/fail", 409, "failed already", json={"error": "again"})
    await api.refused("POST", f"/api/steps/{first}/2/complete", 409, "failed already", json={"literal": "1"})
    assert api.advance(first) == "failed"
    assert "the pinger is down" in api.store.get_run(first).error


async def test_step_requests_refuse_bad_input(api):
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    api.advance(run_id)
    claim = "/api/steps/claim"
    await api.refused("POST", claim, 400, "`endpoints`", json={})
    await api.refused("POST", claim, 400, "`endpoints`", json={"endpoints": []})
    await api.refused("POST", claim, 400, "`endpoints`", json={"endpoints": "shop/price!"})
    await api.refused("POST", claim, 400, "`endpoints`", json={"endpoints": [1]})
    for name in ("", "price!", "shop/", "/price!", "shop/price! ", "shop/pri ce!", "shop/\nprice!"):
        await api.refused("POST", claim, 400, "not an endpoint name", json={"endpoints": ["shop/price!", name]})
    await api.refused("POST", claim, 400, "`lease`", json={"endpoints": ["shop/price!"], "lease": 0})
    await api.refused("POST", claim, 400, "`lease`", json={"endpoints": ["shop/price!"], "lease": "30"})
    await api.refused("POST", claim, 400, "`wait`", json={"endpoints": ["shop/price!"], "wait": 61})
    await api.refused("POST", claim, 400, "`wait`", json={"endpoints": ["shop/price!"], "wait": True})
    await api.refused("POST", claim, 400, "`limit`", json={"endpoints": ["shop/price!"], "limit": 1.5})
    status, body, _ = await api.call("POST", claim, json={"endpoints": ["x/y!"], "limit": 5.0, "lease": None})
    assert (status, body) == (200, {"steps": []})  # 5.0 is an integer in JSON
    await api.refused("POST", claim, 400, "`worker`", json={"endpoints": ["shop/price!"], "worker": ""})
    await api.refused("POST", claim, 400, "unknown field `endpoint`", json={"endpoint": ["shop/price!"]})
    await api.refused("POST", claim, 400, "malformed JSON", data=b"{endpoints: []}")
    await api.refused("POST", claim, 413, "limit", data=b" " * (MAX_BODY + 10))
    complete = f"/api/steps/{run_id}/1/complete"
    good = {"result": {"price": 1, "size": "small", "note": ""}}
    await api.refused("POST", f"/api/steps/nope/1/complete", 404, "no run `nope`", json=good)
    await api.refused("POST", f"/api/steps/{run_id}/9/complete", 404, "has no step 9", json=good)
    await api.refused("POST", f"/api/steps/{run_id}/x/complete", 404, "no route", json=good)
    await api.refused("POST", f"/api/steps/{run_id}/99999999999999999999/complete", 404, "no route", json=good)
    await api.refused("POST", complete, 400, "one of the two", json={})
    await api.refused("POST", complete, 400, "one of the two", json={**good, "literal": "1"})
    await api.refused("POST", complete, 400, "`literal` must be a string", json={"literal": 1})
    await api.refused("POST", complete, 400, "unknown field `value`", json={"value": 1})
    await api.refused("POST", complete, 400, "malformed JSON", data=b"{")
    await api.refused("POST", complete, 400, "must be a JSON object", json="x")
    await api.refused("POST", complete, 422, "argument", json={"literal": "(offer"})
    await api.refused("GET", complete, 405, "not allowed")
    fail = f"/api/steps/{run_id}/1/fail"
    await api.refused("POST", fail, 400, "`error`", json={})
    await api.refused("POST", fail, 400, "`error`", json={"error": "  "})
    await api.refused("POST", f"/api/steps/nope/1/fail", 404, "no run", json={"error": "x"})
    await api.refused("POST", f"/api/steps/{run_id}/5/fail", 404, "no step 5", json={"error": "x"})
    # The step is still open: a good result is taken.
    status, _, _ = await api.call("POST", complete, json=good)
    assert status == 200


async def test_a_result_named_with_its_worker_is_recorded_only_under_that_workers_claim(api):
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    assert api.advance(run_id) == "waiting"
    good = {"result": {"price": 12, "size": "large", "note": "ok"}}
    complete, fail = f"/api/steps/{run_id}/1/complete", f"/api/steps/{run_id}/1/fail"
    # Not claimed yet: a worker's result has no claim to stand on.
    body = await api.refused("POST", complete, 409, "no longer claimed by this connector",
                             json={**good, "worker": "prices"})
    assert body["reason"] == "lost"
    # Claimed by one whose lease runs out at once, then taken over by another.
    status, body, _ = await api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/price!"],
                                                                       "worker": "slow", "lease": 1})
    assert status == 200 and len(body["steps"]) == 1
    api.store.renew_step_leases("slow", [(run_id, 1)], -1)  # as if the lease ran out
    assert len(api.store.claim_steps(["shop/price!"], "quick", 30)) == 1
    body = await api.refused("POST", complete, 409, "claimed by `quick`", json={**good, "worker": "slow"})
    assert body["reason"] == "lost"
    body = await api.refused("POST", fail, 409, "claimed by `quick`", json={"error": "late", "worker": "slow"})
    assert body["reason"] == "lost"
    await api.refused("POST", complete, 400, "`worker`", json={**good, "worker": ""})
    await api.refused("POST", fail, 400, "`worker`", json={"error": "x", "worker": 7})
    status, body, _ = await api.call("POST", complete, json={**good, "worker": "quick"})
    assert (status, body) == (200, {"run_id": run_id, "step": 1, "status": "completed"})
    assert api.store.step(run_id, 1)["status"] == "completed"


async def test_a_cancelled_runs_steps_take_no_result(api):
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    api.advance(run_id)
    await api.call("POST", f"/api/runs/{run_id}/cancel")
    await api.refused("POST", f"/api/steps/{run_id}/1/complete", 409, "cancelled already",
                      json={"result": {"price": 1, "size": "small", "note": ""}})
    status, body, _ = await api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/price!"]})
    assert body == {"steps": []}


async def test_the_long_poll_returns_a_step_as_soon_as_it_is_requested(api):
    import asyncio
    import time
    run_id = await api.start("shop/buy", ['"tea"', "3"])
    started = time.monotonic()
    poll = asyncio.ensure_future(api.call("POST", "/api/steps/claim", json={"endpoints": ["shop/price!"],
                                                                             "wait": 10}))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await asyncio.get_running_loop().run_in_executor(None, api.advance, run_id)
    status, body, _ = await poll
    assert status == 200 and [s["step"] for s in body["steps"]] == [1]
    assert time.monotonic() - started < 5


# -- authorisation -----------------------------------------------------------------------------------------

async def test_the_bearer_token_guards_the_api_not_callbacks(secured):
    api = secured
    for headers, says in (({}, "no `Authorization: Bearer` token"), ({"Authorization": "Bearer wrong"}, "wrong"),
                          ({"Authorization": "Basic czNjcmV0"}, "wrong"), ({"Authorization": "s3cret"}, "wrong")):
        for method, path in (("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/api/openapi.json"),
                             ("POST", "/api/steps/claim"), ("GET", "/api/runs/x/events"), ("GET", "/api/none")):
            body = await api.refused(method, path, 401, says, headers=headers, json={"sources": SOURCES,
                                                                                     "entry": "shop/hook"})
            assert "FLOWMETAL_TOKEN" in body["error"]
    _, _, response = await api.call("GET", "/api/runs")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    api.headers = {"Authorization": "Bearer s3cret"}
    run_id = await api.start("shop/hook")
    api.advance(run_id)
    status, body, _ = await api.call("POST", f"/callback/{api.token(run_id)}", data=b"ok", headers={})
    assert (status, body) == (200, {"status": "delivered"})
    api.headers = {}
    await api.refused("GET", f"/api/runs/{run_id}", 401, "Bearer")


# -- the event stream -----------------------------------------------------------------------------------------

async def test_the_event_stream_sends_the_log_then_live_events_then_the_end(api):
    import asyncio
    run_id = await api.start("shop/hook")
    api.advance(run_id)
    response = await api.client.get(f"/api/runs/{run_id}/events")
    assert response.status == 200 and response.content_type == "text/event-stream"
    seen: list[dict] = []

    async def read_until(kind: str) -> None:
        block: dict = {}
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line:
                field, _, value = line.partition(": ")
                block[field] = value
                continue
            if block:
                seen.append(block)
                if block.get("event") == kind:
                    return
                block = {}
    await asyncio.wait_for(read_until("step-requested"), 10)  # the wait on the callback: the log so far
    count = len(seen)
    status, _, _ = await api.call("POST", f"/callback/{api.token(run_id)}", data=b"go")
    assert status == 200
    await asyncio.get_running_loop().run_in_executor(None, api.advance, run_id)
    await asyncio.wait_for(read_until("end"), 10)
    assert len(seen) > count
    kinds = [b["event"] for b in seen]
    assert kinds[0] == "run-started" and kinds[-2:] == ["run-completed", "end"]
    events = [json.loads(b["data"]) for b in seen[:-1]]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [int(b["id"]) for b in seen[:-1]] == [e["seq"] for e in events]
    assert events == (await api.call("GET", f"/api/runs/{run_id}/trace"))[1]
    assert json.loads(seen[-1]["data"]) == {"status": "completed"}
    assert await response.content.read() == b""
    # Reconnecting with Last-Event-ID gives only the rest.
    response = await api.client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": str(len(events) - 1)})
    text = await response.text()
    assert "run-started" not in text and "run-completed" in text and "event: end" in text


# -- the OpenAPI document --------------------------------------------------------------------------------------

async def test_the_openapi_document_is_served(api):
    from flowmetal.server.openapi import document
    status, body, _ = await api.call("GET", "/api/openapi.json")
    assert status == 200 and body == json.loads(json.dumps(document()))
    assert body["openapi"].startswith("3.")
