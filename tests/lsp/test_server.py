"""The language server end to end: `flowmetal lsp` over stdio, driven by a real LSP client.

The workspace is `tests/testdata/lsp/` (two packages across two files); each
test opens documents, edits them in memory, and asks what an editor asks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "tests" / "testdata" / "lsp"
APP = WORKSPACE / "app.flow"
LIB = WORKSPACE / "lib.flow"
APP_URI = APP.as_uri()
LIB_URI = LIB.as_uri()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=WORKSPACE.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=WORKSPACE.as_uri(), name="lsp")]))
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=path.as_uri(), language_id="flowmetal", version=version,
        text=text if text is not None else path.read_text(encoding="utf-8"))))
    return path.as_uri()


async def diagnostics(client: LanguageClient, uri: str, predicate=lambda d: True, timeout: float = 20):
    """Wait until the diagnostics published for `uri` satisfy `predicate`."""
    async def wait():
        while True:
            if uri in client.diagnostics and predicate(client.diagnostics[uri]):
                return list(client.diagnostics[uri])
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return await asyncio.wait_for(wait(), timeout)


def pos(text: str, needle: str, plus: int = 0, nth: int = 0) -> types.Position:
    """The protocol position (UTF-16) of `needle` in `text`."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    i += plus
    line = text.count("\n", 0, i)
    start = text.rfind("\n", 0, i) + 1
    return types.Position(line=line, character=len(text[start:i].encode("utf-16-le")) // 2)


def change(client: LanguageClient, uri: str, version: int, start: types.Position, end: types.Position, text: str):
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=start, end=end), text=text)]))


APP_TEXT = APP.read_text(encoding="utf-8")
LIB_TEXT = LIB.read_text(encoding="utf-8")


# -- diagnostics --------------------------------------------------------------------------------

async def test_diagnostics_on_open_and_on_every_change(client: LanguageClient):
    uri = open_doc(client, APP)
    assert await diagnostics(client, uri) == []
    # Break a call: `(norm p :scale 2)` -> `(norm p :scael 2)`.
    at = pos(APP_TEXT, ":scale", plus=1)
    change(client, uri, 2, at, types.Position(line=at.line, character=at.character + 5), "scael")
    found = await diagnostics(client, uri, lambda d: len(d) == 1)
    (diag,) = found
    assert diag.code == "FM402" and diag.source == "flowmetal"
    assert diag.message == "`norm` has no parameter `scael`; did you mean `:scale`?"
    assert diag.range.start == types.Position(line=at.line, character=at.character - 1)
    # And repair it: the diagnostics go away.
    change(client, uri, 3, at, types.Position(line=at.line, character=at.character + 5), "scale")
    assert await diagnostics(client, uri, lambda d: len(d) == 0) == []


async def test_diagnostics_carry_related_information(client: LanguageClient):
    text = "(defpackage p\n  (defn f [x] x]))\n"
    uri = open_doc(client, WORKSPACE / "scratch.flow", text)
    found = await diagnostics(client, uri, lambda d: any(x.code == "FM103" for x in d))
    mismatch = next(x for x in found if x.code == "FM103")
    (related,) = mismatch.related_information
    assert related.location.uri == uri and related.message == "`(` opened here"
    assert related.location.range.start == types.Position(line=1, character=2)


async def test_a_change_in_one_file_updates_the_other(client: LanguageClient):
    app = open_doc(client, APP)
    lib = open_doc(client, LIB)
    await diagnostics(client, app)
    # Rename `norm` in lib.flow only: app.flow's use of it becomes an error.
    at = pos(LIB_TEXT, "(defn norm", plus=6)
    change(client, lib, 2, at, types.Position(line=at.line, character=at.character + 4), "size")
    found = await diagnostics(client, app, lambda d: any(x.code == "FM304" for x in d))
    assert any("`norm` is not defined by package `acme.lib`" in x.message for x in found)


# -- hover, definition, references ----------------------------------------------------------------

async def test_hover_shows_signature_docstring_and_durability(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "(norm p", plus=2)))
    value = result.contents.value
    assert "(defn norm [p : point? :default ... scale : int? :default ...] : int?)" in value
    assert "The taxicab norm of `p`, times `scale`." in value
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "t/sleep!", plus=3)))
    assert "Durable step" in result.contents.value and "defendpoint sleep!" in result.contents.value


