"""The language server's start-up path stays short (docs/performance.md, *Cold start*).

Structural, not timed: what `flowmetal lsp` imports before it answers `initialize`
(the command line and the server module) leaves out the runtime, the store, the
HTTP server and connectors, the workbench and the debugger: they are imported
when the runs are first looked at, once the first diagnostics are out. And the
VS Code extension starts only for Flowmetal files (or a Flowmetal debug session).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATER = ("flowmetal.runtime", "flowmetal.server", "flowmetal.connectors", "flowmetal.dap",
         "flowmetal.ide.workbench", "flowmetal.ide.arguments", "aiohttp")


def test_the_server_starts_without_the_runtime():
    probe = ("import sys, flowmetal.cli.commands, flowmetal_lsp.server; "
             "print('\\n'.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = done.stdout.split()
    assert "flowmetal_lsp.server" in loaded and "flowmetal.lang.analysis" in loaded
    early = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in LATER)]
    assert early == [], f"imported before the server starts: {early}"


def test_the_extension_activates_for_flowmetal_only():
    """A Flowmetal file opened, a Flowmetal debug session, or a workspace holding Flowmetal files (whose
    server then starts with the window, before a file is opened); never for every window."""
    manifest = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))
    assert manifest["activationEvents"] == ["onLanguage:flowmetal", "workspaceContains:**/*.flow",
                                            "onDebugResolve:flowmetal"]
