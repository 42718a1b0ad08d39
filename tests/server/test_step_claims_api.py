"""A connector's result over the HTTP API is fenced by its claim, as the store's
`complete_claimed_step` is: two claimants of one step through a real `flowmetal serve`,
the first one's lease run out and the step claimed again (under the same worker name,
which the claim's `epoch` tells apart), on an SQLite file and on a PostgreSQL database.
The first claimant's result and failure are refused (409, `reason` `lost`) and change
nothing; the second's is the step's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowmetal.runtime.store import open_store
from server_kit import SOURCES, Serve
from tests.waits import until


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


def seen(location: str, run_id: str, step: int) -> tuple:
    """What a refused result must not change: the run's status and events, the step's row."""
    store = open_store(location, readonly=True)
    try:
        return store.get_run(run_id).status, len(store.events(run_id)), dict(store.step(run_id, step))
    finally:
        store.close()


def test_a_claimant_that_lost_its_claim_is_refused_and_changes_nothing(store: str, tmp_path: Path):
    with Serve(store, cwd=tmp_path) as serve:
        client = httpx.Client(base_url=serve.url, timeout=30)
        created = client.post("/api/runs", json={"sources": SOURCES, "entry": "shop/buy", "args": ['"tea"', "3"]})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        # Both claimants leave `worker` out: the server names both after their address, so
        # only the claim's epoch tells the first claim from the second.
        claim = {"endpoints": ["shop/price!"], "lease": 1, "wait": 20}
        (first,) = client.post("/api/steps/claim", json=claim).json()["steps"]
        assert first["run_id"] == run_id and first["epoch"] >= 1
        until(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "waiting", "the run to wait")
        # The first claim's lease runs out (1 s): the step is claimed again.
        second = until(lambda: client.post("/api/steps/claim", json={**claim, "wait": 0}).json()["steps"],
                       "the step to be claimed again")[0]
        assert second["step"] == first["step"] and second["epoch"] > first["epoch"]

        path = f"/api/steps/{run_id}/{first['step']}"
        before = seen(store, run_id, first['step'])
        late = client.post(path + "/complete", json={"result": {"price": 1, "size": "small", "note": "late"},
                                                     "epoch": first["epoch"]})
        assert late.status_code == 409, late.text
        assert late.json()["reason"] == "lost" and "claimed by" in late.json()["error"], late.json()
        failed = client.post(path + "/fail", json={"error": "gave up", "epoch": first["epoch"]})
        assert failed.status_code == 409 and failed.json()["reason"] == "lost", failed.text
        named = client.post(path + "/complete", json={"literal": '(offer 1 :small "late")', "epoch": first["epoch"],
                                                      "worker": "http:127.0.0.1"})
        assert named.status_code == 409 and named.json()["reason"] == "lost", named.text
        assert seen(store, run_id, first['step']) == before

        done = client.post(path + "/complete", json={"result": {"price": 12, "size": "large", "note": "ok"},
                                                     "epoch": second["epoch"]})
        assert done.status_code == 200, done.text
        run = until(lambda: (lambda r: r if r["status"] == "completed" else None)(
            client.get(f"/api/runs/{run_id}").json()), "the run to complete")
        assert run["result"] == "15"
        again = client.post(path + "/complete", json={"result": {"price": 99, "size": "small", "note": "x"},
                                                      "epoch": second["epoch"]})
        assert again.status_code == 409, again.text
        assert client.get(f"/api/runs/{run_id}").json()["result"] == "15"


def test_an_epoch_that_is_not_a_claims_number_is_refused(tmp_path: Path):
    with Serve(tmp_path / "store.db") as serve:
        client = httpx.Client(base_url=serve.url, timeout=30)
        run_id = client.post("/api/runs", json={"sources": SOURCES, "entry": "shop/buy",
                                                "args": ['"tea"', "3"]}).json()["id"]
        for epoch in (0, -1, "1", 1.5, True, 2 ** 31):
            response = client.post(f"/api/steps/{run_id}/1/complete", json={"literal": "1", "epoch": epoch})
            assert response.status_code == 400 and "`epoch`" in response.json()["error"], (epoch, response.text)
