"""Random edit sequences against the running server: after every edit its published
diagnostics are exactly those of a fresh check of the same text, and it never stops
answering."""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import pytest
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from flowmetal.lang.analysis import check_sources

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = (ROOT / "examples" / "wilson.flow").read_text(encoding="utf-8")
FOLDER = ROOT / "tests" / "testdata" / "lsp"
_names = itertools.count()


@pytest_lsp.fixture(scope="module",
                    config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=None))
    yield
    await lsp_client.shutdown_session()


def expected(text: str, name: str):
    return sorted((d.span.line - 1, d.span.column - 1, d.span.end_line - 1, d.span.end_column - 1, d.code, d.message)
                  for d in check_sources({name: text}))


def published(client: LanguageClient, uri: str):
    return sorted((d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character,
                   d.code, d.message) for d in client.diagnostics.get(uri, ()))


def position(text: str, index: int) -> types.Position:
    line = text.count("\n", 0, index)
    return types.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


EDITS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 5),
                           st.sampled_from(["", "x", "(", ")", "]", '"', "1", " ", "\n", "(f 1)", ":", "int?",
                                            "sleep", "+red+", ";"])),
                 min_size=1, max_size=8)


@pytest.mark.asyncio(loop_scope="module")
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(edits=EDITS)
async def test_random_edits_keep_diagnostics_equal_to_a_fresh_check(client: LanguageClient, edits):
    path = FOLDER / f"random-{next(_names)}.flow"
    uri, name = path.as_uri(), str(path)
    text = PROGRAM
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="flowmetal", version=1, text=text)))
    for version, (where, length, new) in enumerate(edits, start=2):
        start = int(where * len(text))
        end = min(len(text), start + length)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=position(text, start), end=position(text, end)), text=new)]))
        text = text[:start] + new + text[end:]
        want = expected(text, name)

        async def settle():
            while published(client, uri) != want:
                await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        # Identical diagnostics are not published again, so a symbols request
        # first makes sure the server has taken the change in.
        await client.text_document_document_symbol_async(types.DocumentSymbolParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))
        if published(client, uri) != want:
            await asyncio.wait_for(settle(), 20)
        assert published(client, uri) == want
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
