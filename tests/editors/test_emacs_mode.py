"""Runs the ERT tests of the Emacs mode (editors/emacs/flowmetal-mode.el) in real Emacs.

The mode holds no language logic (the `flowmetal lsp` server does all
parsing and checking), so the ERT file checks only the editing layer:
file association, syntax table, highlighting, indentation,
byte-compilation and the eglot registration.

Without an `emacs` binary the test is skipped, except in CI (CI=true),
where a missing editor is a failure.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODE = pathlib.Path("editors/emacs/flowmetal-mode.el")
ERT = pathlib.Path("tests/editors/flowmetal-mode-test.el")


def _require_tool(name):
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` is not installed (apt-get install -y emacs-nox elpa-eglot)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_emacs_mode_ert(tmp_path):
    emacs = _require_tool("emacs")
    home = tmp_path / "home"
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    result = subprocess.run(
        [emacs, "--batch", "-Q", "-l", str(MODE), "-l", str(ERT),
         "-f", "ert-run-tests-batch-and-exit"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ran = re.search(r"Ran (\d+) tests, (\d+) results as expected, (\d+) unexpected", output)
    assert ran, output
    assert int(ran.group(1)) >= 10, output
    assert ran.group(3) == "0", output
