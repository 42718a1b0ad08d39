"""The language server on documents nested ten thousand deep: it answers as on any other.

`flowmetal lsp` over stdio with a real LSP client, in an empty workspace: a
document of 10,000 nested forms gets its diagnostics, hovers and edits (the
edit re-checked in place); one nested past the limit gets FM203 alone.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from flowmetal.lang import deep

DEPTH = 5_000
# A `when` and a vector at each step: 10,000 levels of forms, the value `x` in DEPTH lists.
TEXT = ("(defpackage deep\n  (defn main [x : int?] : any?\n    (let [v "
        + "(when (> x 0) [" * DEPTH + "x" + "])" * DEPTH + "] v)))\n")
LEAF = TEXT.index("x]")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def client(lsp_client: LanguageClient, tmp_path: Path):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="deep")]))
    yield
    await lsp_client.shutdown_session()


def at(offset: int) -> types.Position:
    line = TEXT.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (TEXT.rfind("\n", 0, offset) + 1))


async def published(client: LanguageClient, uri: str, version: int, timeout: float = 120):
    """The diagnostics published for `uri` at `version` (asked for before any can come)."""
    async def wait():
        while True:
            params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)
    return await asyncio.wait_for(wait(), timeout)


def open_doc(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="flowmetal", version=1, text=text)))


async def test_a_document_ten_thousand_deep_is_checked_answered_and_edited(client: LanguageClient,
                                                                            tmp_path: Path):
    uri = (tmp_path / "deep.flow").as_uri()
    waiting = asyncio.ensure_future(published(client, uri, 1))
    open_doc(client, uri, TEXT)
    assert await waiting == []
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(LEAF)))
    assert "x : int?" in hover.contents.value
    # `v`: a list nested DEPTH deep, or nil at each level; its type is printed by a walk
    # deeper than Python's stack allows (so, on a deeper one).
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(TEXT.rindex("v)"))))
    shown = hover.contents.value
    assert "v : " + "(union? [(list? " * DEPTH + "int?" in shown and shown.count("nil?") == DEPTH
    # An edit at the leaf: `x` becomes `(+ x "s")`, a mistake reported where it is.
    waiting = asyncio.ensure_future(published(client, uri, 2))
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=at(LEAF), end=at(LEAF + 1)), text='(+ x "s")')]))
    diagnostics = await waiting
    assert [(d.code, d.range.start) for d in diagnostics] == [("FM403", at(LEAF + len("(+ x ")))]


async def test_a_document_nested_past_the_limit_gets_fm203_alone(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "too-deep.flow").as_uri()
    depth = deep.MAX_NESTING + 1
    text = "(defpackage deep\n  (defn main [x : int?] : any?\n    " + "[" * depth + "x" + "]" * depth + "))\n"
    waiting = asyncio.ensure_future(published(client, uri, 1))
    open_doc(client, uri, text)
    diagnostics = await waiting
    assert [(d.code, d.range.start) for d in diagnostics] == [
        ("FM203", types.Position(line=2, character=4 + deep.MAX_NESTING))]
