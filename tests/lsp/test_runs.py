"""Running and tracing from the editor, end to end (docs/lsp-protocol.md).

`flowmetal lsp` over stdio with a real LSP client, on a scratch workspace
holding tests/testdata/lsp_runs/jobs.flow and its store: the server's embedded
worker runs the program, which sleeps, posts to a fake service on 127.0.0.1
(a thread of this process) and waits for the service to call it back. The
client receives the run's events live, reads its trace and its state at a
middle step, cancels another run, and sees a run that `flowmetal run --detach`
recorded (and a `flowmetal worker` drives) go by.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from runs_kit import ENV, PostService, Seen, command, flowmetal, plain, request, start_session, watch

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "tests" / "testdata" / "lsp_runs" / "jobs.flow"
TEXT = PROGRAM.read_text(encoding="utf-8")
STDLIB = ROOT / "flowmetal" / "stdlib"
TOKEN = "editor-s3cret"                 # the serve's FLOWMETAL_TOKEN: every API call must carry it
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- a fake service that calls back ------------------------------------------------------------

class Service(PostService):
    """POST / with {label, callback}: answers 202, then POSTs `done-<label>` to the callback."""

    def __init__(self, delay: float = 0.3) -> None:
        self.requests: list[dict] = []
        self.delay = delay
        super().__init__()

    def received(self, body: bytes, headers) -> int:
        self.requests.append({"body": json.loads(body), "key": headers.get("Idempotency-Key")})
        return 202

    def answered(self, body: bytes) -> None:
        threading.Thread(target=self.call_back, args=(json.loads(body),), daemon=True).start()

    def call_back(self, body: dict) -> None:
        time.sleep(self.delay)
        request = urllib.request.Request(body["callback"], data=f"done-{body['label']}".encode(), method="POST")
        urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture
def service():
    found = Service()
    yield found
    found.close()


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(PROGRAM, root / "jobs.flow")
    return root


# -- the client ----------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def store(request) -> str | None:
    """The store of the editor's workbench: the workspace's own SQLite file (None: the default),
    or a PostgreSQL database, given as the `store` setting. The tests with a `client` name it
    (`usefixtures`): pytest-lsp's fixtures look their own up only when they start."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"],
                                              server_env=ENV))
async def client(lsp_client: LanguageClient, workspace: Path, store: str | None):
    watch(lsp_client)
    await start_session(lsp_client, workspace, {"store": store} if store else None)
    lsp_client.store_args = ["--store", store] if store else []
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def serve(tmp_path):
    """A serve with a store of its own, which the editor cannot open: it reads through the API."""
    sys.path.insert(0, str(ROOT / "tests" / "server"))
    from server_kit import Serve
    store = tmp_path / "elsewhere" / "store.db"
    store.parent.mkdir()
    running = Serve(store, cwd=store.parent, env={"FLOWMETAL_TOKEN": TOKEN}).start()
    yield running
    running.stop()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"],
                                              server_env=ENV))
async def served_client(lsp_client: LanguageClient, workspace: Path, serve):
    watch(lsp_client)
    await start_session(lsp_client, workspace, {"serve": serve.url, "token": TOKEN})
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"],
                                              server_env=ENV))
async def debugging_client(lsp_client: LanguageClient, workspace: Path):
    """A client that handles the Debug lens's command itself, and says so."""
    watch(lsp_client)
    await start_session(lsp_client, workspace, {"debugLens": True})
    yield
    await lsp_client.shutdown_session()


def line_of(needle: str) -> int:
    """The 0-based line of `needle` in jobs.flow."""
    return TEXT[:TEXT.index(needle)].count("\n")


# -- the tests -------------------------------------------------------------------------------------

