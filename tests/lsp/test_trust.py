"""The editor never drives runs it did not start, unless the store is trusted (docs/lsp-protocol.md, *Trust*).

A workspace comes with a store already holding three runs of
tests/testdata/lsp_runs/ping.flow, each of which posts to a counting HTTP
service on 127.0.0.1: one pending (never started), one waiting on its pending
`post!` step, one waiting on a timer that is due. `flowmetal lsp` starts on
that folder, over stdio with a real LSP client. Untrusted, it drives the run
started from the editor to its end and leaves the three alone: the service
hears from the editor's run only. Trusted (from the start, or granted with
`flowmetal.trust`), it drives them all.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_kit import ENV, PostService, Seen, command, plain, request, start_session, watch  # noqa: E402

from flowmetal.runtime.driving import prepare_run, record_run  # noqa: E402
from flowmetal.runtime.executor import Executor  # noqa: E402
from flowmetal.runtime.store import SQLiteStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "tests" / "testdata" / "lsp_runs" / "ping.flow"
LOOKS = 1.0  # seconds: five looks of the watcher, ten rounds of the embedded worker and its connector


class Service(PostService):
    """Counts the labels POSTed to it."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        super().__init__()

    def received(self, body: bytes, headers) -> int:
        self.labels.append(body.decode())
        return 200


@pytest.fixture
def service():
    found = Service()
    yield found
    found.close()


@pytest.fixture
def shipped(tmp_path, service):
    """A workspace whose store holds three runs someone else left there: {label: run id}."""
    root = tmp_path / "cloned"
    root.mkdir()
    shutil.copy(PROGRAM, root / "ping.flow")
    (root / ".flowmetal").mkdir()
    store = SQLiteStore(root / ".flowmetal" / "store.db")
    sources = {"ping.flow": PROGRAM.read_text(encoding="utf-8")}
    ids = {}
    for label, entry in (("pending", "ping"), ("step", "ping"), ("timer", "nap-then-ping")):
        args = [json.dumps(service.url), json.dumps(label)]
        ids[label] = record_run(store, sources, f"trust.ping/{entry}", args,
                                prepare_run(sources, f"trust.ping/{entry}", args), origin=str(root))
    # Driven (here, without a connector) until they wait: on the post! step, on the due timer.
    executor = Executor(store)
    assert executor.run_once(ids["step"]).status == "waiting"
    assert executor.run_once(ids["timer"]).status == "waiting"
    assert [s["run_id"] for s in store.pending_steps("http.request/post!")] == [ids["step"]]
    store.close()
    return root, ids


def untouched(root: Path, ids: dict[str, str]) -> None:
    """The shipped runs are as they were left."""
    store = SQLiteStore(root / ".flowmetal" / "store.db")
    try:
        assert store.get_run(ids["pending"]).status == "pending"
        assert store.get_run(ids["step"]).status == "waiting"
        assert store.get_run(ids["timer"]).status == "waiting"
        assert [s["run_id"] for s in store.pending_steps("http.request/post!")] == [ids["step"]]
        assert [e.kind for e in store.events(ids["timer"])][-1] == "timer-set"
    finally:
        store.close()


CONFIG = ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"], server_env=ENV)


@pytest_lsp.fixture(config=CONFIG)
async def untrusted(lsp_client: LanguageClient, shipped):
    watch(lsp_client)
    await start_session(lsp_client, shipped[0])
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def trusted(lsp_client: LanguageClient, shipped):
    watch(lsp_client)
    await start_session(lsp_client, shipped[0], {"trusted": True})
    yield
    await lsp_client.shutdown_session()


async def test_an_untrusted_store_runs_only_what_the_editor_starts(untrusted: LanguageClient, shipped, service):
    client, (root, ids) = untrusted, shipped
    seen: Seen = client.seen
    # Settings cannot grant trust: project files can write them.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"flowmetal": {"trusted": True}}))

    # A run started from the editor runs to its end, its request performed by the embedded connector...
    uri = (root / "ping.flow").as_uri()
    mine = (await command(client, "flowmetal.run", uri=uri, entry="trust.ping/nap-then-ping",
                          args=[json.dumps(service.url), '"mine"']))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(mine), what="the editor's run to complete")
    await asyncio.sleep(LOOKS)
    # ... and nothing else ran: no request but the editor's run's, the others as they were.
    assert service.labels == ["mine"]
    untouched(root, ids)

    # Listed, they say why they wait; the editor's run does not.
    listed = {run["id"]: run for run in await request(client, "flowmetal/runs")}
    for label in ("pending", "step", "timer"):
        assert "not trusted" in listed[ids[label]]["blocked"], listed[ids[label]]
    assert listed[mine]["blocked"] is None and listed[mine]["result"] == '"mine"'

    # Trust granted: each waiting run is announced again, unblocked, and then they all run.
    assert await command(client, "flowmetal.trust", trusted=True) == {"trusted": True}
    await seen.until(lambda: {r["id"] for r in seen.runs if r["blocked"] is None} >= set(ids.values()),
                     what="the runs announced unblocked")
    for label, run_id in ids.items():
        await seen.until(lambda: "completed" in seen.statuses(run_id), what=f"the {label} run to complete")
    assert sorted(service.labels) == ["mine", "pending", "step", "timer"]


async def test_a_trusted_store_runs_its_runs(trusted: LanguageClient, shipped, service):
    client, (root, ids) = trusted, shipped
    seen: Seen = client.seen
    await request(client, "flowmetal/runs")
    for label, run_id in ids.items():
        await seen.until(lambda: "completed" in seen.statuses(run_id), what=f"the {label} run to complete")
    assert sorted(service.labels) == ["pending", "step", "timer"]
    listed = await request(client, "flowmetal/runs")
    assert [(run["status"], run["blocked"]) for run in listed] == [("completed", None)] * 3


async def test_trust_is_a_boolean(untrusted: LanguageClient):
    from pygls.exceptions import JsonRpcException
    with pytest.raises(JsonRpcException) as caught:
        await command(untrusted, "flowmetal.trust", trusted="yes")
    assert "flowmetal.trust takes {trusted}" in caught.value.message
    assert plain(await command(untrusted, "flowmetal.trust", trusted=False)) == {"trusted": False}
