"""The language server under a real client, on a 10,000-line program.

- `lsp-edit`: a one-line edit (inside one definition's body) to the server's fresh
  diagnostics for it, as a whole round trip over stdio: median of 31 edits,
  against `ast.parse` of a Python file of the same shape and length measured in
  the same run. Target: <= 0.25x.
- `lsp-hover`, `lsp-definition`, `lsp-completion`: request to answer at names
  spread over the file, p95 of 60 each. Target: <= 20 ms.
"""

from __future__ import annotations

import ast
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

import programs


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def _position(text: str, index: int) -> types.Position:
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    return types.Position(line=line, character=index - start)


async def _measure(lines: int, edits: int, queries: int) -> dict[str, list[float]]:
    text = programs.flowmetal(lines)
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-lsp-"))
    path = folder / "generated.flow"
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client = LanguageClient("bench", "1")
    published: dict[int, asyncio.Event] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri and params.version in published:
            published[params.version].set()

    await client.start_io(sys.executable, "-m", "flowmetal", "lsp")
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=folder.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="bench")]))
    client.initialized(types.InitializedParams())
    published[1] = asyncio.Event()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="flowmetal", version=1, text=text)))
    await asyncio.wait_for(published[1].wait(), 120)

    times: dict[str, list[float]] = {"edit": [], "hover": [], "definition": [], "completion": []}
    units = text.count("(defn step-")
    current = text
    for n in range(edits):
        unit = ((n // 2) * 7919) % units
        old, new = (str(unit), f'"{unit}"') if n % 2 == 0 else (f'"{unit}"', str(unit))
        at = current.index(f"(+ x {old})") + len("(+ x ")
        start, end = _position(current, at), _position(current, at + len(old))
        version = n + 2
        published[version] = asyncio.Event()
        began = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=start, end=end), text=new)]))
        await asyncio.wait_for(published[version].wait(), 60)
        times["edit"].append(time.perf_counter() - began)
        current = current[:at] + new + current[at + len(old):]

    doc = types.TextDocumentIdentifier(uri=uri)
    for n in range(queries):
        unit = (n * 104729) % units
        call = current.index(f"(make-duration a +seconds+)", current.index(f"(defn step-{unit} ")) + 1
        where = _position(current, call + 2)
        for kind, request in (
                ("hover", lambda: client.text_document_hover_async(types.HoverParams(text_document=doc, position=where))),
                ("definition", lambda: client.text_document_definition_async(
                    types.DefinitionParams(text_document=doc, position=where))),
                ("completion", lambda: client.text_document_completion_async(
                    types.CompletionParams(text_document=doc, position=where)))):
            began = time.perf_counter()
            answer = await request()
            times[kind].append(time.perf_counter() - began)
            assert answer is not None, kind
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def run(quick: bool = False) -> list[dict]:
    lines = 1_000 if quick else 10_000
    times = asyncio.run(_measure(lines, edits=5 if quick else 31, queries=10 if quick else 60))
    py_text = programs.python(lines)
    parse_times = []
    for _ in range(3 if quick else 11):
        began = time.perf_counter()
        ast.parse(py_text)
        parse_times.append(time.perf_counter() - began)
    parse = statistics.median(parse_times)
    edit = statistics.median(times["edit"])
    size = f"{lines // 1000}k"
    out = [{"name": f"lsp-edit-{size}", "value": edit, "reference": parse, "ratio": edit / parse, "target": 0.25,
            "unit": "x ast.parse",
            "detail": f"edit to fresh diagnostics {edit * 1000:.1f} ms (median of {len(times['edit'])}), "
                      f"ast.parse {parse * 1000:.0f} ms"}]
    for kind in ("hover", "definition", "completion"):
        p95 = _p95(times[kind])
        out.append({"name": f"lsp-{kind}-{size}", "value": p95, "reference": None, "ratio": p95 * 1000,
                    "target": 20.0, "unit": "ms p95",
                    "detail": f"median {statistics.median(times[kind]) * 1000:.1f} ms of {len(times[kind])}"})
    return out
