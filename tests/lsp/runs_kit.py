"""What the editor's run tests share (test_runs.py, test_trust.py, test_lenses_and_arguments.py):
the environment `flowmetal lsp` runs in (no run settings of the caller's), a session started on a
workspace, the run notifications it receives (`watch`, `Seen`) and a way to wait for one, the
custom commands and requests, the command line, and an HTTP service on 127.0.0.1 in a thread of
the test's process, for the programs to post to."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

ENV = {k: v for k, v in os.environ.items() if k not in ("FLOWMETAL_STORE", "FLOWMETAL_PUBLIC_URL", "FLOWMETAL_TOKEN")}


class PostService:
    """An HTTP service on 127.0.0.1 (`url`): each POST's body goes to `received`, whose status is
    answered with `{}`; then `answered` is called with the body."""

    def __init__(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = service.received(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                service.answered(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, body: bytes, headers) -> int:
        raise NotImplementedError

    def answered(self, body: bytes) -> None:
        pass

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Seen:
    """The notifications the client received, and a way to wait for one."""

    def __init__(self) -> None:
        self.runs: list[dict] = []
        self.events: list[dict] = []
        self.refreshes = 0
        self.changed = asyncio.Event()

    async def until(self, predicate, timeout: float = 30.0, what: str = "a notification"):
        async def wait():
            while True:
                found = predicate()
                if found:
                    return found
                self.changed.clear()
                await self.changed.wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} in {timeout}s; runs seen: {self.runs[-5:]}, "
                                 f"events seen: {[e['event']['kind'] for e in self.events]}") from None

    def statuses(self, run_id: str) -> list[str]:
        return [r["status"] for r in self.runs if r["id"] == run_id]

    def kinds(self, run_id: str) -> list[str]:
        return [e["event"]["kind"] for e in self.events if e["runId"] == run_id]


def plain(value):
    """pygls hands unknown params over as named tuples: make them dicts and lists again."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def watch(lsp_client: LanguageClient) -> Seen:
    seen = Seen()

    @lsp_client.feature("flowmetal/runUpdated")
    def run_updated(ls, params):
        seen.runs.append(plain(params))
        seen.changed.set()

    @lsp_client.feature("flowmetal/traceEvent")
    def trace_event(ls, params):
        seen.events.append(plain(params))
        seen.changed.set()

    def refresh():  # (conftest.py answers the request)
        seen.refreshes += 1
        seen.changed.set()
    lsp_client.on_code_lens_refresh = refresh

    lsp_client.seen = seen
    return seen


async def start_session(lsp_client: LanguageClient, workspace: Path, options: dict | None = None) -> None:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=workspace.as_uri(), initialization_options=options,
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
    lsp_client.workspace = workspace


async def command(client: LanguageClient, name: str, **arguments):
    answer = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=name, arguments=[arguments]))
    return plain(answer)


async def request(client: LanguageClient, method: str, **params):
    return plain(await client.protocol.send_request_async(method, params))


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=120)
