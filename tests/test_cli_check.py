"""`flowmetal check`, run as a real process, as users and editors run it (SPEC section 6)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BROKEN = "(defpackage p\n  (defn f [x]\n    (= \"a\\q\" x]))\n"


def flowmetal(*args: str, cwd: Path | None = None, script: bool = False) -> subprocess.CompletedProcess:
    if script:
        exe = shutil.which("flowmetal", path=str(Path(sys.executable).parent))
        assert exe, "the flowmetal console script is not installed"
        command = [exe, *args]
    else:
        command = [sys.executable, "-m", "flowmetal", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "good.flow").write_text("(defpackage good (def x 1))\n")
    (tmp_path / "bad.flow").write_text(BROKEN)
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "odd.flow").write_text("(def m {:a})\n")
    (tmp_path / "sub" / "notes.txt").write_text("(((")  # not a .flow file: not checked
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skip.flow").write_text("(((")  # in a dot-directory: not walked
    return tmp_path


def test_human_format_names_the_place_shows_the_line_and_a_caret(tree):
    result = flowmetal("check", "bad.flow", cwd=tree)
    assert result.returncode == 1
    assert result.stdout == (
        "bad.flow:3:10: error: FM105: invalid escape `\\q` in string: use \\\" \\\\ \\n \\t or \\uXXXX\n"
        "    3 |     (= \"a\\q\" x]))\n"
        "      |          ^^\n"
        "bad.flow:3:15: error: FM103: mismatched closing bracket: `]` closes `(`, which `)` should close\n"
        "    3 |     (= \"a\\q\" x]))\n"
        "      |               ^\n"
        "bad.flow:3:5: note: `(` opened here\n"
        "    3 |     (= \"a\\q\" x]))\n"
        "      |     ^\n"
        "      = fix: replace `]` with `)`\n"
    )
    assert result.stderr == "2 errors in 1 file\n"


def test_json_format_is_the_documented_list(tree):
    result = flowmetal("check", "--format", "json", "bad.flow", cwd=tree)
    assert result.returncode == 1
    records = json.loads(result.stdout)
    assert records == [
        {"file": "bad.flow", "line": 3, "column": 10, "end_line": 3, "end_column": 12,
         "severity": "error", "code": "FM105",
         "message": "invalid escape `\\q` in string: use \\\" \\\\ \\n \\t or \\uXXXX"},
        {"file": "bad.flow", "line": 3, "column": 15, "end_line": 3, "end_column": 16,
         "severity": "error", "code": "FM103",
         "message": "mismatched closing bracket: `]` closes `(`, which `)` should close"},
    ]


def test_directories_are_walked_for_flow_files(tree):
    result = flowmetal("check", ".", "--format", "json", cwd=tree)
    assert result.returncode == 1
    files = sorted({r["file"] for r in json.loads(result.stdout)})
    assert files == [os.path.join(".", "bad.flow"), os.path.join(".", "sub", "deeper", "odd.flow")]


def test_options_may_follow_or_precede_paths(tree):
    before = flowmetal("check", "--format", "json", "bad.flow", "good.flow", cwd=tree)
    between = flowmetal("check", "bad.flow", "--format", "json", "good.flow", cwd=tree)
    assert before.stdout == between.stdout and json.loads(before.stdout)


def test_clean_files_exit_zero(tree):
    result = flowmetal("check", "good.flow", cwd=tree)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no problems in 1 file\n")
    result = flowmetal("check", "good.flow", "--format", "json", cwd=tree)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])


def test_a_missing_path_is_a_clear_error_not_a_traceback(tree):
    result = flowmetal("check", "good.flow", "missing.flow", cwd=tree)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "flowmetal check: error: missing.flow: no such file or directory\n"


def test_bytes_that_are_not_utf8_are_reported_at_their_place(tree):
    (tree / "latin1.flow").write_bytes(b'(def s "caf\xe9")\n')
    result = flowmetal("check", "latin1.flow", "--format", "json", cwd=tree)
    assert result.returncode == 1
    (record,) = json.loads(result.stdout)
    assert (record["code"], record["line"], record["column"]) == ("FM001", 1, 12)
    assert "not valid UTF-8" in record["message"] and "0xe9" in record["message"]


def test_a_file_saved_with_a_byte_order_mark_checks_and_runs(tmp_path):
    (tmp_path / "bom.flow").write_bytes(b"\xef\xbb\xbf(defpackage bom\n  (defn f [] : int? 41))\n")
    checked = flowmetal("check", "bom.flow", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout
    ran = flowmetal("run", "bom.flow", "f", "--store", str(tmp_path / "s.db"), cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout == "41\n", ran.stderr


def test_bad_usage_exits_2_with_usage(tree):
    result = flowmetal("check", cwd=tree)
    assert result.returncode == 2 and "usage: flowmetal check" in result.stderr
    result = flowmetal("frobnicate", cwd=tree)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = flowmetal("check", "--format", "xml", "good.flow", cwd=tree)
    assert result.returncode == 2 and "invalid choice: 'xml'" in result.stderr


def test_the_console_script_and_the_module_agree(tree):
    script = flowmetal("check", "bad.flow", cwd=tree, script=True)
    module = flowmetal("check", "bad.flow", cwd=tree)
    assert (script.returncode, script.stdout, script.stderr) == (module.returncode, module.stdout, module.stderr)
    assert flowmetal("--version", script=True).stdout.startswith("flowmetal ")


def test_the_examples_check_clean():
    result = flowmetal("check", "examples", cwd=ROOT)
    assert result.returncode == 0, result.stdout
