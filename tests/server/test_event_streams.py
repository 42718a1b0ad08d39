"""The live event streams of the API share one look at the store per process: streams of runs
that do not change cost no store call, however many there are, and a change wakes each of its
run's streams. On both stores (an SQLite file; a PostgreSQL database, where the look is woken
by the store's notifications)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flowmetal.runtime.store import Store
from flowmetal.server.app import make_app
from server_kit import SOURCES


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


async def first_event(response) -> bytes:
    data = b""
    while b"\n\n" not in data:
        data += await asyncio.wait_for(response.content.read(1), 30)
    return data


async def test_idle_streams_read_nothing_and_a_change_wakes_them_all(location: str, monkeypatch):
    reads = []
    events = Store.events

    def counted(self, run_id, *args, **kwargs):
        reads.append(run_id)
        return events(self, run_id, *args, **kwargs)
    monkeypatch.setattr(Store, "events", counted)
    # No executor in this process: a new run stays pending until it is cancelled.
    async with TestClient(TestServer(make_app(location))) as client:
        created = await client.post("/api/runs", json={"sources": SOURCES, "entry": "shop/nap", "args": ["100"]})
        run_id = (await created.json())["id"]
        streams = [await client.get(f"/api/runs/{run_id}/events") for _ in range(12)]
        for response in streams:
            assert b"event: run-started" in await first_event(response)
        settled = len(reads)
        await asyncio.sleep(1.0)  # ten polls of each stream, before
        assert len(reads) - settled <= 2, len(reads) - settled
        cancelled = await client.post(f"/api/runs/{run_id}/cancel")
        assert cancelled.status == 200, await cancelled.text()
        for response in streams:
            text = (await asyncio.wait_for(response.content.read(), 30)).decode()
            assert "event: run-cancelled" in text and 'event: end\ndata: {"status": "cancelled"}' in text, text