@pytest.mark.usefixtures("store")  # both stores
async def test_run_from_the_editor_live_trace_and_state(client: LanguageClient, service: Service):
    seen: Seen = client.seen
    uri = (client.workspace / "jobs.flow").as_uri()
    started = await command(client, "flowmetal.run", uri=uri, entry="acme.jobs/job",
                            args=[json.dumps(service.url), '"build"'])
    run_id = started["runId"]

    # Live: the run goes by as it is driven, to its end, and each event arrives once, in order.
    await seen.until(lambda: "completed" in seen.statuses(run_id), what="completion of the run")
    await seen.until(lambda: "run-completed" in seen.kinds(run_id), what="run-completed event")
    assert "waiting" in seen.statuses(run_id)
    live = [e["event"] for e in seen.events if e["runId"] == run_id]
    assert [e["seq"] for e in live] == list(range(1, len(live) + 1))
    kinds = [e["kind"] for e in live]
    assert kinds[0] == "run-started" and kinds[-1] == "run-completed"
    assert {"timer-set", "timer-fired", "log"} <= set(kinds)
    assert [e["data"].get("endpoint") for e in live if e["kind"] == "step-requested"] == [
        "flowmetal.log/log!", "flowmetal.time/sleep!", "http.callback/make-callback!", "http.request/post!",
        "http.callback/get-callback!", "flowmetal.log/log!"]
    final = [r for r in seen.runs if r["id"] == run_id][-1]
    assert final["result"] == '"build done-build"' and final["ended"] is not None
    assert final["entry"] == "acme.jobs/job" and final["uri"] == uri
    assert len(service.requests) == 1 and service.requests[0]["key"] == f"{run_id}:4"

    # The trace: the same events as the live ones, each where its expression is.
    trace = await request(client, "flowmetal/trace", runId=run_id)
    assert trace["run"]["status"] == "completed"
    assert [e["kind"] for e in trace["events"]] == kinds
    by_kind = {}
    for event in trace["events"]:
        assert event["location"] is not None and event["location"]["uri"] == uri, event
        by_kind.setdefault(event["kind"], event)
    post = next(e for e in trace["events"] if e["data"].get("endpoint") == "http.request/post!")
    assert post["location"]["range"]["start"] == {"line": line_of("(post! service"),
                                                  "character": TEXT.splitlines()[line_of("(post! service")].index("(post!")}
    assert by_kind["timer-set"]["location"]["range"]["start"]["line"] == line_of("(sleep! (make-duration 200")
    assert by_kind["run-started"]["location"]["range"]["start"]["line"] == line_of("(defn job")

    # The state at a middle step: stopped at the post!, with the job's bindings.
    state = await request(client, "flowmetal/stateAt", runId=run_id, seq=post["seq"])
    assert state["step"] == post["step"] and state["location"] == post["location"]
    assert [f["function"] for f in state["stack"]] == ["acme.jobs/job"]
    bindings = {b["name"]: b for b in state["bindings"]}
    assert bindings["label"] == {"name": "label", "type": "str?", "value": '"build"'}
    assert bindings["service"]["value"] == json.dumps(service.url)
    assert bindings["callback"]["type"] == "callback?"
    assert bindings["callback"]["value"].startswith('(callback "http://127.0.0.1:')
    assert "answer" not in bindings  # bound by the post! itself: not yet
    # ... and at the callback's result, a step later: `answer` is bound now.
    got = next(e for e in trace["events"] if e["kind"] == "step-completed"
               and e["step"] == post["step"] + 1)
    later = await request(client, "flowmetal/stateAt", runId=run_id, seq=got["seq"])
    assert later["result"] == '"done-build"'
    assert {b["name"] for b in later["bindings"]} >= {"label", "service", "callback", "answer"}
    end = await request(client, "flowmetal/stateAt", runId=run_id, seq=trace["events"][-1]["seq"])
    assert end["value"] == '"build done-build"' and end["stack"] == []
    start = await request(client, "flowmetal/stateAt", runId=run_id, seq=1)
    assert [(b["name"], b["value"]) for b in start["bindings"]] == [("service", json.dumps(service.url)),
                                                                    ("label", '"build"')]

    # Replay from the log reproduces it; the runs list has it.
    replayed = await command(client, "flowmetal.replay", runId=run_id)
    assert replayed["reproduces"] is True and replayed["value"] == '"build done-build"'
    runs = await request(client, "flowmetal/runs")
    assert [(r["id"], r["status"]) for r in runs] == [(run_id, "completed")]

    # The command line sees the same run in the same store.
    listed = json.loads(flowmetal("runs", "--format", "json", *client.store_args, cwd=client.workspace).stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(run_id, "completed")]

    # The lens counts it.
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    titles = {(lens.command.arguments[0]["entry"], lens.command.title) for lens in lenses}
    assert ("acme.jobs/job", "Trace (1 run)") in titles and ("acme.jobs/nap", "Trace (0 runs)") in titles
    assert ("acme.jobs/job", "▶ Run…") in titles and ("acme.jobs/hello", "▶ Run") in titles
    # Each carries the range of its whole definition: a client runs the function the cursor is in.
    for lens in lenses:
        whole, name = lens.command.arguments[0].get("definitionRange"), lens.range
        if lens.command.command == "flowmetal.run":
            start, end = (whole["start"]["line"], whole["start"]["character"]), \
                (whole["end"]["line"], whole["end"]["character"])
            assert start < (name.start.line, name.start.character) and end > (name.end.line, name.end.character)
    assert not any(title.startswith("Debug") for _, title in titles)  # this client did not ask for them
    assert seen.refreshes >= 1  # the editor was told to ask for the lenses again when the run appeared


