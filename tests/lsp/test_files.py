"""What the language server reads from disk, and who may talk to it (lsp/server.py, *What it reads*).

A URI from the client never makes the server read a file of the client's
choosing: only documents the client opened (their text came from the client)
and `.flow` files inside the workspace folders, links resolved. Checked over
stdio with a real LSP client asking, about a secret file outside the
workspace, a `.flow` file outside it and a link inside it to the secret, what
an editor asks after closing a document it never opened: nothing of their text
comes back. And `flowmetal lsp --tcp` listens on loopback only, and drops a
connection that is not LSP (an HTTP request, as a web page would send).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SECRET = "hunter2-s3cret"
# Flowmetal-shaped, badly laid out: every feature would have something to say about it.
LEAKY = f'(defpackage leak.secrets\n   (def password   "{SECRET}")\n (defn   hello [] : str?   "{SECRET}"))\n'
OWN = '(defpackage ws.own\n  (defn own-function [] : int?\n    1))\n'


@pytest.fixture
def places(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "own.flow").write_text(OWN, encoding="utf-8")
    (tmp_path / "secret.txt").write_text(LEAKY, encoding="utf-8")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "other.flow").write_text(LEAKY, encoding="utf-8")
    (workspace / "linked.flow").symlink_to(tmp_path / "secret.txt")
    return {"workspace": workspace, "secret": tmp_path / "secret.txt",
            "outside": tmp_path / "outside" / "other.flow", "linked": workspace / "linked.flow",
            "own": workspace / "own.flow"}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "flowmetal", "lsp"]))
async def client(lsp_client: LanguageClient, places):
    workspace = places["workspace"]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
    yield
    await lsp_client.shutdown_session()


async def answers(client: LanguageClient, uri: str) -> str:
    """Everything the server says about `uri`, after a close of it: as one string."""
    document = types.TextDocumentIdentifier(uri=uri)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=document))
    everywhere = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=99, character=0))
    said = [
        await client.text_document_formatting_async(types.DocumentFormattingParams(
            text_document=document, options=types.FormattingOptions(tab_size=2, insert_spaces=True))),
        await client.text_document_hover_async(types.HoverParams(
            text_document=document, position=types.Position(line=1, character=9))),
        await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=document)),
        await client.text_document_folding_range_async(types.FoldingRangeParams(text_document=document)),
        await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(text_document=document)),
        await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=document, range=everywhere)),
        await client.text_document_code_lens_async(types.CodeLensParams(text_document=document)),
        await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="password")),
    ]
    return repr(said)


async def test_files_the_client_did_not_open_are_not_read(client: LanguageClient, places):
    for name in ("secret", "outside", "linked"):
        said = await answers(client, places[name].as_uri())
        assert SECRET not in said and "password" not in said and "hello" not in said, (name, said)
        # Nothing to run there either: the file is not read for a run.
        with pytest.raises(JsonRpcException) as caught:
            await client.workspace_execute_command_async(types.ExecuteCommandParams(
                command="flowmetal.run", arguments=[{"uri": places[name].as_uri(), "entry": "leak.secrets/hello",
                                                     "args": []}]))
        assert "neither open in the editor nor a .flow file of the workspace" in caught.value.message
        assert SECRET not in caught.value.message

    # The workspace's own files are read (at the start, and again when closed).
    said = await answers(client, places["own"].as_uri())
    assert "own-function" in said


async def test_a_document_the_client_opened_is_answered_about(client: LanguageClient, places):
    uri = places["secret"].as_uri()
    text = '(defpackage opened.here\n   (def shown   "given by the client"))\n'
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="flowmetal", version=1, text=text)))
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert "shown" in repr(symbols) and SECRET not in repr(symbols)
    # Closed, it is gone, and not read from the disk in its place.
    said = await answers(client, uri)
    assert "shown" not in said and SECRET not in said


# -- TCP --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def message(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"processId": None, "rootUri": None, "capabilities": {}}}


def connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 30
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)


def received(conn: socket.socket) -> bytes:
    """What the server sends until it closes the connection or goes quiet for 3 s."""
    conn.settimeout(3)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def reply(conn: socket.socket) -> dict:
    """The next message the server sends."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.split(b"Content-Length: ")[1].split(b"\r\n")[0]):
        chunk = conn.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_tcp_listens_on_loopback_only():
    result = subprocess.run([sys.executable, "-m", "flowmetal", "lsp", "--tcp", str(free_port()),
                             "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--host 0.0.0.0 is not a loopback address" in result.stderr
    assert "Traceback" not in result.stderr


def test_tcp_drops_what_is_not_lsp_and_still_serves_a_client():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "flowmetal", "lsp", "--tcp", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # What a web page's fetch() sends: an HTTP request whose body is a JSON-RPC message.
        body = json.dumps(INITIALIZE).encode()
        with connect(port) as conn:
            conn.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % (port, len(body)) + body)
            assert received(conn) == b""  # no answer: the connection is closed unread
        # A real client after it is served.
        with connect(port) as conn:
            conn.sendall(message(INITIALIZE))
            assert reply(conn)["result"]["capabilities"]["hoverProvider"]
            # ... and is the only one while it is connected.
            with connect(port) as other:
                other.sendall(message(INITIALIZE))
                assert received(other) == b""
    finally:
        server.kill()
        server.wait(timeout=10)
