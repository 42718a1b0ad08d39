"""Call hierarchy, completion as editors filter, plain-text documentation, and files changed on disk.

A real LSP client drives `flowmetal lsp` over stdio on a scratch workspace of
two files (a library and an app requiring it), written into a temporary folder
so that the tests can change them on disk as `git checkout` would:

- `textDocument/prepareCallHierarchy` and `callHierarchy/incomingCalls` /
  `outgoingCalls` across the two files, with the exact ranges of the calls;
- completion offers `parcel-weight` after `parcel-wi` (a subsequence), names
  the typed text begins ranked first (`sortText`);
- hover and completion documentation in Markdown for a client that asks for
  it (VS Code's capabilities), in plain text, without fences, for one that
  does not (eglot's without markdown-mode);
- the server registers a watcher for `**/*.flow` when the client can be asked,
  and `workspace/didChangeWatchedFiles` (changed, created, deleted) is read
  again from disk and republishes the open documents' diagnostics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from test_server import diagnostics, open_doc, pos  # the LSP tests' helpers, one copy

LIB = """(defpackage ship.lib
  (defrecord parcel [grams : int?])

  (defn parcel-weight [p : parcel?] : int?
    "The weight of `p`, in grams."
    (parcel-weight-raw p))

  (defn parcel-weight-raw [p : parcel?] : int?
    (parcel-weight p))

  (defn parcel-width [p : parcel?] : int? (parcel-grams p)))
"""

APP = """(defpackage ship.app
  (require [ship.lib :as lib :refer [parcel? parcel-weight]])

  (defn heavy? [p : parcel?] : bool?
    (> (parcel-weight p) 1000))

  (defn total [a : parcel? b : parcel?] : int?
    (+ (parcel-weight a)
       (lib/parcel-weight b)
       (if (heavy? a) 1 0))))