async def test_a_client_that_debugs_gets_a_debug_lens_beside_each_run_lens(debugging_client: LanguageClient):
    uri = (debugging_client.workspace / "jobs.flow").as_uri()
    document = types.TextDocumentIdentifier(uri=uri)
    lenses = await debugging_client.text_document_code_lens_async(types.CodeLensParams(text_document=document))
    runs = {lens.command.arguments[0]["entry"]: lens for lens in lenses if lens.command.command == "flowmetal.run"}
    debugs = {lens.command.arguments[0]["entry"]: lens for lens in lenses if lens.command.command == "flowmetal.debug"}
    assert set(debugs) == set(runs) and "acme.jobs/job" in debugs
    # The same arguments as the Run lens (the parameters to ask for, or the empty arguments), on the same line.
    for entry, lens in debugs.items():
        assert plain(lens.command.arguments) == plain(runs[entry].command.arguments)
        assert lens.range == runs[entry].range
    assert debugs["acme.jobs/job"].command.title == "Debug…"
    assert debugs["acme.jobs/hello"].command.title == "Debug"
    assert plain(debugs["acme.jobs/hello"].command.arguments)[0]["args"] == []


@pytest.mark.usefixtures("store")  # both stores
async def test_cancel_a_waiting_run(client: LanguageClient):
    seen: Seen = client.seen
    uri = (client.workspace / "jobs.flow").as_uri()
    run_id = (await command(client, "flowmetal.run", uri=uri, entry="acme.jobs/nap", args=["60"]))["runId"]
    await seen.until(lambda: "waiting" in seen.statuses(run_id), what="the nap to wait")
    other = (await command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))["runId"]
    answer = await command(client, "flowmetal.cancel", runId=run_id)
    assert answer == {"runId": run_id, "status": "cancelled"}
    await seen.until(lambda: "run-cancelled" in seen.kinds(run_id), what="run-cancelled event")
    await seen.until(lambda: "completed" in seen.statuses(other), what="the other run to complete")
    runs = {r["id"]: r for r in await request(client, "flowmetal/runs")}
    assert runs[run_id]["status"] == "cancelled" and runs[run_id]["ended"] is not None
    assert runs[other]["status"] == "completed" and runs[other]["result"] == '"hello"'
    state = await request(client, "flowmetal/stateAt", runId=run_id, seq=seen.kinds(run_id).index("timer-set") + 1)
    assert [(b["name"], b["value"]) for b in state["bindings"]] == [("seconds", "60")]
    # Cancelling again changes nothing and says how the run ended.
    assert (await command(client, "flowmetal.cancel", runId=run_id))["status"] == "cancelled"


FAMILY = """\
(defpackage acme.family
  (require [flowmetal.run :refer [start-run! await-run!]]
           [flowmetal.time :refer [sleep! make-duration +milliseconds+]])
  (defn double [n : int?] : int?
    (sleep! (make-duration 50 +milliseconds+))
    (* 2 n))
  (defn main [n : int?] : int? (+ 1 (await-run! (start-run! double n)))))
"""


