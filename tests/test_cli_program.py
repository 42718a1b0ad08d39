"""One program, whichever of its files the user names: `check FILE` and `run FILE` see the same.

A three-file program (`app.a` in a.flow requires `app.b` in b.flow, which
requires `app.c` in c.flow) is checked and run from each of its files, from
inside its folder and from outside it, as real processes. A bare entry name is
looked up among the packages of the file named first, then among the others;
diagnostics name files by the path the user would type.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

A = """\
(defpackage app.a
  (require [app.b :refer [twice]])
  (defn main [x : int?] : int? (twice x)))
"""
B = """\
(defpackage app.b
  (require [app.c :refer [inc]])
  (defn twice [x : int?] : int? (* 2 x))
  (defn main [x : int?] : int? (inc (twice x))))
"""
C = """\
(defpackage app.c
  (defn inc [x : int?] : int? (+ x 1))
  (defn main [x : int?] : int? (inc x)))
"""
C_BROKEN = C.replace("(+ x 1)", '(+ x "1")')
# Beside them, a file no program here requires: never read, so never reported.
OTHER = "(defpackage other\n  (defn main [] (undefined-thing)))\n"


def flowmetal(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "prog"
    folder.mkdir()
    for name, text in {"a.flow": A, "b.flow": B, "c.flow": C, "other.flow": OTHER}.items():
        (folder / name).write_text(text)
    return tmp_path


# file, the files it needs, what `main 20` gives when run from it
FILES = [("a.flow", 3, "40"), ("b.flow", 2, "41"), ("c.flow", 1, "21")]
PLACES = [pytest.param("prog", "", id="inside"), pytest.param(".", "prog/", id="outside")]


@pytest.mark.parametrize("cwd, prefix", PLACES)
@pytest.mark.parametrize("file, needed, value", FILES)
def test_check_and_run_see_the_same_program_from_each_file(project, cwd, prefix, file, needed, value):
    checked = flowmetal("check", f"{prefix}{file}", cwd=project / cwd)
    assert (checked.returncode, checked.stdout) == (0, "")
    assert checked.stderr == f"no problems in {needed} file{'s' if needed > 1 else ''}\n"
    ran = flowmetal("run", f"{prefix}{file}", "main", "20", "--store", str(project / "s.db"), cwd=project / cwd)
    assert (ran.returncode, ran.stdout) == (0, f"{value}\n"), ran.stderr
    assert all(line.startswith("flowmetal run: ") for line in ran.stderr.splitlines())  # progress alone


@pytest.mark.parametrize("cwd, prefix", PLACES)
@pytest.mark.parametrize("file", ["a.flow", "b.flow", "c.flow"])
def test_a_required_file_s_errors_are_reported_under_the_path_the_user_would_type(project, cwd, prefix, file):
    (project / "prog" / "c.flow").write_text(C_BROKEN)
    where = f"{prefix}c.flow:2:"
    checked = flowmetal("check", f"{prefix}{file}", cwd=project / cwd)
    assert checked.returncode == 1
    assert checked.stdout.startswith(where) and "FM4" in checked.stdout.splitlines()[0]
    assert "other.flow" not in checked.stdout
    ran = flowmetal("run", f"{prefix}{file}", "main", "20", "--store", str(project / "s.db"), cwd=project / cwd)
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.startswith(where) and ran.stderr.splitlines()[0] == checked.stdout.splitlines()[0]
    assert ran.stderr.endswith("flowmetal run: the program has errors: nothing was run\n")


def test_an_absolute_path_stays_absolute(project):
    (project / "prog" / "c.flow").write_text(C_BROKEN)
    file = project / "prog" / "a.flow"
    checked = flowmetal("check", str(file), cwd=project)
    assert checked.stdout.startswith(f"{project / 'prog' / 'c.flow'}:2:")
    ran = flowmetal("run", str(file), "main", "1", "--store", str(project / "s.db"), cwd=project)
    assert ran.stderr.startswith(f"{project / 'prog' / 'c.flow'}:2:")


def test_a_file_named_twice_or_also_reached_through_a_folder_is_checked_once(project):
    checked = flowmetal("check", "prog/a.flow", "prog/b.flow", "prog/./c.flow", cwd=project)
    assert (checked.returncode, checked.stderr) == (0, "no problems in 3 files\n")


def test_a_package_defined_nowhere_is_not_suggested_as_its_own_requirement(tmp_path):
    (tmp_path / "a.flow").write_text(A)
    checked = flowmetal("check", "a.flow", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[0] == "a.flow:2:13: error: FM303: no package `app.b` in this program"


@pytest.mark.parametrize("text, entry, message", [
    # two packages of the file named both define it
    (A + C.replace("app.c", "app.d"), "main",
     "`main` is ambiguous: the packages `app.a` and `app.d` of a.flow both define it; "
     "name its package, as `app.a/main`"),
    # the file's packages do not define it, two of the others do
    (A.replace("(defn main", "(defn start"), "main",
     "`main` is ambiguous: the packages `app.b` and `app.c` both define it; name its package, as `app.b/main`"),
    # a near name, among the file's packages first
    (A, "mian", "no package of the program defines a function `mian`; did you mean `main`?"),
    (A, "app.a/mian", "no function `mian` in package `app.a`; did you mean `main`?"),
])
def test_an_entry_that_names_no_one_function_is_refused_clearly(project, text, entry, message):
    (project / "prog" / "a.flow").write_text(text)
    ran = flowmetal("run", "a.flow", entry, "1", "--store", "s.db", cwd=project / "prog")
    assert (ran.returncode, ran.stdout, ran.stderr) == (2, "", f"flowmetal run: error: {message}\n")
    assert not (project / "prog" / "s.db").exists()


def test_a_name_only_another_package_defines_runs_it_and_the_run_records_its_package(project):
    ran = flowmetal("run", "a.flow", "inc", "1", "--store", "s.db", cwd=project / "prog")
    assert (ran.returncode, ran.stdout) == (0, "2\n")
    ran = flowmetal("run", "a.flow", "main", "1", "--store", "s.db", cwd=project / "prog")
    assert (ran.returncode, ran.stdout) == (0, "2\n")
    runs = flowmetal("runs", "--store", "s.db", cwd=project / "prog")
    # a bare name means a function only from the file named: the runs record the package too
    assert sorted(line.split()[2] for line in runs.stdout.splitlines()) == ["app.a/main", "app.c/inc"]


def test_the_trace_shows_each_events_line_from_its_own_file(tmp_path: Path):
    """An event caused in another file of the program shows that file's line, named; the run's
    own file's lines stay bare."""
    (tmp_path / "main.flow").write_text(
        "(defpackage app.main\n"
        "  (require [app.talk :refer [say]]\n"
        "           [flowmetal.log :refer [log!]])\n"
        "  (defn main [] (log! \"from main\") (say)))\n")
    (tmp_path / "talk.flow").write_text(
        "(defpackage app.talk\n"
        "  (require [flowmetal.log :refer [log!]])\n"
        "  ;; a line to move the next one down\n"
        "  (defn say [] (log! \"from talk\") 1))\n")
    ran = flowmetal("run", "main.flow", "main", cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (0, "1\n"), ran.stderr
    (run_id,) = [line.split("\t")[0] for line in flowmetal("runs", cwd=tmp_path).stdout.splitlines()]
    trace = flowmetal("trace", run_id, cwd=tmp_path).stdout.splitlines()
    (main_log,) = [line for line in trace if " log message=from main" in line]
    (talk_log,) = [line for line in trace if " log message=from talk" in line]
    assert main_log.endswith('| 4: (defn main [] (log! "from main") (say)))')
    assert talk_log.endswith('| talk.flow:4: (defn say [] (log! "from talk") 1))')