"""

PLAIN_TEXT_CLIENT = types.ClientCapabilities(  # what eglot 1.9 sends without markdown-mode
    workspace=types.WorkspaceClientCapabilities(
        did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True)),
    text_document=types.TextDocumentClientCapabilities(
        hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.PlainText]),
        completion=types.CompletionClientCapabilities(completion_item=types.ClientCompletionItemOptions())))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "lib.flow").write_text(LIB, encoding="utf-8")
    (folder / "app.flow").write_text(APP, encoding="utf-8")
    return folder


async def start(client: LanguageClient, folder: Path, capabilities: types.ClientCapabilities) -> None:
    """Initialize a session (the registrations the server asks for are kept: tests/conftest.py)."""
    client.registrations = []
    await client.initialize_session(types.InitializeParams(
        capabilities=capabilities, root_uri=folder.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="ws")]))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def client(lsp_client: LanguageClient, workspace: Path):
    await start(lsp_client, workspace, client_capabilities("visual-studio-code"))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def plain_client(lsp_client: LanguageClient, workspace: Path):
    await start(lsp_client, workspace, PLAIN_TEXT_CLIENT)
    yield
    await lsp_client.shutdown_session()


def span(text: str, needle: str, nth: int = 0, plus: int = 0, length: int | None = None) -> types.Range:
    start = pos(text, needle, plus=plus, nth=nth)
    return types.Range(start=start, end=types.Position(
        line=start.line, character=start.character + (len(needle) - plus if length is None else length)))


# -- call hierarchy -------------------------------------------------------------------------------------

async def prepare(client: LanguageClient, uri: str, position: types.Position) -> list[types.CallHierarchyItem]:
    return await client.text_document_prepare_call_hierarchy_async(types.CallHierarchyPrepareParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))


async def test_incoming_calls_come_from_every_file_with_the_ranges_of_the_calls(client, workspace):
    lib = open_doc(client, workspace / "lib.flow")
    app_uri = (workspace / "app.flow").as_uri()
    await diagnostics(client, lib)
    # From a use of the name in app.flow: the item is the definition in lib.flow.
    (item,) = await prepare(client, app_uri, pos(APP, "(parcel-weight a)", plus=3))
    assert (item.name, item.kind, item.uri, item.detail) == ("parcel-weight", types.SymbolKind.Function, lib, "ship.lib")
    assert item.selection_range == span(LIB, "parcel-weight [p", length=len("parcel-weight"))
    assert item.selection_range.end.character - item.selection_range.start.character == len("parcel-weight")

    incoming = await client.call_hierarchy_incoming_calls_async(types.CallHierarchyIncomingCallsParams(item=item))
    found = {(call.from_.name, call.from_.uri): list(call.from_ranges) for call in incoming}
    assert set(found) == {("parcel-weight-raw", lib), ("heavy?", app_uri), ("total", app_uri)}
    assert found[("parcel-weight-raw", lib)] == [span(LIB, "parcel-weight p)", length=len("parcel-weight"))]
    assert found[("heavy?", app_uri)] == [span(APP, "parcel-weight p)", length=len("parcel-weight"))]
    # Both calls in `total`, the qualified one too, each at its own name.
    assert found[("total", app_uri)] == [span(APP, "parcel-weight a)", length=len("parcel-weight")),
                                         span(APP, "lib/parcel-weight b)", length=len("lib/parcel-weight"))]


async def test_outgoing_calls_name_each_callee_once_with_every_call(client, workspace):
    app = open_doc(client, workspace / "app.flow")
    await diagnostics(client, app)
    (item,) = await prepare(client, app, pos(APP, "(defn total", plus=7))
    assert item.name == "total" and item.range.start == pos(APP, "(defn total")
    outgoing = await client.call_hierarchy_outgoing_calls_async(types.CallHierarchyOutgoingCallsParams(item=item))
    found = {call.to.name: (call.to.uri, list(call.from_ranges)) for call in outgoing}
    # Built-ins (`+`) are not definitions of the program; `parcel-weight` is one callee, called twice.
    assert set(found) == {"parcel-weight", "heavy?"}
    assert found["parcel-weight"] == ((workspace / "lib.flow").as_uri(), [
        span(APP, "parcel-weight a)", length=len("parcel-weight")),
        span(APP, "lib/parcel-weight b)", length=len("lib/parcel-weight"))])
    assert found["heavy?"] == (app, [span(APP, "heavy? a)", length=len("heavy?"))])
    # Nothing callable at a number: no item.
    assert await prepare(client, app, pos(APP, "1000")) is None


async def test_the_hierarchy_follows_edits(client, workspace):
    app = open_doc(client, workspace / "app.flow")
    await diagnostics(client, app)
    (item,) = await prepare(client, app, pos(APP, "(defn heavy?", plus=7))
    # A new caller of `heavy?` typed into the buffer is found with the item prepared before.
    text = APP.replace("(if (heavy? a) 1 0)", "(if (heavy? a) 1 0)\n       (if (heavy? b) 1 0)")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=app, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    incoming = await client.call_hierarchy_incoming_calls_async(types.CallHierarchyIncomingCallsParams(item=item))
    (total_ranges,) = [list(call.from_ranges) for call in incoming if call.from_.name == "total"]
    assert total_ranges == [span(text, "heavy? a)", length=6), span(text, "heavy? b)", length=6)]


# -- completion -----------------------------------------------------------------------------------------

async def test_completion_matches_a_subsequence_ranks_prefixes_first_and_documents_in_markdown(client, workspace):
    text = APP.replace("(heavy? a)", "(parcel-wi a)")
    app = open_doc(client, workspace / "app.flow", text)
    await diagnostics(client, app, lambda d: len(d) > 0)
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=app), position=pos(text, "(parcel-wi a)", plus=10)))
    labels = [item.label for item in sorted(result.items, key=lambda item: item.sort_text)]
    # `parcel-weight` (and its -raw) hold `parcel-wi` as a subsequence; `parcel-width` is not referred.
    assert "parcel-weight" in labels and "heavy?" not in labels and "total" not in labels
    item = next(item for item in result.items if item.label == "parcel-weight")
    assert item.text_edit.range == span(text, "parcel-wi a)", length=len("parcel-wi"))

    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=app), position=pos(text, "(parcel-wi a)", plus=2)))
    ranked = [item.label for item in sorted(result.items, key=lambda item: item.sort_text)]
    # After `(p`: the names it begins first, then those it is in (`map`, `defpackage`).
    assert ranked[0] == "parcel-weight" and "map" in ranked and "defpackage" in ranked
    assert all(item.sort_text.startswith("1") for item in result.items if not item.label.startswith("p"))


    # This client (VS Code's capabilities) asks for Markdown: hover and documentation come so.
    contents = await hover_of(client, app, pos(text, "(parcel-weight a)", plus=3))
    assert contents.kind == types.MarkupKind.Markdown
    assert contents.value.startswith("```flowmetal\n(defn parcel-weight [p : parcel?] : int?)\n```")
    assert "*function* in package `ship.lib`" in contents.value
    assert item.documentation.kind == types.MarkupKind.Markdown


# -- Markdown or plain text -------------------------------------------------------------------------------

async def hover_of(client, uri, position) -> types.MarkupContent:
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))
    return result.contents


# eglot says nothing of completion documentation's format: plain text, the protocol's default.
@pytest.mark.filterwarnings("ignore:Client does not support documentation format")
async def test_plain_text_for_a_client_that_does_not_ask_for_markdown(plain_client, workspace):
    client = plain_client
    app = open_doc(client, workspace / "app.flow")
    await diagnostics(client, app)
    contents = await hover_of(client, app, pos(APP, "(parcel-weight a)", plus=3))
    assert contents.kind == types.MarkupKind.PlainText
    assert contents.value == ("(defn parcel-weight [p : parcel?] : int?)\n\n"
                              "function in package `ship.lib`\n\nThe weight of `p`, in grams.")
    assert "```" not in contents.value and "*" not in contents.value
    endpoint = await hover_of(client, app, pos(APP, "(> (parcel", plus=1))
    assert endpoint.kind == types.MarkupKind.PlainText and "```" not in endpoint.value
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=app), position=pos(APP, "(parcel-weight a)", plus=5)))
    item = next(item for item in result.items if item.label == "parcel-weight")
    assert item.documentation == types.MarkupContent(kind=types.MarkupKind.PlainText,
                                                     value="The weight of `p`, in grams.")


# -- files changed on disk ----------------------------------------------------------------------------

def watched(client: LanguageClient, *changes: tuple[Path, types.FileChangeType]) -> None:
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=path.as_uri(), type=kind) for path, kind in changes]))


async def test_the_server_registers_a_watcher_for_flow_files(plain_client, workspace):
    # The server asks as it is initialized, before it publishes anything: once diagnostics came,
    # the request has been answered.
    await diagnostics(plain_client, open_doc(plain_client, workspace / "app.flow"))
    (registration,) = [r for r in plain_client.registrations
                       if r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    options = registration.register_options
    globs = [w["globPattern"] if isinstance(w, dict) else w.glob_pattern
             for w in (options["watchers"] if isinstance(options, dict) else options.watchers)]
    assert globs == ["**/*.flow"]


async def test_files_changed_created_and_deleted_on_disk_are_read_again(client, workspace):
    app = open_doc(client, workspace / "app.flow")
    assert await diagnostics(client, app) == []
    lib_path = workspace / "lib.flow"

    # A checkout renames `parcel-weight` in lib.flow, which is not open: app.flow's uses break.
    lib_path.write_text(LIB.replace("parcel-weight ", "parcel-mass ").replace("(parcel-weight p)",
                                                                            "(parcel-mass p)"), encoding="utf-8")
    watched(client, (lib_path, types.FileChangeType.Changed))
    found = await diagnostics(client, app, lambda d: any("parcel-weight" in x.message for x in d))
    assert any(x.code == "FM304" for x in found), client.log_messages

    # lib.flow deleted: the package is gone.
    lib_path.unlink()
    watched(client, (lib_path, types.FileChangeType.Deleted))
    await diagnostics(client, app, lambda d: any(x.code == "FM303" for x in d))  # no package `ship.lib`

    # ... and created again, as it was: clean.
    (workspace / "lib.flow").write_text(LIB, encoding="utf-8")
    watched(client, (lib_path, types.FileChangeType.Created))
    assert await diagnostics(client, app, lambda d: not d) == []


async def test_an_open_document_keeps_the_editors_text(client, workspace):
    lib = open_doc(client, workspace / "lib.flow")
    app = open_doc(client, workspace / "app.flow")
    await diagnostics(client, app)
    (workspace / "lib.flow").write_text("(defpackage ship.lib)\n", encoding="utf-8")
    watched(client, (workspace / "lib.flow", types.FileChangeType.Changed))
    # Something to wait for after the change: an edit of app.flow that breaks it.
    text = APP.replace("(heavy? a)", "(heavy? a a)")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=app, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    found = await diagnostics(client, app, lambda d: len(d) > 0)
    assert all("parcel" not in x.message for x in found), found
    assert lib in client.diagnostics