@pytest.mark.usefixtures("store")  # both stores
async def test_a_run_started_in_the_editor_drives_its_child_runs_in_an_untrusted_store(client: LanguageClient):
    seen: Seen = client.seen
    (client.workspace / "family.flow").write_text(FAMILY)
    uri = (client.workspace / "family.flow").as_uri()
    run_id = (await command(client, "flowmetal.run", uri=uri, entry="acme.family/main", args=["20"]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(run_id), what="the parent to complete")
    runs = {r["id"]: r for r in await request(client, "flowmetal/runs")}
    (child,) = [r for r in runs.values() if r["parent"] == run_id]
    assert (runs[run_id]["result"], runs[run_id]["parent"]) == ("41", None)
    assert (child["entry"], child["status"], child["result"], child["blocked"]) == (
        "acme.family/double", "completed", "40", None)
    assert any(r["id"] == child["id"] and r["parent"] == run_id for r in seen.runs)  # it went by live too


@pytest.mark.usefixtures("store")  # both stores
async def test_a_detached_run_from_the_command_line_shows_up_live(client: LanguageClient):
    seen: Seen = client.seen
    await request(client, "flowmetal/runs")  # the server watches the store from its start
    recorded = flowmetal("run", "--detach", "jobs.flow", "nap", "1", *client.store_args, cwd=client.workspace)
    assert recorded.returncode == 0, recorded.stderr
    run_id = recorded.stdout.strip()
    await seen.until(lambda: "pending" in seen.statuses(run_id), what="the detached run")
    worker = subprocess.Popen([sys.executable, "-m", "flowmetal", "worker", *client.store_args], cwd=client.workspace,
                              env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await seen.until(lambda: "completed" in seen.statuses(run_id), what="the worker to finish the run")
        await seen.until(lambda: "run-completed" in seen.kinds(run_id), what="its run-completed event")
    finally:
        worker.kill()
        worker.wait()
    assert seen.kinds(run_id)[0] == "run-started"
    update = [r for r in seen.runs if r["id"] == run_id][-1]
    assert update["entry"] == "acme.jobs/nap" and update["result"] == "1"
    assert update["origin"] == (client.workspace / "jobs.flow").as_uri()


@pytest.mark.usefixtures("store")  # both stores
async def test_the_runs_narrowed_by_entry_status_and_the_last_started(client: LanguageClient):
    seen: Seen = client.seen
    uri = (client.workspace / "jobs.flow").as_uri()
    ran = (await command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(ran), what="the run to complete")

    def detach(*args: str) -> str:  # recorded, and left pending: nobody drives a run the editor did not start
        recorded = flowmetal("run", "--detach", "jobs.flow", *args, *client.store_args, cwd=client.workspace)
        assert recorded.returncode == 0, recorded.stderr
        return recorded.stdout.strip()
    naps = [detach("nap", "1"), detach("acme.jobs/nap", "2")]
    hello = detach("acme.jobs/hello")

    async def ids(**params) -> list[str]:
        return [r["id"] for r in await request(client, "flowmetal/runs", **params)]
    assert await ids(entry="acme.jobs/nap") == naps
    assert await ids(entry="hello") == [ran, hello]          # a name alone: that function of any package
    assert await ids(status=["pending"], last=2) == [naps[1], hello]
    assert await ids(status=["completed", "failed"]) == [ran]
    assert await ids(last=1) == [hello]
    assert await ids() == [ran, *naps, hello]
    for params, message in (({"status": ["done"]}, "`status` must be a list of run states"),
                            ({"status": "pending"}, "`status` must be a list of run states"),
                            ({"last": 0}, "`last` must be a whole number"),
                            ({"entry": "acme.jobs/"}, "`entry` must be a function")):
        with pytest.raises(JsonRpcException) as caught:
            await request(client, "flowmetal/runs", **params)
        assert message in caught.value.message


@pytest.mark.usefixtures("store")  # both stores
async def test_locations_point_at_the_stored_source_once_the_file_changed(client: LanguageClient):
    seen: Seen = client.seen
    path = client.workspace / "jobs.flow"
    run_id = (await command(client, "flowmetal.run", uri=path.as_uri(), entry="hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(run_id), what="the run to complete")
    path.write_text(";; two new lines\n;; push everything down\n" + TEXT, encoding="utf-8")
    trace = await request(client, "flowmetal/trace", runId=run_id)
    location = trace["events"][0]["location"]
    stored = Path(types.TextDocumentIdentifier(uri=location["uri"]).uri.removeprefix("file://"))
    assert stored != path and stored.is_relative_to(client.workspace / ".flowmetal" / "sources")
    assert stored.read_text(encoding="utf-8") == TEXT
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0
    assert location["range"]["start"]["line"] == line_of("(defn hello")


@pytest.mark.usefixtures("store")  # both stores
async def test_bad_requests_are_refused_with_a_message_and_record_nothing(client: LanguageClient):
    uri = (client.workspace / "jobs.flow").as_uri()

    async def refused(coro) -> str:
        with pytest.raises(JsonRpcException) as caught:
            await coro
        return caught.value.message

    message = await refused(command(client, "flowmetal.run", uri=uri, entry="acme.jobs/job"))
    assert "service: str?" in message and "label: str?" in message
    message = await refused(command(client, "flowmetal.run", uri=uri, entry="acme.jobs/nap", args=["1", "2"]))
    assert "takes 1 argument, 2 given" in message
    message = await refused(command(client, "flowmetal.run", uri=uri, entry="acme.jobs/nap", args=['"one"']))
    assert "`seconds`" in message and "int?" in message
    message = await refused(command(client, "flowmetal.run", uri=uri, entry="acme.jobs/nope", args=[]))
    assert "no function `nope`" in message
    # An unsaved buffer with an error: the editor's text is what would run, so nothing runs.
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="flowmetal", version=1, text=TEXT.replace('"hello"', "undefined-name"))))
    message = await refused(command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))
    assert "the program has errors" in message and "undefined-name" in message
    message = await refused(request(client, "flowmetal/trace", runId="no-such-run"))
    assert "no run `no-such-run`" in message
    message = await refused(request(client, "flowmetal/trace"))
    assert "runId" in message
    assert await request(client, "flowmetal/runs") == []
    if client.store_args:  # PostgreSQL: the database holds no run
        assert json.loads(flowmetal("runs", "--format", "json", *client.store_args, cwd=client.workspace).stdout) == []
    assert not (client.workspace / ".flowmetal" / "store.db").exists() or \
        json.loads(flowmetal("runs", "--format", "json", cwd=client.workspace).stdout) == []


