"""The language server on a workspace of many files: the open file first, the rest in the background.

A generated workspace of `FILES` packages (`ws.p0` holds a record; `ws.pK` requires it and its
parent `ws.p((K-1)//2)`), each of `UNITS` functions, driven by a real client over stdio. Order is
asserted by the events the client received (diagnostics, `$/progress`, answers), never by time:
`Events` logs each as it arrives.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from test_server import pos

FILES = 10
UNITS = 150


def package(k: int, units: int = UNITS, extra: str = "") -> str:
    parent = (k - 1) // 2
    if k == 0:
        head = ["(defpackage ws.p0", "  (defrecord item [id : int?, cents : int?])"]
    else:
        head = [f"(defpackage ws.p{k}", "  (require [ws.p0 :refer [item item-cents]]"
                + (f"\n           [ws.p{parent} :as up])" if parent else ")")]
    body = []
    for i in range(units):
        up = f"(up/step-{i} x)" if k and parent else "1"
        body += [f"  (defn step-{i} [x : int?] : int?",
                 f"    (let [it (item x {i})]",
                 f"      (+ (item-cents it) {up})))"]
    return "\n".join(head + body + [extra + "  (defn mistake [] : int? (item-cents 5)))", ""])


class Events:
    """Everything the client received, in order: ("diagnostics", uri, version), ("progress", kind,
    message) and whatever a test adds (its requests' answers)."""

    def __init__(self, client: LanguageClient) -> None:
        self.log: list[tuple] = []
        self.changed = asyncio.Event()
        log, changed = self.log, self.changed

        class Reports(list):
            def append(self, value) -> None:
                super().append(value)
                log.append(("progress", value.kind, getattr(value, "message", None)))
                changed.set()

        class ByToken(dict):
            def setdefault(self, token, default=None):
                return super().setdefault(token, Reports())

        class Diagnostics(dict):
            def __setitem__(self, uri, diagnostics) -> None:
                super().__setitem__(uri, diagnostics)
                log.append(("diagnostics", uri, [d.code for d in diagnostics]))
                changed.set()

        client.progress_reports = ByToken()
        client.diagnostics = Diagnostics()

    def add(self, *event) -> None:
        self.log.append(event)

    def index(self, predicate) -> int:
        return next(i for i, event in enumerate(self.log) if predicate(event))

    async def wait_for(self, predicate, timeout: float = 120) -> int:
        async def wait() -> int:
            while True:
                for i, event in enumerate(self.log):
                    if predicate(event):
                        return i
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(wait(), timeout)


def is_end(event) -> bool:
    return event[:2] == ("progress", "end")


def is_report(event) -> bool:
    return event[:2] == ("progress", "report")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    for k in range(FILES):
        (tmp_path / f"p{k}.flow").write_text(package(k), encoding="utf-8")
    return tmp_path


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def client(lsp_client: LanguageClient, workspace: Path):
    lsp_client.events = Events(lsp_client)
    capabilities = client_capabilities("visual-studio-code")
    assert capabilities.window.work_done_progress
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities, root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
    yield
    await lsp_client.shutdown_session()


def open_leaf(client: LanguageClient, workspace: Path) -> tuple[str, str]:
    path = workspace / f"p{FILES - 1}.flow"
    text = path.read_text(encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=path.as_uri(), language_id="flowmetal", version=1, text=text)))
    return path.as_uri(), text


async def test_the_open_file_is_diagnosed_before_the_background_analysis_which_reports_progress(client, workspace):
    events: Events = client.events
    uri, _ = open_leaf(client, workspace)
    first = await events.wait_for(lambda e: e[:2] == ("diagnostics", uri))
    assert events.log[first][2] == ["FM403"]  # the file's one mistake, seen from its requires' declarations
    end = await events.wait_for(is_end)
    progress = [e for e in events.log if e[0] == "progress"]
    kinds = [e[1] for e in progress]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("end") == 1 and "report" in kinds
    reports = [e[2] for e in progress if e[1] == "report"]
    assert all(re.fullmatch(rf"\d+/{FILES} files (read|checked)", m) for m in reports), reports
    assert f"{FILES}/{FILES} files checked" in reports
    # The open file's diagnostics came before the background analysis ended (and before it began
    # checking the others: its first report).
    assert first < events.index(is_report) < end


async def test_project_wide_requests_wait_for_the_background_analysis_and_are_complete(client, workspace):
    events: Events = client.events
    uri, text = open_leaf(client, workspace)
    await events.wait_for(lambda e: e[:2] == ("diagnostics", uri))
    where = pos(text, "(item-cents it)", plus=2)
    symbols_asked = client.workspace_symbol_async(types.WorkspaceSymbolParams(query="step-7"))
    references_asked = client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=where,
        context=types.ReferenceContext(include_declaration=True)))
    symbols = await symbols_asked
    events.add("answer", "symbols")
    references = await references_asked
    events.add("answer", "references")
    # Asked while the background analysis was under way, answered once it ended: whole.
    assert events.index(is_end) < events.index(lambda e: e == ("answer", "symbols"))
    assert {s.container_name for s in symbols if s.name == "step-7"} == {f"ws.p{k}" for k in range(FILES)}
    by_file: dict[str, int] = {}
    for location in references:
        by_file[Path(location.uri).name] = by_file.get(Path(location.uri).name, 0) + 1
    # In each file: every unit's use, the mistake's, the :refer (p0: the definition, its uses).
    assert by_file == {"p0.flow": UNITS + 2, **{f"p{k}.flow": UNITS + 2 for k in range(1, FILES)}}


async def test_an_edit_during_the_background_analysis_is_answered_at_once(client, workspace):
    events: Events = client.events
    uri, text = open_leaf(client, workspace)
    await events.wait_for(lambda e: e[:2] == ("diagnostics", uri))
    await events.wait_for(is_report)
    # Break the call in step-3's body: `(item x 3)` -> `(item x "3")`.
    at = pos(text, "(item x 3)", plus=8)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=at, end=types.Position(line=at.line, character=at.character + 1)), text='"3"')]))
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(text, "(item-cents it)", plus=2)))
    events.add("answer", "hover")
    edited = await events.wait_for(lambda e: e[:2] == ("diagnostics", uri) and len(e[2]) == 2)
    assert sorted(events.log[edited][2]) == ["FM403", "FM403"]
    assert "item-cents" in hover.contents.value
    end = await events.wait_for(is_end)
    # Both answered while the background analysis went on.
    assert edited < end and events.index(lambda e: e == ("answer", "hover")) < end
    # And the whole workspace's answers take the edit in.
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="mistake"))
    assert len(symbols) == FILES


async def test_a_file_changed_on_disk_during_the_background_analysis_is_analysed_at_its_new_text(client, workspace):
    events: Events = client.events
    uri, _ = open_leaf(client, workspace)
    await events.wait_for(lambda e: e[:2] == ("diagnostics", uri))
    await events.wait_for(is_report)
    changed = workspace / "p3.flow"
    changed.write_text(package(3, extra="  (defn fresh-from-disk [] : int? 1)\n"), encoding="utf-8")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=changed.as_uri(), type=types.FileChangeType.Changed)]))
    events.add("sent", "watched")
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="fresh-from-disk"))
    assert events.index(lambda e: e == ("sent", "watched")) < events.index(is_end)
    assert [(s.name, Path(s.location.uri).name) for s in symbols] == [("fresh-from-disk", "p3.flow")]
