"""The language server on a big workspace: 20 files of 5,000 lines (`programs.workspace`).

The real server (`python -m flowmetal lsp`) under a small client over stdio, a
fresh process for each run; after `initialize`, the client sends `initialized`
(the server finds and reads the workspace's files) and at once opens the leaf
package `ws.p19`, which requires four others transitively. Figures, medians of
5 runs:

- `ws-first-diagnostics`: `initialized` to the first diagnostics of the opened
  file, against CPython's `ast.parse` of a Python file of the workspace's total
  size: 100,000 lines of `programs.python` (the same shape of function as the
  Flowmetal benchmarks, not a line-for-line translation of the workspace),
  with the collector paused as the analysis pauses it, measured in the same
  run. Target: <= 2x.
- `ws-background`: `initialized` to the end of the background analysis of the
  whole workspace (`$/progress` end), against the same `ast.parse`. Reported;
  its target, 10x, is what the first diagnostics cost before.
- `ws-memory`: the server's resident set size (`VmRSS` of /proc/PID/status)
  once the background analysis has ended and a workspace-symbols request (which
  waits for it) has been answered. Target: <= 300 MB.

Each run checks the answers too: one diagnostic in the opened file (its
deliberate FM403), and workspace symbols naming every package's functions.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

import programs


def _cpu_seconds(pid: int) -> float:
    """The CPU time the process has used (user and system): on a busy machine, what the work cost."""
    import os
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _run_once(folder: Path, opened: str, files: int) -> dict[str, float]:
    uri = (folder / opened).as_uri()
    client = LanguageClient("bench", "1")
    first = asyncio.Event()
    ended = asyncio.Event()
    got: dict[str, object] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri and not first.is_set():
            got["diagnostics"] = params.diagnostics
            got["first"] = time.perf_counter()
            first.set()

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_create(params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def on_progress(params: types.ProgressParams) -> None:
        if getattr(params.value, "kind", None) == "end" or \
                (isinstance(params.value, dict) and params.value.get("kind") == "end"):
            got["ended"] = time.perf_counter()
            ended.set()

    await client.start_io(sys.executable, "-m", "flowmetal", "lsp")
    pid = client._server.pid  # type: ignore[attr-defined]
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
        root_uri=folder.as_uri(), workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="bench")]))
    began = time.perf_counter()
    client.initialized(types.InitializedParams())
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="flowmetal", version=1, text=(folder / opened).read_text(encoding="utf-8"))))
    await asyncio.wait_for(first.wait(), 300)
    await asyncio.wait_for(ended.wait(), 600)
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="step-1"))
    rss, cpu = _rss_mb(pid), _cpu_seconds(pid)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    codes = [d.code for d in got["diagnostics"]]  # type: ignore[union-attr]
    assert codes == ["FM403"], codes
    packages = {s.container_name for s in symbols or ()}
    assert packages == {f"ws.p{k}" for k in range(files)}, packages
    return {"first": got["first"] - began, "background": got["ended"] - began, "rss": rss, "cpu": cpu}  # type: ignore[operator]


def run(quick: bool = False) -> list[dict]:
    files, lines, repeats = (4, 500, 1) if quick else (20, 5_000, 5)
    folder = Path(tempfile.mkdtemp(prefix="flowmetal-bench-ws-"))
    for name, text in programs.workspace(files, lines).items():
        (folder / name).write_text(text, encoding="utf-8")
    opened = f"p{files - 1}.flow"
    py_text = programs.python(files * lines)
    runs, parse_times = [], []
    for _ in range(repeats):
        runs.append(asyncio.run(_run_once(folder, opened, files)))
        for _ in range(3):
            gc.disable()  # as the analysis pauses it: with it, ast.parse of this size takes three times longer
            began = time.perf_counter()
            ast.parse(py_text)
            parse_times.append(time.perf_counter() - began)
            gc.enable()
    parse = statistics.median(parse_times)
    first = statistics.median(r["first"] for r in runs)
    background = statistics.median(r["background"] for r in runs)
    rss = statistics.median(r["rss"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    size = f"{files}x{lines // 1000 or lines / 1000:g}k"
    return [
        {"name": f"ws-first-diagnostics-{size}", "value": first, "reference": parse, "ratio": first / parse,
         "target": 2.0, "unit": "x ast.parse",
         "detail": f"first diagnostics of {opened} {first * 1000:.0f} ms, ast.parse of {files * lines:,} lines "
                   f"{parse * 1000:.0f} ms (median of {len(runs)} runs)"},
        {"name": f"ws-background-{size}", "value": background, "reference": parse, "ratio": background / parse,
         "target": 10.0, "unit": "x ast.parse",
         "detail": f"whole workspace analysed in the background in {background:.1f} s (the server's CPU "
                   f"time, start-up included: {cpu:.1f} s)"},
        {"name": f"ws-memory-{size}", "value": rss, "reference": None, "ratio": rss, "target": 300.0,
         "unit": "MB RSS", "detail": f"server resident set after the background analysis, median of {len(runs)}"},
    ]