@pytest.mark.usefixtures("store")  # both stores
async def test_state_at_an_event_the_run_does_not_have(client: LanguageClient):
    seen: Seen = client.seen
    uri = (client.workspace / "jobs.flow").as_uri()
    run_id = (await command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(run_id), what="the run to complete")
    with pytest.raises(JsonRpcException) as caught:
        await request(client, "flowmetal/stateAt", runId=run_id, seq=99)
    assert "has no event 99: its events are 1 to 2" in caught.value.message
    with pytest.raises(JsonRpcException) as caught:
        await request(client, "flowmetal/stateAt", runId=run_id, seq="two")
    assert "`seq` must be an event number" in caught.value.message


async def test_with_a_serve_configured_runs_go_through_it(served_client: LanguageClient, serve):
    client = served_client
    seen: Seen = client.seen
    uri = (client.workspace / "jobs.flow").as_uri()
    run_id = (await command(client, "flowmetal.run", uri=uri, entry="acme.jobs/nap", args=["30"]))["runId"]
    # The serve recorded it (through its API) and drives it: it waits on the serve's timer.
    await seen.until(lambda: "waiting" in seen.statuses(run_id), what="the serve to run the nap")
    asked = urllib.request.Request(f"{serve.url}/api/runs/{run_id}", headers=AUTH)
    with urllib.request.urlopen(asked, timeout=10) as answer:
        assert json.load(answer)["status"] == "waiting"
    # Read through the serve's API (its store is not the editor's to open): no snapshots there,
    # so the state where it waits comes from replaying its log.
    trace = await request(client, "flowmetal/trace", runId=run_id)
    timer = next(e for e in trace["events"] if e["kind"] == "timer-set")
    state = await request(client, "flowmetal/stateAt", runId=run_id, seq=timer["seq"])
    assert state["via"] == "replay" and [(b["name"], b["value"]) for b in state["bindings"]] == [("seconds", "30")]
    assert (await command(client, "flowmetal.cancel", runId=run_id))["status"] == "cancelled"
    await seen.until(lambda: "cancelled" in seen.statuses(run_id), what="the cancellation")
    other = (await command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(other), what="the serve to complete a run")
    trace = await request(client, "flowmetal/trace", runId=other)
    assert [e["kind"] for e in trace["events"]] == ["run-started", "run-completed"]
    assert (await command(client, "flowmetal.replay", runId=other))["reproduces"] is True
    assert not (client.workspace / ".flowmetal" / "store.db").exists()
    # Recorded through the API, the run has no origin: its code is shown from the stored copy.
    assert trace["run"]["origin"] is None
    assert "/.flowmetal/sources/" in trace["events"][0]["location"]["uri"]
    # A run another client starts through the serve's API shows up too, live.
    body = json.dumps({"sources": {"jobs.flow": TEXT}, "entry": "acme.jobs/nap", "args": ["0"]}).encode()
    posted = urllib.request.Request(f"{serve.url}/api/runs", data=body, method="POST",
                                    headers={"Content-Type": "application/json", **AUTH})
    with urllib.request.urlopen(posted, timeout=10) as answer:
        third = json.load(answer)["id"]
    await seen.until(lambda: "run-completed" in seen.kinds(third) and seen.statuses(third)[-1:] == ["completed"],
                     what="the run started through the API")
    assert seen.kinds(third)[0] == "run-started"
    # Narrowed by the serve's store (`GET /api/runs?status=&last=`) or, by entry, here.
    ids = lambda runs: [r["id"] for r in runs]  # noqa: E731
    assert ids(await request(client, "flowmetal/runs", status=["completed"])) == [other, third]
    assert ids(await request(client, "flowmetal/runs", last=2)) == [other, third]
    assert ids(await request(client, "flowmetal/runs", entry="acme.jobs/nap", last=1)) == [third]
    assert ids(await request(client, "flowmetal/runs", status=["cancelled"], entry="nap")) == [run_id]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"],
                                              server_env=ENV))