TASKS_TEXT = """(defpackage acme.tasks
  (require [flowmetal.task :refer [spawn! await-all!]])
  (defn reboot [host : str?] : int? (count host))
  (defn reboot-all [hosts : (list? str?)] : (list? int?)
    (let [ts (map (fn [h] (spawn! (fn [] (reboot h)))) hosts)]
      (await-all! ts))))
"""


async def test_hover_on_a_standard_generic_endpoint_shows_its_type_variables(client: LanguageClient):
    uri = open_doc(client, WORKSPACE / "tasks.flow", TASKS_TEXT)
    assert await diagnostics(client, uri) == []
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(TASKS_TEXT, "(spawn! (fn", plus=2)))
    value = result.contents.value
    assert "(defendpoint spawn! [f : (fn? [] : a)] : (task? a))" in value
    assert "package `flowmetal.task`" in value
    assert "Start `(f)` as a task of this run and return the task at once." in value
    local = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(TASKS_TEXT, "(await-all! ts)", plus=12)))
    assert "ts : (list? (task? int?))" in local.contents.value


CHILDREN_TEXT = """(defpackage acme.children
  (require [flowmetal.run :refer [start-run! await-run!]])
  (defn reboot [host : str?] : int? (count host))
  (defn reboot-one [host : str?] : int?
    (let [c (start-run! reboot host)]
      (await-run! c))))
"""


async def test_hover_on_start_run_shows_its_arguments_and_the_child_run_its_type(client: LanguageClient):
    uri = open_doc(client, WORKSPACE / "children.flow", CHILDREN_TEXT)
    assert await diagnostics(client, uri) == []
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(CHILDREN_TEXT, "(start-run! reboot", plus=2)))
    value = result.contents.value
    assert "(defendpoint start-run! [f : fn? & arg : any?] : child?)" in value
    assert "package `flowmetal.run`" in value and "start `(f arg...)` as a child run" in value
    local = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(CHILDREN_TEXT, "(await-run! c)", plus=12)))
    assert "c : (child? int?)" in local.contents.value


async def test_hover_on_a_local_shows_its_narrowed_type(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    narrowed = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "(+ v 1)", plus=3)))
    assert "v : int?" in narrowed.contents.value
    text = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, '"text " v', plus=8)))
    assert "v : str?" in text.contents.value


async def test_definition_into_another_file_and_into_the_standard_packages(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    (loc,) = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "(norm p", plus=1)))
    assert loc.uri == LIB_URI and loc.range.start == pos(LIB_TEXT, "norm [p")
    (loc,) = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "t/sleep!", plus=4)))
    assert loc.uri.endswith("/flowmetal/stdlib/flowmetal.time.flow")


SIGNAL_TEXT = """\
(defpackage acme.door
  (require [flowmetal.signal :as s])
  (defn knock [] (s/receive! "knock")))
"""


async def test_the_signal_package_is_known_as_other_standard_packages(client: LanguageClient):
    uri = open_doc(client, WORKSPACE / "door.flow", SIGNAL_TEXT)  # only in the editor
    assert await diagnostics(client, uri) == []
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(SIGNAL_TEXT, "s/receive!", plus=3)))
    value = hover.contents.value
    assert "Durable step" in value and "(defendpoint receive! [name : str?] : json?)" in value
    assert "Wait for the next signal called `name`" in value
    (loc,) = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(SIGNAL_TEXT, "s/receive!", plus=3)))
    assert loc.uri.endswith("/flowmetal/stdlib/flowmetal.signal.flow")
    labels = await completion_labels(client, uri, SIGNAL_TEXT, pos(SIGNAL_TEXT, "s/receive!", plus=4))
    assert "s/receive!" in labels


async def test_references_across_files(client: LanguageClient):
    uri = open_doc(client, LIB)
    await diagnostics(client, uri)
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(LIB_TEXT, "defn norm", plus=6),
        context=types.ReferenceContext(include_declaration=True)))
    places = sorted((loc.uri.rsplit("/", 1)[1], loc.range.start.line) for loc in found)
    assert places == [("app.flow", 1), ("app.flow", 23), ("lib.flow", 8)]


# -- rename and symbols ----------------------------------------------------------------------------

async def test_prepare_rename_and_rename_across_the_workspace(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    at = pos(APP_TEXT, "(norm p", plus=2)
    prepared = await client.text_document_prepare_rename_async(types.PrepareRenameParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at))
    assert prepared.placeholder == "norm"
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at, new_name="magnitude"))
    changed = {u.rsplit("/", 1)[1]: sorted(e.range.start.line for e in edits) for u, edits in edit.changes.items()}
    assert changed == {"app.flow": [1, 23], "lib.flow": [8]}
    assert all(e.new_text == "magnitude" for edits in edit.changes.values() for e in edits)
    # A built-in cannot be renamed.
    refused = await client.text_document_prepare_rename_async(types.PrepareRenameParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "(count label", plus=2)))
    assert refused is None


