"""Code lenses that stay right, and arguments checked as they are typed (docs/lsp-protocol.md).

`flowmetal lsp` over stdio with a real LSP client (the client fixtures of
test_runs.py), on a scratch workspace:

- a file whose package another file defines too has no lenses (FM305); when the
  other file is fixed, the server asks the client for its lenses again
  (`workspace/codeLens/refresh`), and they are back;
- the Trace lens's count follows the runs, started from the editor or from the
  command line, and the store the settings name, each change followed by a refresh;
- `flowmetal/checkArgument` says what is wrong with one argument's text, as the run
  would, and the Run lens gives each optional parameter's default.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_kit import ENV, Seen, command, flowmetal, plain, request, start_session, watch  # noqa: E402

ONE = """(defpackage acme.app
  (defn other [] : int? 1))
"""
TWO = """(defpackage acme.app
  (defn main [n : int?] : int?
    n))
"""
ARGS = """(defpackage acme.args
  (defenum step +reboot+ +drain+)
  (defrecord target [host : str? port : int?])
  (defn go [host : str? count : int? :default (+ 1   2) steps : (list? step?) :default [+reboot+] to : target? :default (target "a" 1)] : int?
    count)
  (defn hello [] : str? "hello"))
"""


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "one.flow").write_text(ONE)
    (root / "two.flow").write_text(TWO)
    (root / "args.flow").write_text(ARGS)
    return root


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"],
                                              server_env=ENV))
async def client(lsp_client: LanguageClient, workspace: Path):
    watch(lsp_client)
    await start_session(lsp_client, workspace)
    yield
    await lsp_client.shutdown_session()


def open_document(client: LanguageClient, path: Path) -> str:
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=path.as_uri(), language_id="flowmetal", version=1, text=path.read_text())))
    return path.as_uri()


async def lens_titles(client: LanguageClient, uri: str) -> set[tuple[str, str]]:
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    return {(lens.command.arguments[0]["entry"], lens.command.title) for lens in lenses}


async def until(predicate, what: str, timeout: float = 30.0):
    """Wait for `predicate()` to hold (the client's state moves as notifications come in)."""
    async def wait():
        while not predicate():
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(wait(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} in {timeout}s") from None


async def test_lenses_hidden_by_an_error_in_another_file_come_back_when_it_is_fixed(client: LanguageClient):
    seen: Seen = client.seen
    one = open_document(client, client.workspace / "one.flow")
    two = open_document(client, client.workspace / "two.flow")
    await until(lambda: client.diagnostics.get(two), what="diagnostics of two.flow")
    # `acme.app` is one.flow's: two.flow's main is hidden.
    assert [d.code for d in client.diagnostics[two]] == ["FM305"]
    assert not any(entry == "acme.app/main" for entry, _ in await lens_titles(client, two))

    before = seen.refreshes
    # one.flow's package gets another name: nothing in two.flow changed, its lenses did.
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=one, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=ONE.replace("acme.app", "acme.other"))]))
    await until(lambda: not client.diagnostics[two], what="two.flow's error to go")
    await until(lambda: seen.refreshes > before, what="a code lens refresh")
    assert ("acme.app/main", "▶ Run…") in await lens_titles(client, two)

    # Breaking it again hides them again, with another refresh.
    before = seen.refreshes
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=one, version=3),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=ONE)]))
    await until(lambda: seen.refreshes > before, what="a code lens refresh")
    assert not any(entry == "acme.app/main" for entry, _ in await lens_titles(client, two))


async def test_the_trace_lens_counts_the_runs_as_they_start_and_end(client: LanguageClient):
    seen: Seen = client.seen
    uri = open_document(client, client.workspace / "args.flow")
    assert ("acme.args/hello", "Trace (0 runs)") in await lens_titles(client, uri)
    await request(client, "flowmetal/runs")  # the server watches the store from its start

    before = seen.refreshes
    run_id = (await command(client, "flowmetal.run", uri=uri, entry="acme.args/hello", args=[]))["runId"]
    await seen.until(lambda: "completed" in seen.statuses(run_id), what="the run to complete")
    await until(lambda: seen.refreshes > before, what="a code lens refresh")
    assert ("acme.args/hello", "Trace (1 run)") in await lens_titles(client, uri)

    # A run recorded by the command line on the same store counts too, once it is seen.
    before = seen.refreshes
    recorded = flowmetal("run", "args.flow", "hello", cwd=client.workspace)
    assert recorded.returncode == 0, recorded.stderr
    await until(lambda: seen.refreshes > before, what="a code lens refresh")
    assert ("acme.args/hello", "Trace (2 runs)") in await lens_titles(client, uri)

    # Another store holds other runs: the lenses count those.
    before = seen.refreshes
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"flowmetal": {"store": "elsewhere.db"}}))
    await until(lambda: seen.refreshes > before, what="a code lens refresh")
    assert ("acme.args/hello", "Trace (0 runs)") in await lens_titles(client, uri)


async def test_one_argument_is_checked_against_its_parameter(client: LanguageClient):
    uri = open_document(client, client.workspace / "args.flow")

    async def check(param: str, text: str, entry: str = "acme.args/go"):
        answer = await request(client, "flowmetal/checkArgument", uri=uri, entry=entry, param=param, text=text)
        return answer["message"]

    assert await check("host", '"web-1"') is None
    assert await check("host", "3") == "`host` must be str?, not 3"
    assert "quote it as a string" in await check("host", "web-1")
    assert await check("host", "") == "`host` needs a value: a Flowmetal literal of type str?"
    assert await check("count", "") is None  # optional: its default applies
    assert await check("count", "12") is None
    assert "unterminated string" in await check("count", '"12')
    assert await check("steps", "[+drain+ +reboot+]") is None
    assert await check("steps", "[+halt+]") == "`+halt+` is no enum member known in `acme.args`"
    assert await check("to", '(target "db-1" 5432)') is None
    assert await check("to", '"db-1"') == '`to` must be target?, not "db-1"'
    assert await check("to", "(launch 1)") == "only a record constructor may head a literal list"
    assert await check("nope", "1") == "`acme.args/go` has no parameter `nope` any more"
    assert await check("host", "1", entry="acme.args/gone") == "`acme.args/gone` is no function of this file any more"
    with pytest.raises(JsonRpcException):
        await request(client, "flowmetal/checkArgument", uri=uri, entry="acme.args/go", param="host")

    # The Run lens gives each parameter's default as written (on one line).
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    (go,) = [plain(lens.command.arguments)[0] for lens in lenses
             if lens.command.command == "flowmetal.run" and lens.command.arguments[0]["entry"] == "acme.args/go"]
    assert [(p["name"], p["optional"], p["default"]) for p in go["params"]] == [
        ("host", False, None), ("count", True, "(+ 1 2)"), ("steps", True, "[+reboot+]"),
        ("to", True, '(target "a" 1)')]
