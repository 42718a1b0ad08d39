"""`POST /api/runs` with an `Idempotency-Key`, against a real `flowmetal serve`: a retried
request starts one run and is answered with it (201, then 200 with the same body), however
many retries race; a key reused for another request is refused; keys are bounded; and they
are kept in the store, so a retry after the server restarts (or died between recording the
key and the run) still starts one run."""

from __future__ import annotations

import sqlite3
import threading

import httpx
import pytest

from flowmetal.runtime.store import SCHEMA_VERSION, SQLiteStore
from flowmetal.server.app import fingerprint
from server_kit import FINAL, SOURCES, Serve, store_state
from test_serve_process import until

REQUEST = {"sources": SOURCES, "entry": "shop/nap", "args": ["1"]}


def post(serve: Serve, key: str | bytes | None, body: dict = REQUEST) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return httpx.post(serve.url + "/api/runs", json=body, headers=headers, timeout=30)


def runs(serve: Serve) -> list:
    return store_state(serve.store)["runs"]


def settled(serve: Serve) -> dict:
    """The store once no run can move on by itself (each has ended or waits on a callback or a
    connector), so that a refused request's store can be compared with the one before."""
    store = SQLiteStore(serve.store)
    try:
        until(lambda: all(r.status in FINAL or r.status == "waiting" and r.wake_at is None
                          for r in store.list_runs()))
    finally:
        store.close()
    return store_state(serve.store)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Serve(tmp_path_factory.mktemp("keys") / "store.db") as serve:
        yield serve


def test_a_retry_with_the_same_key_answers_the_same_run(server):
    first = post(server, "order-1")
    assert first.status_code == 201, first.text
    run_id = first.json()["id"]
    for _ in range(3):
        again = post(server, "order-1")
        assert (again.status_code, again.json()) == (200, {"id": run_id})
        assert again.headers["Location"] == first.headers["Location"] == f"/api/runs/{run_id}"
    # `args` left out is the same request as `[]`.
    bare = {"sources": SOURCES, "entry": "shop/pings"}
    assert post(server, "order-2", bare).status_code == 201
    assert post(server, "order-2", {**bare, "args": []}).status_code == 200
    assert len(runs(server)) == 2
    # Without a key, each request is a new run.
    assert post(server, None).json()["id"] != post(server, None).json()["id"]


def test_racing_retries_start_one_run(server):
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(post(server, "race"))) for _ in range(8)]
    before = len(runs(server))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(runs(server)) == before + 1


def test_a_key_reused_for_another_request_is_refused(server):
    run_id = post(server, "order-3").json()["id"]
    before = settled(server)
    for other in ({**REQUEST, "args": ["2"]}, {**REQUEST, "entry": "shop/pings", "args": []},
                  {**REQUEST, "sources": {"shop.flow": SOURCES["shop.flow"] + "\n"}}):
        response = post(server, "order-3", other)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert "Idempotency-Key `order-3`" in error and run_id in error and "another request" in error
    assert store_state(server.store) == before


def test_a_key_is_1_to_255_printable_ascii_characters(server):
    before = settled(server)
    for key in ("", "k" * 256, "clé".encode(), "tab\there"):
        response = post(server, key)
        assert response.status_code == 400, (key, response.text)
        assert "`Idempotency-Key` must be 1 to 255 printable ASCII characters" in response.json()["error"]
    response = httpx.post(server.url + "/api/runs", json=REQUEST, timeout=30,
                          headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    assert response.status_code == 400 and "more than one" in response.json()["error"]
    # Checked before the body: a bad body with a good key records nothing either.
    response = post(server, "order-4", {"entry": "shop/nap"})
    assert response.status_code == 400 and "`sources`" in response.json()["error"]
    response = post(server, "order-4", {**REQUEST, "entry": "shop/nowhere"})
    assert response.status_code == 422 and "shop/nowhere" in response.json()["error"]
    assert store_state(server.store) == before
    longest = "~ " + "k" * 253
    assert post(server, longest).status_code == 201 and post(server, longest).status_code == 200


def test_keys_survive_a_restart_and_a_crash_between_key_and_run(tmp_path):
    path = tmp_path / "store.db"
    # As if a server died after recording the key and before creating its run.
    store = SQLiteStore(path)
    store.record_run_key("half-done", fingerprint(REQUEST["sources"], REQUEST["entry"], REQUEST["args"]),
                         "0123456789abcdef")
    store.close()
    with Serve(path) as serve:
        first = post(serve, "half-done")
        assert (first.status_code, first.json()) == (201, {"id": "0123456789abcdef"})
        run_id = post(serve, "kept").json()["id"]
    with Serve(path) as again:
        assert (post(again, "kept").status_code, post(again, "kept").json()) == (200, {"id": run_id})
        assert post(again, "half-done").json() == {"id": "0123456789abcdef"}
        assert len(runs(again)) == 2


def test_a_version_2_store_is_migrated_to_keep_keys(tmp_path):
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE run_keys")
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.version() == SCHEMA_VERSION == 6
    assert store.run_key("k") is None
    assert store.record_run_key("k", "f", "r1") == ("r1", "f")
    assert store.record_run_key("k", "g", "r2") == ("r1", "f")  # the first record stands
    store.close()