async def test_renaming_a_record_renames_its_predicate_and_accessors(client: LanguageClient):
    uri = open_doc(client, LIB)
    await diagnostics(client, uri)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(LIB_TEXT, "defrecord point", plus=11),
        new_name="spot"))
    texts = sorted({e.new_text for edits in edit.changes.values() for e in edits})
    assert texts == ["spot", "spot-x", "spot-y", "spot?"]


async def test_document_and_workspace_symbols(client: LanguageClient):
    uri = open_doc(client, LIB)
    await diagnostics(client, uri)
    (package,) = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert package.name == "acme.lib" and package.kind == types.SymbolKind.Namespace
    assert [(c.name, c.kind) for c in package.children] == [
        ("color", types.SymbolKind.Enum), ("point", types.SymbolKind.Struct),
        ("norm", types.SymbolKind.Function), ("pause", types.SymbolKind.Function)]
    assert [m.name for m in package.children[0].children] == ["+red+", "+amber+", "+green+"]
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="descr"))
    assert [(s.name, s.container_name) for s in found] == [("describe", "acme.app")]


# -- completion and signature help ----------------------------------------------------------------

async def completion_labels(client, uri, text, position) -> list[str]:
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))
    return [item.label for item in result.items]


async def test_completion_knows_the_scope(client: LanguageClient):
    text = APP_TEXT.replace("(count label)", "(no label)")
    uri = open_doc(client, APP, text)
    await diagnostics(client, uri, lambda d: len(d) > 0)
    after_paren = await completion_labels(client, uri, text, pos(text, "(no label", plus=3))
    assert "norm" in after_paren and "count" not in after_paren and "not" in after_paren
    assert "label" not in after_paren
    members = await completion_labels(client, uri, text, pos(text, "[+amber+", plus=3))
    assert members == ["+amber+"]
    every = await completion_labels(client, uri, text, pos(text, "[+amber+", plus=2))
    assert sorted(every) == ["+amber+", "+green+", "+red+"]
    keywords = await completion_labels(client, uri, text, pos(text, ":scale", plus=2))
    assert keywords == [":scale"]
    qualified = await completion_labels(client, uri, text, pos(text, "t/make-duration", plus=4))
    assert "t/make-duration" in qualified and "t/sleep!" not in qualified


async def test_completion_inside_a_refer_lists_the_packages_names(client: LanguageClient):
    text = "(defpackage acme.refers\n  (require [flowmetal.task :refer []])\n  (defn f [] 1))\n"
    uri = open_doc(client, WORKSPACE / "refers.flow", text)
    await diagnostics(client, uri)
    names = await completion_labels(client, uri, text, pos(text, ":refer [", plus=8))
    assert names == ["await!", "await-all!", "await-any!", "cancel!", "spawn!"]
    # Typing one: the names it begins, and not those listed already.
    text2 = text.replace(":refer []", ":refer [spawn! aw]")
    change(client, uri, 2, pos(text, ":refer [", plus=7), pos(text, ":refer []", plus=9), "[spawn! aw]")
    await diagnostics(client, uri, lambda d: any("aw" in x.message for x in d))
    names = await completion_labels(client, uri, text2, pos(text2, " aw]", plus=3))
    assert names == ["await!", "await-all!", "await-any!"]


async def test_completion_inside_a_refer_lists_the_child_run_names(client: LanguageClient):
    text = "(defpackage acme.refers2\n  (require [flowmetal.run :refer []])\n  (defn f [] 1))\n"
    uri = open_doc(client, WORKSPACE / "refers2.flow", text)
    await diagnostics(client, uri)
    names = await completion_labels(client, uri, text, pos(text, ":refer [", plus=8))
    assert names == ["await-run!", "cancel-run!", "start-run!"]


async def test_signature_help_shows_the_active_parameter(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    help_ = await client.text_document_signature_help_async(types.SignatureHelpParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(APP_TEXT, "(point 3 4)", plus=9)))
    (signature,) = help_.signatures
    assert signature.label == "(point x : int? y : int?) : point?"
    assert help_.active_parameter == 1
    start, end = signature.parameters[1].label
    assert signature.label[start:end] == "y : int?"


