"""What the command line says when what was typed is not what it takes: the mistake, where it
is, and what to type instead; exit status 2, nothing recorded, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

HELLO = ROOT / "examples" / "hello.flow"


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hello.flow").write_text(HELLO.read_text())
    (tmp_path / "sub").mkdir()
    (tmp_path / "latin1.flow").write_bytes(b"(defpackage latin1 (def s \"caf\xe9\"))\n")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["hello.flow", "greet", "world"],
     "argument 'world': `world` is no enum member known in `examples.hello`; "
     "for the text, quote it as a string: '\"world\"'"),
    (["hello.flow", "greet", "[world +x+]"],
     "argument '[world +x+]': `world` is no enum member known in `examples.hello`; "
     "for the text, write it as a string: \"world\""),
    (["hello.flow", "gret", '"world"'], "no function `gret` in package `examples.hello`; did you mean `greet`?"),
    (["hello.flow", "examples.hello/greeet", '"world"'],
     "no function `greeet` in package `examples.hello`; did you mean `greet`?"),
    (["hello.flow", "nothing-like-it"], "no function `nothing-like-it` in package `examples.hello`"),
    (["sub", "greet"], "sub: is a directory, not a program's file"),
    (["nope.flow", "greet"], "nope.flow: no such file"),
    (["latin1.flow", "main"],
     "latin1.flow: not valid UTF-8: byte 0xe9 (at byte 30) cannot start or continue a character"),
])
def test_run_says_what_is_wrong_with_what_was_typed(folder, args, message):
    result = flowmetal("run", *args, "--store", "s.db", cwd=folder)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"flowmetal run: error: {message}\n")
    assert not (folder / "s.db").exists()


def test_run_without_an_entry_names_only_the_entry_as_missing(folder):
    result = flowmetal("run", "hello.flow", "--store", "s.db", cwd=folder)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == "flowmetal run: error: the following arguments are required: ENTRY"
    assert not (folder / "s.db").exists()


def test_flowmetal_alone_lists_the_commands_and_exits_2(tmp_path):
    result = flowmetal(cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("usage: flowmetal")
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert listed == ["check", "run", "runs", "trace", "worker", "replay", "cancel", "signal", "lsp", "dap", "connector", "serve"]
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines if line.startswith("  "))  # one line each


POSTGRES = "postgresql://flowmetal@127.0.0.1:1/flowmetal"  # nothing listens on port 1


@pytest.mark.parametrize("args", [
    ["run", "hello.flow", "greet", '"world"'], ["run", "hello.flow", "greet", '"world"', "--detach"],
    ["runs"], ["trace", "abc"], ["replay", "abc"], ["cancel", "abc"], ["worker", "--once"],
    ["connector", str(ROOT / "tests" / "connectors" / "billing_endpoints.py")], ["serve", "--port", "0"],
], ids=lambda args: " ".join(args[:2]) if args[-1] == "--detach" else args[0])
@pytest.mark.parametrize("how", ["--store", "FLOWMETAL_STORE"])
def test_a_postgresql_server_that_cannot_be_reached_is_one_clear_line(folder, args, how):
    """Every command touching the store says which server it could not use and why (exit 2),
    never a traceback, and creates nothing (no SQLite file instead)."""
    env = {"FLOWMETAL_STORE": POSTGRES} if how == "FLOWMETAL_STORE" else {}
    # The commands that run until stopped wait for the server first (60 s; here a moment), saying so.
    long_running = args[0] in ("worker", "connector", "serve")
    env["FLOWMETAL_STORE_WAIT"] = "0.3"
    options = ["--store", POSTGRES] if how == "--store" else []
    result = subprocess.run([sys.executable, "-m", "flowmetal", *args, *options], cwd=folder, capture_output=True,
                            text=True, timeout=120, env={**os.environ, **env})
    assert (result.returncode, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    if long_running:
        assert lines[0].startswith(f"flowmetal {args[0]}: waiting for the store at {POSTGRES} (up to 0.3 s): "), lines
        lines = lines[1:]
    assert len(lines) == 1 and "waiting" not in lines[0], result.stderr
    assert lines[0].startswith(f"flowmetal {args[0]}: error: {POSTGRES}: cannot use the PostgreSQL server ("), \
        result.stderr
    assert "Connection refused" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["hello.flow", "latin1.flow", "sub"]


def test_a_malformed_store_wait_is_one_clear_line(folder):
    for text in ("soon", "-1", "nan"):
        result = subprocess.run([sys.executable, "-m", "flowmetal", "worker", "--store", POSTGRES], cwd=folder,
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "FLOWMETAL_STORE_WAIT": text})
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (f"flowmetal worker: error: FLOWMETAL_STORE_WAIT must be a number of seconds from 0 "
                                 f"to 86400, not {text!r}\n")
