"""The standard packages a run uses are stored with it: a run that waited across an upgrade
of Flowmetal resumes with the standard code it started with.

The other Flowmetal is a real `flowmetal` process whose installed standard packages are a
modified copy in a temporary folder (`launcher`): one more package, whose expressions come
first in the walk that numbers them, and `as-milliseconds` changed."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from procs import flowmetal

from flowmetal.lang.resolve import STDLIB
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.program import code_hash, load, source_hash
from flowmetal.runtime.store import SQLiteStore

PROGRAM = """\
(defpackage pin.demo
  (require [flowmetal.time :refer [sleep! duration as-milliseconds +milliseconds+ +seconds+]])
  (defn main [] : int?
    (sleep! (duration 200 +milliseconds+))
    (as-milliseconds (duration 3 +seconds+))))
"""

# Sorted before every standard package, so that it shifts the numbers of all the others' code.
EXTRA = """\
(defpackage aaa.extra
  (defn padding [x : int?] : int?
    (+ (* x 2) (- x 1) (* (+ x 3) (- x 4)) (if (< x 0) (- 0 x) x))))
"""

LAUNCHER = """\
import sys
from pathlib import Path

import flowmetal.lang.analysis as analysis
import flowmetal.lang.resolve as resolve

stdlib = Path(sys.argv[1])
resolve.STDLIB = analysis.STDLIB = stdlib
resolve.STANDARD_NAMES = {p.stem for p in stdlib.glob("*.flow")}
from flowmetal.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def upgraded(tmp_path) -> list[str]:
    """The command line of a `flowmetal` whose installed standard packages differ."""
    stdlib = tmp_path / "other-stdlib"
    shutil.copytree(STDLIB, stdlib)
    (stdlib / "aaa.extra.flow").write_text(EXTRA, encoding="utf-8")
    time_flow = stdlib / "flowmetal.time.flow"
    text = time_flow.read_text(encoding="utf-8")
    changed = text.replace("[(duration n +seconds+) (* n 1000)]", "[(duration n +seconds+) (+ 1 (* n 1000))]")
    assert changed != text
    time_flow.write_text(changed, encoding="utf-8")
    launcher = tmp_path / "upgraded.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    return [sys.executable, str(launcher), str(stdlib)]


def other_flowmetal(command: list[str], *args: str, cwd: Path):
    import os
    import subprocess
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMETAL_")}
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def program_of(store: Path, run_id: str) -> dict[str, str]:
    conn = sqlite3.connect(store)
    try:
        return json.loads(conn.execute("SELECT program FROM runs WHERE id=?", (run_id,)).fetchone()[0])
    finally:
        conn.close()


def test_a_run_waiting_across_an_upgrade_resumes_with_its_stored_standard_code(tmp_path, upgraded):
    (tmp_path / "demo.flow").write_text(PROGRAM, encoding="utf-8")
    db = tmp_path / "store.db"
    recorded = flowmetal("run", "--store", str(db), "--detach", "demo.flow", "main", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    run_id = recorded.stdout.strip()

    program = program_of(db, run_id)
    installed = (STDLIB / "flowmetal.time.flow").read_text(encoding="utf-8")
    assert list(program) == ["demo.flow", "@stdlib/flowmetal.time.flow"]  # only what it uses, its own first
    assert program["@stdlib/flowmetal.time.flow"] == source_hash(installed)

    store = SQLiteStore(db)
    assert Executor(store).run_once(run_id).status == "waiting"  # on the timer, in this Flowmetal
    assert store.get_run(run_id).code_hash == code_hash({"demo.flow": PROGRAM,
                                                         "@stdlib/flowmetal.time.flow": installed})
    store.close()

    resumed = other_flowmetal(upgraded, "worker", "--store", str(db), "--once", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    store = SQLiteStore(db)
    run = store.get_run(run_id)
    assert (run.status, run.result, run.error) == ("completed", "3000", None)
    # The upgraded Flowmetal itself computes otherwise: the run did not use its code.
    fresh = other_flowmetal(upgraded, "run", "--store", str(tmp_path / "fresh.db"), "demo.flow", "main",
                            cwd=tmp_path)
    assert fresh.stdout.strip() == "3001", fresh.stderr


def test_a_run_stored_without_standard_packages_loads_with_the_installed_ones(tmp_path, upgraded):
    db = tmp_path / "store.db"
    store = SQLiteStore(db)
    sources = {"demo.flow": PROGRAM}  # as every run was stored before its standard packages were
    run_id = store.create_run("main", [], store.put_sources(sources), code_hash(sources))
    assert load(store.get_sources(store.get_run(run_id).program)).sources == sources
    store.close()
    resumed = other_flowmetal(upgraded, "worker", "--store", str(db), "--once", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    run = SQLiteStore(db).get_run(run_id)
    assert (run.status, run.result) == ("completed", "3001")  # the installed `as-milliseconds`


def test_the_stored_program_lists_what_it_uses_through_other_standard_packages(tmp_path):
    (tmp_path / "uses.flow").write_text("""\
(defpackage uses
  (require [flowmetal.retry :refer [retry!]])
  (defn main [] : int?
    (retry! (fn [] 7))))
""", encoding="utf-8")
    db = tmp_path / "store.db"
    done = flowmetal("run", "--store", str(db), "uses.flow", "main", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "7"), done.stderr
    run = SQLiteStore(db).list_runs()[0]
    # `retry!` requires these; nothing else is stored.
    assert list(run.program) == ["uses.flow", "@stdlib/flowmetal.log.flow", "@stdlib/flowmetal.retry.flow",
                                 "@stdlib/flowmetal.time.flow", "@stdlib/http.request.flow"]


def test_a_fault_inside_a_standard_package_is_traced_to_its_stored_file(tmp_path):
    (tmp_path / "bad.flow").write_text("""\
(defpackage bad
  (require [flowmetal.json :refer [loads]])
  (defn main [] : any?
    (loads "{not json")))
""", encoding="utf-8")
    db = tmp_path / "store.db"
    failed = flowmetal("run", "--store", str(db), "bad.flow", "main", cwd=tmp_path)
    assert failed.returncode != 0
    run_id = SQLiteStore(db).list_runs()[0].id
    trace = flowmetal("trace", "--store", str(db), run_id, cwd=tmp_path)
    line = next(line for line in trace.stdout.splitlines() if "run-failed" in line)
    assert "| @stdlib/flowmetal.json.flow:" in line and "(builtin-loads text)" in line, trace.stdout