# -- presentation ------------------------------------------------------------------------------------

async def test_semantic_tokens_mark_durable_calls_apart(client: LanguageClient):
    uri = open_doc(client, LIB)
    await diagnostics(client, uri)
    legend = client.capabilities  # noqa: F841 (the server's legend is fixed: see flowmetal.ide.features)
    from flowmetal.ide.features import TOKEN_MODIFIERS, TOKEN_TYPES
    result = await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    line = char = 0
    decoded = {}
    lines = LIB_TEXT.split("\n")
    for i in range(0, len(result.data), 5):
        dl, dc, length, kind, mods = result.data[i:i + 5]
        line, char = line + dl, (char + dc if dl == 0 else dc)
        text = lines[line].encode("utf-16-le")[char * 2:(char + length) * 2].decode("utf-16-le")
        decoded.setdefault(text, (TOKEN_TYPES[kind], {m for j, m in enumerate(TOKEN_MODIFIERS) if mods >> j & 1}))
    assert decoded["sleep!"][0] == "function" and "durable" in decoded["sleep!"][1]
    assert decoded["point-x"][0] == "function" and "durable" not in decoded["point-x"][1]
    assert decoded["+red+"][0] == "enumMember"
    assert decoded["int?"][0] == "type"
    assert decoded["defn"][0] == "keyword"
    assert decoded["acme.lib"][0] == "namespace"


async def test_code_actions_fix_names_add_refers_and_match_clauses(client: LanguageClient):
    text = (APP_TEXT.replace("(count label)", "(cont label)")
            .replace("      [+green+ 2]))", "      ))")
            .replace("(t/sleep! (t/make-duration 1 t/+seconds+))", "(t/sleep! (t/make-duration 1 t/+seconds+)) (pause 1)"))
    uri = open_doc(client, APP, text)
    found = await diagnostics(client, uri, lambda d: len(d) >= 3)
    assert {d.code for d in found} == {"FM301", "FM302", "FM502", "FM603"}  # +green+ now unused
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=30, character=0)),
        context=types.CodeActionContext(diagnostics=found)))
    titles = sorted(a.title for a in actions)
    assert titles == ["Add `pause` to the `:refer` of `acme.lib`", "Add the missing match clause: +green+",
                      "Replace with `count`"]
    refer = next(a for a in actions if "pause" in a.title)
    (edit,) = refer.edit.changes[uri]
    assert edit.new_text == " pause" and edit.range.start == pos(text, " +green+]]", plus=8)


async def test_inlay_hints_folding_selection_and_code_lens(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=40, character=0))))
    assert [(h.position, h.label) for h in hints] == [(pos(APP_TEXT, "p (point", plus=1), " : point?"),
                                                      (pos(APP_TEXT, "label \"", plus=5), " : str?")]
    folds = await client.text_document_folding_range_async(types.FoldingRangeParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert (4, 10) in {(f.start_line, f.end_line) for f in folds}  # describe
    (selection,) = await client.text_document_selection_range_async(types.SelectionRangeParams(
        text_document=types.TextDocumentIdentifier(uri=uri), positions=[pos(APP_TEXT, "(+ v 1)", plus=3)]))
    ranges = []
    while selection is not None:
        ranges.append(selection.range)
        selection = selection.parent
    assert ranges[0].start == pos(APP_TEXT, "(+ v 1)", plus=3)
    assert ranges[1].start == pos(APP_TEXT, "(+ v 1)")
    assert ranges[-1].start == types.Position(line=0, character=0)
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    runs = [lens for lens in lenses if lens.command.command == "flowmetal.run"]
    assert sorted(lens.command.arguments[0]["entry"] for lens in runs) == [
        "acme.app/describe", "acme.app/light", "acme.app/main"]
    traces = [lens.command.title for lens in lenses if lens.command.command == "flowmetal.showRuns"]
    assert traces == ["Trace (0 runs)"] * 3


async def test_positions_are_utf16_at_the_edge(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    # `label` stands after a 🚦 (two UTF-16 units, one code point) on its line.
    text = APP_TEXT.replace('"🚦 go"]', '"🚦 go" bad]')
    uri2 = open_doc(client, WORKSPACE / "utf16.flow", text.replace("acme.app", "acme.utf"))
    found = await diagnostics(client, uri2, lambda d: len(d) > 0)
    odd = next(d for d in found if d.code == "FM202")
    line = text.replace("acme.app", "acme.utf").split("\n")[odd.range.start.line]
    assert line.encode("utf-16-le")[odd.range.start.character * 2:].decode("utf-16-le").startswith("bad")


# -- robustness ---------------------------------------------------------------------------------------

async def test_bad_requests_and_edits_do_not_take_the_server_down(client: LanguageClient):
    uri = open_doc(client, APP)
    await diagnostics(client, uri)
    # Positions far outside the document, an unknown document, and edits past its end.
    far = types.Position(line=10_000, character=500)
    await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=far))
    await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri="file:///nowhere.flow"), position=far))
    change(client, uri, 2, far, far, "(((")
    change(client, uri, 3, types.Position(line=0, character=0), far, "")
    found = await diagnostics(client, uri, lambda d: True)
    assert isinstance(found, list)
    # Still answering.
    result = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert result == []


