"""`POST /api/runs/{id}/signals/{name}` on a real `flowmetal serve` (127.0.0.1): a signal
wakes the run waiting for it, a repeat with its Idempotency-Key is delivered once, and each
refusal (400, 404, 409, 413, 415, 422) changes nothing in the store."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from flowmetal.runtime.store import SQLiteStore
from server_kit import Serve, refused
from tests.waits import until as _until

DOOR = """\
(defpackage door
  (require [flowmetal.signal :refer [receive!]])
  (defn main [] [(receive! "knock") (receive! "knock")]))
"""


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    with Serve(tmp_path_factory.mktemp("signals") / "store.db") as serve:
        yield serve


def start(serve: Serve) -> str:
    response = httpx.post(f"{serve.url}/api/runs", json={"sources": {"door.flow": DOOR}, "entry": "door/main"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run_of(serve: Serve, run_id: str) -> dict:
    return httpx.get(f"{serve.url}/api/runs/{run_id}").json()


def received(serve: Serve, run_id: str) -> list[dict]:
    trace = httpx.get(f"{serve.url}/api/runs/{run_id}/trace").json()
    return [e for e in trace if e["kind"] == "signal-received"]


def send(serve: Serve, run_id: str, name: str, body, key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{serve.url}/api/runs/{run_id}/signals/{name}", content=json.dumps(body), headers=headers)


def test_a_signal_wakes_the_run_and_a_repeat_with_its_key_is_delivered_once(serve):
    run_id = start(serve)
    _until(lambda: run_of(serve, run_id)["status"] == "waiting")
    first = send(serve, run_id, "knock", {"who": "ann"}, key="k1")
    assert (first.status_code, first.json()) == (202, {"run": run_id, "name": "knock", "seq": 1})
    again = send(serve, run_id, "knock", {"who": "ann"}, key="k1")
    assert (again.status_code, again.json()) == (202, first.json())
    _until(lambda: received(serve, run_id))
    # Received by the first receive!, and then again after it was consumed: still only once.
    assert send(serve, run_id, "knock", {"who": "ann"}, key="k1").json() == first.json()
    time.sleep(0.3)  # the serve's executors would have had the time to take a second one
    assert [(e["name"], e["body"], e["signal"]) for e in received(serve, run_id)] == [("knock", {"who": "ann"}, 1)]
    assert run_of(serve, run_id)["status"] == "waiting"
    # The same key for another signal: refused, nothing queued.
    refused(serve, "POST", f"/api/runs/{run_id}/signals/knock", 422, "was used for another signal",
            json={"who": "eve"}, headers={"Idempotency-Key": "k1"})
    second = send(serve, run_id, "knock", "bob")
    assert (second.status_code, second.json()) == (202, {"run": run_id, "name": "knock", "seq": 2})
    done = _until(lambda: (r := run_of(serve, run_id))["status"] == "completed" and r)
    assert done["result"] == '[{"who" "ann"} "bob"]'
    assert [e["body"] for e in received(serve, run_id)] == [{"who": "ann"}, "bob"]
    assert len(SQLiteStore(serve.store).signals(run_id)) == 2
    # Ended: no signal can reach it (a retry of an earlier one still answers as it did).
    refused(serve, "POST", f"/api/runs/{run_id}/signals/knock", 409, "has ended (completed)", json=1)
    assert send(serve, run_id, "knock", {"who": "ann"}, key="k1").json() == first.json()


def test_signals_to_no_run_or_malformed_are_refused_and_change_nothing(serve):
    run_id = start(serve)
    _until(lambda: run_of(serve, run_id)["status"] == "waiting")
    path = f"/api/runs/{run_id}/signals/knock"
    refused(serve, "POST", "/api/runs/no-such-run/signals/knock", 404, "no run `no-such-run`", json=1)
    refused(serve, "POST", path, 400, "malformed JSON", content=b"{nope",
            headers={"Content-Type": "application/json"})
    refused(serve, "POST", path, 400, "the body is empty", content=b"",
            headers={"Content-Type": "application/json"})
    refused(serve, "POST", path, 400, "the number 1e999 is too large for a float", content=b"[1e999]",
            headers={"Content-Type": "application/json"})
    refused(serve, "POST", path, 415, "this API takes JSON bodies", content=b'"hi"',
            headers={"Content-Type": "text/plain"})
    refused(serve, "POST", path, 413, "the limit is", content=b'"' + b"x" * (1 << 20) + b'"',
            headers={"Content-Type": "application/json"})
    refused(serve, "POST", f"/api/runs/{run_id}/signals/two%20words", 400, '"two words" is not a signal name',
            json=1)
    refused(serve, "POST", f"/api/runs/{run_id}/signals/.hidden", 400, "is not a signal name", json=1)
    refused(serve, "POST", path, 400, "`Idempotency-Key` must be", json=1, headers={"Idempotency-Key": "x" * 256})
    # The step the run waits on is a signal's to answer, not a connector's.
    [wait] = [e["step"] for e in httpx.get(f"{serve.url}/api/runs/{run_id}/trace").json()
              if e["kind"] == "step-requested"]
    refused(serve, "POST", f"/api/steps/{run_id}/{wait}/complete", 409, "a signal answers it", json={"result": 1})
    assert run_of(serve, run_id)["status"] == "waiting"
    # The documented name characters are all taken.
    assert send(serve, run_id, "Knock_2.v-1", None).status_code == 202
