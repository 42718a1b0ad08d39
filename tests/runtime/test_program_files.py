"""`flowmetal run FILE` reads FILE and the files that define what it requires, nothing else.

The files beside FILE may be anything: broken, nested deeper than any walk
goes, not UTF-8, a directory or a named pipe named `*.flow` (reading a pipe
would never end). None of that matters to a program that does not need them;
when a required package is defined by no file that could be read, the run is
refused with the names of the files that could not be.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from flowmetal.runtime.driving import program_files
from procs import flowmetal

APP = """\
(defpackage acme.app
  (require [acme.lib :refer [twice]]
           [flowmetal.log :refer [log!]])
  (defn main [] (twice 21)))
"""
LIB = """\
(defpackage acme.lib
  (require util)
  (defn twice [x : int?] : int? (util/add x x)))
"""
UTIL = "(defpackage util\n  (defn add [a : int? b : int?] : int? (+ a b)))\n"
SOLO = "(defpackage solo\n  (require [flowmetal.time :refer [now!]])\n  (defn main [] (if (> (now!) 0) 7 8)))\n"


def neighbours(folder: Path) -> None:
    """Files no program here needs, each of which used to break every run of the folder."""
    depth = 100_000
    (folder / "deep.flow").write_text("(defpackage deep\n  (def x " + "[" * depth + "]" * depth + "))\n")
    (folder / "broken.flow").write_text("(defpackage broken\n  (defn f [x] (g x]\n")
    (folder / "latin1.flow").write_bytes(b"(defpackage latin1 (def s \"caf\xe9\"))\n")
    (folder / "folder.flow").mkdir()
    os.mkfifo(folder / "pipe.flow")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    neighbours(tmp_path)
    return tmp_path


def test_a_program_needing_no_other_file_runs_whatever_lies_beside_it(folder: Path):
    (folder / "solo.flow").write_text(SOLO)
    result = flowmetal("run", "solo.flow", "main", cwd=folder, timeout=60)
    assert (result.returncode, result.stdout) == (0, "7\n"), result.stderr
    assert re.fullmatch(r"flowmetal run: run [0-9a-f]{16}: main\n", result.stderr)  # its id, and nothing else


def test_the_files_a_program_requires_are_found_among_broken_ones(folder: Path):
    (folder / "app.flow").write_text(APP)
    (folder / "zz-lib.flow").write_text(LIB)        # not named after its package: found by looking
    (folder / "util.flow").write_text(UTIL)         # named after it: looked at first
    result = flowmetal("run", "app.flow", "acme.app/main", cwd=folder, timeout=60)
    assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr
    assert re.fullmatch(r"flowmetal run: run [0-9a-f]{16}: acme.app/main\n", result.stderr)


def test_a_required_package_no_readable_file_defines_is_refused_naming_the_unreadable(folder: Path):
    (folder / "app.flow").write_text(APP)
    result = flowmetal("run", "app.flow", "acme.app/main", cwd=folder, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "flowmetal run: error: app.flow requires `acme.lib`, which no file beside it that could be read defines "
        "(could not read folder.flow: not a regular file; latin1.flow: not valid UTF-8; "
        "pipe.flow: not a regular file)\n")


def test_a_package_defined_nowhere_is_left_to_the_checker(tmp_path: Path):
    (tmp_path / "app.flow").write_text(APP)
    (tmp_path / "other.flow").write_text(UTIL)
    depth = 100_000  # read (to look for `acme.lib`), never walked deeper than its packages' heads
    (tmp_path / "deep.flow").write_text("(defpackage deep\n  (def x " + "[" * depth + "]" * depth + "))\n")
    result = flowmetal("run", "app.flow", "acme.app/main", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "FM303: no package `acme.lib` in this program" in result.stderr and "Traceback" not in result.stderr


def test_only_the_files_needed_are_read(tmp_path: Path):
    texts = {"app.flow": APP, "lib.flow": LIB, "util.flow": UTIL, "solo.flow": SOLO,
             "big.flow": "(defpackage big\n  (def s \"" + "x" * 100_000 + "\"))\n"}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    read: list[str] = []

    def reader(path: Path) -> str:
        read.append(path.name)
        return texts[path.name]
    assert program_files(str(tmp_path / "solo.flow"), read=reader) == {"solo.flow": SOLO}
    assert read == ["solo.flow"]  # standard packages need no other file
    read.clear()
    assert program_files(str(tmp_path / "app.flow"), read=reader) == {"app.flow": APP, "lib.flow": LIB,
                                                                      "util.flow": UTIL}
    assert read == ["app.flow", "lib.flow", "util.flow"]  # each named after the package it defines


def test_a_file_beside_never_replaces_a_standard_package(tmp_path: Path):
    (tmp_path / "solo.flow").write_text(SOLO)
    (tmp_path / "flowmetal.time.flow").write_text("(defpackage flowmetal.time\n  (defn now! [] 0))\n")
    assert program_files(str(tmp_path / "solo.flow")) == {"solo.flow": SOLO}
