"""Property-based fuzzing of the HTTP API (hypothesis), against the application in process:
random methods, paths (real run ids and step numbers among them), headers and bodies
(random JSON, random bytes, and near-valid requests with a field or two gone wrong).

Whatever comes in: never a 5xx; every error is a JSON object with an `error` string; a
refused request (4xx) leaves every row of every table as it was; without the right bearer
token nothing under /api/ is answered but 401; a body that does not say it is JSON is
never taken (415)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import SQLiteStore
from flowmetal.server.app import make_app
from server_kit import SOURCES, store_state

TOKEN = "fuzz-token"


class World:
    """The app, its store with runs in every interesting state, and a loop to call it from."""

    def __init__(self, path) -> None:
        self.path = path
        self.store = SQLiteStore(path)
        self.loop = asyncio.new_event_loop()
        self.client = TestClient(TestServer(make_app(str(path), token=TOKEN)), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())
        self.runs: list[str] = []
        self.tokens: list[str] = []
        self.steps: list[tuple[str, str]] = []
        self.refresh()

    def refresh(self) -> None:
        """Make sure runs wait on a connector step and on a callback (earlier examples may
        have completed or cancelled them)."""
        open_steps = self.store.pending_steps()
        known = set(self.steps)
        self.steps += [(s["run_id"], str(s["step"])) for s in open_steps if (s["run_id"], str(s["step"])) not in known]
        if not any(s["endpoint"] == "shop/price!" for s in open_steps):
            self._start("shop/buy", ['"tea"', "3"])
        if not any(s["endpoint"] == "http.callback/get-callback!" for s in open_steps):
            run_id = self._start("shop/hook")
            self.steps.append((run_id, "3"))
            (log,) = [e for e in self.store.events(run_id) if e.kind == "log"]
            self.tokens.append(log.data["message"].rsplit("/", 1)[1])

    def _start(self, entry: str, args: list[str] = ()) -> str:
        from flowmetal.runtime.program import code_hash
        run_id = self.store.create_run(entry, list(args), self.store.put_sources(SOURCES), code_hash(SOURCES))
        executor = Executor(self.store, public_url="http://callbacks.test")
        for _ in range(10):
            executor.run_once(run_id)
            if self.store.get_run(run_id).status == "waiting":
                break
        self.runs.append(run_id)
        return run_id

    def request(self, method: str, path: str, headers: dict, body: bytes | None):
        async def go():
            response = await self.client.request(method, path, headers=headers, data=body)
            return response.status, response.content_type, await response.read()
        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()
        self.store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("fuzz") / "store.db")
    yield w
    w.close()


# -- strategies -----------------------------------------------------------------------------------------

text = st.text(max_size=20)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12)

ENDPOINTS = ["shop/price!", "shop/ping!", "http.callback/get-callback!", "x/y!"]
FLOW_TEXTS = [SOURCES["shop.flow"], "(defpackage a (defn f [] 1))", "(defpackage a (defn f [x : int?] : int? x))",
              "(defpackage a (defn f [] : int? \"s\"))", "(defpackage", ")))", "", "(defpackage a (require [b]))"]
LITERALS = ["1", '"tea"', "[:fast :cheap]", "+small+", "(offer 1 +small+ \"n\")", "(+ 1 2)", '"', "{:a", "nil"]


def near(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """JSON bodies near a valid one: valid (each field drawn from its own strategy), or with
    fields left out, replaced by random JSON, or one more field."""
    valid = st.fixed_dictionaries(fields)
    mutated = st.builds(lambda b, e: {**b, **e},
                        st.fixed_dictionaries({}, optional={k: v | json_values for k, v in fields.items()}),
                        st.dictionaries(st.sampled_from(["extra", "wait", "result", "literal", "error"]),
                                        json_values, max_size=1))
    return st.one_of(valid, valid, mutated).map(lambda body: json.dumps(body).encode())


RUN_BODIES = near({"sources": st.fixed_dictionaries({"shop.flow": st.sampled_from(FLOW_TEXTS)}),
                   "entry": st.sampled_from(["shop/buy", "shop/hook", "a/f", "f", "hook", "x/"]) | text,
                   "args": st.sampled_from([['"tea"', "3"], [], ["2500"]])
                   | st.lists(st.sampled_from(LITERALS), max_size=3)})
CLAIM_BODIES = near({"endpoints": st.lists(st.sampled_from(ENDPOINTS) | text, max_size=3),
                     "lease": st.sampled_from([1, 30, 0, -1, 3601, 1e300]),
                     "wait": st.sampled_from([0, 0.01, -1, 61]),
                     "limit": st.sampled_from([1, 10, 0, 101, 2.5])})
COMPLETE_BODIES = (near({"result": st.sampled_from([12, {"price": 1, "size": "small", "note": "n"}, None, "x",
                                                    {"price": 1, "size": "huge", "note": "n"}])})
                   | near({"literal": st.sampled_from(LITERALS)}))
FAIL_BODIES = near({"error": text})
BODIES = st.one_of(
    st.none(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    RUN_BODIES, CLAIM_BODIES, COMPLETE_BODIES, FAIL_BODIES,
    st.sampled_from([b"{", b"NaN", b'{"a": Infinity}', b'"\\ud800"', b"[" * 300, b"\xff\xfe"]),
)
JSON_TYPES = ["application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"]
CONTENT_TYPES = st.sampled_from(JSON_TYPES * 3 + [None, "text/plain; charset=latin-1", "text/plain; charset=nope",
                                                  "application/x-www-form-urlencoded",
                                                  "application/json; charset=latin-1"])
KEYS = st.sampled_from([None] * 6 + ["retry-1", "retry-2", "", "x" * 256, "tab\there"]) | header_text


@st.composite
def requests(draw, world: World):
    # Indices into the world's lists, whose lengths grow: the draws stay the same shape.
    pick = lambda pool: st.integers(0, 15).map(lambda i: pool[-1 - i % len(pool)])  # noqa: E731
    run_id = draw(pick(world.runs) | st.sampled_from(["nope", "", "%00", "ü"]) | text)
    step_run, step = draw(pick(world.steps) | st.tuples(st.just(run_id), st.sampled_from(
        ["0", "1", "2", "x", "-1", "99999999999999999999"]) | st.integers(0, 10**6).map(str)))
    token = draw(pick(world.tokens) | st.just("nope") | text)
    method, path, suited = draw(st.sampled_from([
        ("POST", "/api/runs", RUN_BODIES),
        ("GET", "/api/runs", None),
        ("GET", f"/api/runs/{run_id}", None),
        ("GET", f"/api/runs/{run_id}/trace", None),
        ("GET", f"/api/runs/{run_id}/trace?after={step}", None),
        ("POST", f"/api/runs/{run_id}/cancel", None),
        ("POST", "/api/steps/claim", CLAIM_BODIES),
        ("POST", f"/api/steps/{step_run}/{step}/complete", COMPLETE_BODIES),
        ("POST", f"/api/steps/{step_run}/{step}/fail", FAIL_BODIES),
        ("POST", f"/callback/{token}", st.binary(max_size=64) | st.text(max_size=20).map(str.encode)),
        ("GET", "/api/openapi.json", None),
        ("GET", "/", None), ("GET", "/api", None), ("GET", "/api/", None), ("POST", "/api/steps", None),
        ("POST", "/callback/", None), ("GET", f"/api/{draw(text)}", None),
    ]))
    path = "/" + "/".join(part.replace("?", "%3F").replace("#", "%23") if "?after=" not in part else part
                          for part in path.lstrip("/").split("/"))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    body = draw(suited if suited is not None and draw(st.integers(0, 9)) < 8 else BODIES)
    auth = draw(st.sampled_from(["right"] * 8 + ["none", "wrong"]))
    headers = {"right": {"Authorization": f"Bearer {TOKEN}"}, "none": {},
               "wrong": {"Authorization": draw(st.sampled_from(["Bearer ", "Basic ", "bearer ", ""]))
                         + draw(header_text.filter(lambda t: t.strip() != TOKEN))}}[auth]
    content_type = draw(CONTENT_TYPES)
    if content_type:
        headers["Content-Type"] = content_type
    key = draw(KEYS)
    if key is not None:
        headers["Idempotency-Key"] = key
    return method, path, headers, body, auth


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_no_request_gets_a_5xx_or_changes_the_store_when_refused(world, data):
    world.refresh()
    method, path, headers, body, auth = data.draw(requests(world))
    before = store_state(world.path)
    status, content_type, raw = world.request(method, path, headers, body)
    assert status < 500, (method, path, body, raw[:500])
    if status >= 400:
        assert content_type == "application/json", (status, raw[:200])
        error = json.loads(raw)
        assert isinstance(error, dict) and isinstance(error["error"], str) and error["error"], error
        assert store_state(world.path) == before, (method, path, body, status, error)
    if auth != "right" and path.startswith("/api"):
        assert status == 401, (method, path, status)
    elif path.startswith("/api/") and body and headers.get("Content-Type") not in JSON_TYPES:
        assert status in (404, 405, 415), (method, path, headers, status)


def test_the_fuzzer_reaches_successes_of_every_kind(world):
    """The strategies are not all noise: valid requests of each kind succeed here too."""
    ok = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    world.refresh()
    status, _, raw = world.request("POST", "/api/runs", ok, json.dumps({"sources": SOURCES, "entry": "hook"}).encode())
    assert status == 201
    status, _, raw = world.request("POST", "/api/steps/claim", ok, json.dumps({"endpoints": ENDPOINTS}).encode())
    steps = json.loads(raw)["steps"]
    assert status == 200 and steps
    price = next(s for s in steps if s["endpoint"] == "shop/price!")
    status, _, _ = world.request("POST", f"/api/steps/{price['run_id']}/{price['step']}/complete", ok,
                                 json.dumps({"result": {"price": 1, "size": "small", "note": "n"}}).encode())
    assert status == 200
    status, _, _ = world.request("POST", f"/callback/{world.tokens[-1]}", {}, b"body")
    assert status in (200, 409)