def test_the_server_also_listens_on_tcp(tmp_path):
    """`flowmetal lsp --tcp PORT`: the same server on a socket (here: initialize and shut down)."""
    import json
    import socket
    import subprocess
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "flowmetal", "lsp", "--tcp", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.1)
        with conn:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                               "params": {"processId": None, "rootUri": None, "capabilities": {}}}).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
                    data.split(b"Content-Length: ")[1].split(b"\r\n")[0]):
                data += conn.recv(65536)
            reply = json.loads(data.split(b"\r\n\r\n", 1)[1])
            capabilities = reply["result"]["capabilities"]
            assert capabilities["hoverProvider"] and capabilities["renameProvider"]
            assert capabilities["semanticTokensProvider"]["legend"]["tokenTypes"][0] == "namespace"
    finally:
        server.kill()
        server.wait(timeout=10)


async def test_formatting_lays_the_document_out_canonically(client: LanguageClient):
    messy = "(defpackage acme.fmt\n     (defn   f [x : int?]   : int?\n  ;; keep me\n        (+ x\n 1)))\n"
    uri = open_doc(client, WORKSPACE / "fmt.flow", messy)
    await diagnostics(client, uri)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    (edit,) = edits
    from flowmetal.ide.format import format_text
    assert edit.new_text == format_text(messy)
    assert "  ;; keep me" in edit.new_text and format_text(edit.new_text) == edit.new_text
    # A broken document is left alone.
    broken = open_doc(client, WORKSPACE / "fmt-broken.flow", "(defpackage x (defn f [] 1)\n")
    await diagnostics(client, broken, lambda d: len(d) > 0)
    assert not await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=broken),
        options=types.FormattingOptions(tab_size=2, insert_spaces=True)))


RETRYING = WORKSPACE / "retrying.flow"  # given by the client only: never on disk
RETRYING_TEXT = """\
(defpackage demo.retrying
  (require [flowmetal.retry :as r]
           [flowmetal.time :refer [make-duration +seconds+]])
  (defn go [] : int? (r/retry! (fn [] 1) :attempts 3 :backoff (make-duration 1 +seconds+)))
  (defn wrong [] : int? (r/retry! (fn [] 1) :attempts "3")))
"""


async def test_the_retry_package_is_known_to_hover_completion_and_diagnostics(client: LanguageClient):
    uri = open_doc(client, RETRYING, RETRYING_TEXT)
    found = await diagnostics(client, uri, lambda d: len(d) > 0)
    assert [(x.code, x.message) for x in found] == [
        ("FM403", "expected int?, found str? (argument `attempts` of `retry!`)")]
    assert found[0].range.start == pos(RETRYING_TEXT, '"3"')
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(RETRYING_TEXT, "r/retry!", plus=3)))
    assert "(defn retry! [f : (fn? [] : a) attempts : int? :default ..." in hover.contents.value
    assert "retry-on : (fn? [a] : bool?) :default ...] : a)" in hover.contents.value
    assert "Defaults: `:attempts 5`" in hover.contents.value
    qualified = await completion_labels(client, uri, RETRYING_TEXT, pos(RETRYING_TEXT, "r/retry!", plus=4))
    assert "r/retry!" in qualified
    keywords = await completion_labels(client, uri, RETRYING_TEXT, pos(RETRYING_TEXT, ":backoff", plus=2))
    assert keywords == [":backoff", ":max-backoff"]  # `:b` begins the first; the second holds it
    (loc,) = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(RETRYING_TEXT, "r/retry!", plus=3)))
    assert loc.uri.endswith("/flowmetal/stdlib/flowmetal.retry.flow")