async def configured_client(lsp_client: LanguageClient, workspace: Path):
    watch(lsp_client)
    await start_session(lsp_client, workspace, {"store": "state/runs.db"})
    yield
    await lsp_client.shutdown_session()


async def test_the_store_setting_and_configuration_changes(configured_client: LanguageClient):
    client = configured_client
    seen: Seen = client.seen
    uri = (client.workspace / "jobs.flow").as_uri()
    # Clients send empty settings after initializing (a signal to pull them): that changes nothing.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
    first = (await command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(first), what="the first run")
    listed = json.loads(flowmetal("runs", "--format", "json", "--store", "state/runs.db", cwd=client.workspace).stdout)
    assert [r["id"] for r in listed] == [first]
    assert not (client.workspace / ".flowmetal" / "store.db").exists()
    # A `flowmetal` section moves the editor to another store.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"flowmetal": {"store": "other.db"}}))
    second = (await command(client, "flowmetal.run", uri=uri, entry="hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(second), what="the second run")
    assert [r["id"] for r in await request(client, "flowmetal/runs")] == [second]
    listed = json.loads(flowmetal("runs", "--format", "json", "--store", "other.db", cwd=client.workspace).stdout)
    assert [r["id"] for r in listed] == [second]


# -- a store that came with the workspace, holding names no Flowmetal would write ------------------

SHIPPED = [
    # (a file name in the shipped store, the file a stored copy of it would have been, from tmp_path)
    ("../../../../victim.flow", "victim.flow"),
    ("../../../../created.flow", "created.flow"),
    ("sub/../../../../../created-too.flow", "created-too.flow"),
    ("{tmp}/absolute.flow", "absolute.flow"),
]


@pytest.fixture
def shipped(tmp_path, workspace):
    """The workspace's store, as a repository might ship it: runs whose programs have bad
    file names; a run whose code hash is a path; a stored copy's place taken by another
    file; a copy's folder that is a symlink. Taken as a picture of tmp_path before any server."""
    from bad_stores import write_run
    from flowmetal.runtime.program import code_hash
    store = workspace / ".flowmetal" / "store.db"
    store.parent.mkdir()
    (tmp_path / "victim.flow").write_text("precious", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    found = {"bad": []}
    for name, _ in SHIPPED:
        found["bad"].append(write_run(store, {name.format(tmp=tmp_path): TEXT + ";; x\n"}, origin=str(workspace)))
    texts = {kind: TEXT + f";; the {kind} version\n" for kind in ("good", "planted", "linked")}
    found["good"] = write_run(store, {"jobs.flow": texts["good"]}, code_hash="../../../escape", origin=str(workspace))
    found["planted"] = write_run(store, {"jobs.flow": texts["planted"]}, origin=str(workspace))
    found["linked"] = write_run(store, {"jobs.flow": texts["linked"]}, origin=str(workspace))
    sources = store.parent / "sources"
    (sources / code_hash({"jobs.flow": texts["planted"]})[:16]).mkdir(parents=True)
    (sources / code_hash({"jobs.flow": texts["planted"]})[:16] / "jobs.flow").write_text("planted", encoding="utf-8")
    (sources / code_hash({"jobs.flow": texts["linked"]})[:16]).symlink_to(tmp_path / "elsewhere")
    found["copy"] = sources / code_hash({"jobs.flow": texts["good"]})[:16] / "jobs.flow"
    found["texts"] = texts
    found["store"] = store
    from bad_stores import files_under
    found["before"] = files_under(tmp_path)
    return found


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"],
                                              server_env=ENV))
async def shipped_client(lsp_client: LanguageClient, workspace: Path, shipped):
    watch(lsp_client)
    await start_session(lsp_client, workspace)
    lsp_client.shipped = shipped
    yield
    await lsp_client.shutdown_session()


async def test_a_shipped_store_with_bad_file_names_writes_nothing_outside_its_sources(shipped_client, tmp_path):
    from bad_stores import files_under, write_run
    client = shipped_client
    shipped = client.shipped
    runs = {r["id"]: r for r in await request(client, "flowmetal/runs")}
    assert set(shipped["bad"]) | {shipped["good"], shipped["planted"], shipped["linked"]} <= set(runs)
    for run_id in shipped["bad"]:  # listed, without a place for their code
        assert runs[run_id]["uri"] is None and runs[run_id]["origin"] is None
        with pytest.raises(JsonRpcException) as caught:
            await request(client, "flowmetal/trace", runId=run_id)
        assert "bad file name" in caught.value.message
    # A good name: its copy is beside the store, in the folder its texts' hash names
    # (not the stored code hash, a path here).
    assert runs[shipped["good"]]["uri"] == shipped["copy"].as_uri()
    assert shipped["copy"].read_text(encoding="utf-8") == shipped["texts"]["good"]
    trace = await request(client, "flowmetal/trace", runId=shipped["good"])
    assert trace["events"][0]["location"]["uri"] == shipped["copy"].as_uri()
    # Another file in a copy's place, a copy's folder that is a symlink: no location, nothing written.
    for kind in ("planted", "linked"):
        assert runs[shipped[kind]]["uri"] is None
        trace = await request(client, "flowmetal/trace", runId=shipped[kind])
        assert [e["location"] for e in trace["events"]] == [None]
    # A run that appears while the editor is open goes by the watcher, which writes nothing either.
    late = write_run(shipped["store"], {"../../../../late.flow": TEXT}, origin=str(client.workspace))
    await client.seen.until(lambda: late in [r["id"] for r in client.seen.runs], what="the late run")
    assert {r["uri"] for r in client.seen.runs if r["id"] == late} == {None}

    after = files_under(tmp_path)
    changed = sorted(k for k in set(shipped["before"]) | set(after) if shipped["before"].get(k) != after.get(k))
    copies = "ws/.flowmetal/sources/"
    assert all(k.startswith(copies) or k.startswith("ws/.flowmetal/store.db") for k in changed), changed
    assert [k for k in changed if k.startswith(copies)] == [shipped["copy"].relative_to(tmp_path).as_posix()]
    assert (tmp_path / "victim.flow").read_text(encoding="utf-8") == "precious"
    for _, target in SHIPPED[1:]:
        assert not (tmp_path / target).exists()
    assert not (tmp_path / "late.flow").exists() and not (tmp_path / "escape").exists()
    assert list((tmp_path / "elsewhere").iterdir()) == []


BILLING = """\
(defpackage acme.billing
  (defendpoint charge! [amount : int?] : int?)
  (defn pay [n : int?] : int? (charge! n)))
"""
HELD_CHARGE = """\
import time
from pathlib import Path

from flowmetal.connectors.sdk import endpoint


@endpoint("acme.billing/charge!")
def charge(amount):
    deadline = time.monotonic() + 30
    while not Path("release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return amount * 2
"""


@pytest.mark.usefixtures("store")  # both stores
async def test_a_run_waiting_on_an_endpoint_nobody_serves_says_so_live(client: LanguageClient):
    seen: Seen = client.seen
    (client.workspace / "billing.flow").write_text(BILLING)
    (client.workspace / "charge.py").write_text(HELD_CHARGE)
    await request(client, "flowmetal/runs")  # the server watches the store from its start
    run_id = flowmetal("run", "--detach", "billing.flow", "pay", "5", *client.store_args,
                       cwd=client.workspace).stdout.strip()
    assert flowmetal("worker", "--once", "--no-connectors", *client.store_args, cwd=client.workspace).returncode == 0
    (run,) = [r for r in await request(client, "flowmetal/runs") if r["id"] == run_id]
    assert (run["status"], run["unserved"]) == ("waiting", ["acme.billing/charge!"])
    await seen.until(lambda: any(r["id"] == run_id and r["unserved"] for r in seen.runs), what="the unserved note")
    connector = subprocess.Popen([sys.executable, "-m", "flowmetal", "connector", "charge.py", "--grace", "0.1",
                                  *client.store_args],
                                 cwd=client.workspace, env=ENV, stderr=subprocess.PIPE)
    try:
        # A connector for it started: the run is sent again, without the note.
        await seen.until(lambda: [r for r in seen.runs if r["id"] == run_id][-1]["unserved"] == [],
                         what="the note to go")
        (run,) = [r for r in await request(client, "flowmetal/runs") if r["id"] == run_id]
        assert (run["status"], run["unserved"]) == ("waiting", [])
    finally:
        connector.send_signal(2)
        connector.wait(30)
    # It stopped (and gave the step back): the note comes back.
    await seen.until(lambda: [r for r in seen.runs if r["id"] == run_id][-1]["unserved"] == ["acme.billing/charge!"],
                     what="the note to come back")


@pytest.mark.usefixtures("store")  # both stores
async def test_a_run_with_tasks_names_each_events_task_and_no_parent(client: LanguageClient):
    """What the editors' task lanes and child-run nesting are drawn from: every event's `task`,
    the tasks' lives, and each run's `parent` (null: a run started from the editor is top-level)."""
    seen: Seen = client.seen
    shutil.copy(ROOT / "tests" / "testdata" / "tasks" / "tasks.flow", client.workspace / "tasks.flow")
    uri = (client.workspace / "tasks.flow").as_uri()
    run_id = (await command(client, "flowmetal.run", uri=uri, entry="tasks.cases/tasks-spawn-tasks",
                            args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(run_id), what="completion of the run")
    assert all(r["parent"] is None for r in seen.runs if r["id"] == run_id)

    trace = await request(client, "flowmetal/trace", runId=run_id)
    assert trace["run"]["parent"] is None and trace["run"]["result"] == "110"
    events = trace["events"]
    assert all(isinstance(e["data"]["task"], int) for e in events)
    assert [e["data"]["spawned"] for e in events if e["kind"] == "task-spawned"] == [1, 2]
    # Task 1 is spawned by the entry (task 0), task 2 by task 1; each ends with its own event.
    assert [e["data"]["task"] for e in events if e["kind"] == "task-spawned"] == [0, 1]
    assert [(e["data"]["task"], e["data"]["result"]) for e in events if e["kind"] == "task-completed"] == [
        (2, "10"), (1, "110")]
    assert events[0]["data"]["task"] == 0 and events[-1]["kind"] == "run-completed"
    assert {e["data"]["task"] for e in events if e["kind"] == "timer-set"} == {2}
    runs = await request(client, "flowmetal/runs")
    assert [(r["id"], r["parent"]) for r in runs] == [(run_id, None)]


@pytest.mark.usefixtures("store")  # both stores
async def test_a_location_in_a_standard_package_is_the_copy_stored_with_the_run(client: LanguageClient):
    (client.workspace / "bad.flow").write_text(
        '(defpackage bad\n  (require [flowmetal.json :refer [loads]])\n  (defn main [] : any?\n'
        '    (loads "{not json")))\n', encoding="utf-8")
    failed = flowmetal("run", "bad.flow", "main", *client.store_args, cwd=client.workspace)
    assert failed.returncode != 0
    run_id = failed.stderr.split("run ", 1)[1].split(":", 1)[0]
    trace = await request(client, "flowmetal/trace", runId=run_id)
    location = next(e for e in trace["events"] if e["kind"] == "run-failed")["location"]
    stored = Path(urllib.parse.unquote(location["uri"].removeprefix("file://")))
    assert stored.parent.name == "@stdlib" and stored.name == "flowmetal.json.flow"
    assert stored.is_relative_to(client.workspace / ".flowmetal" / "sources")
    text = stored.read_text(encoding="utf-8")
    assert text == (STDLIB / "flowmetal.json.flow").read_text(encoding="utf-8")
    line = text.splitlines()[location["range"]["start"]["line"]]
    assert "(builtin-loads text)" in line
