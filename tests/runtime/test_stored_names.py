"""A program's file names are checked where a program enters and where a store gives it back.

`program.load` and the store's `put_sources` refuse a bad name; a store file
written by anyone else (tests/bad_stores.py writes one with sqlite3) gives back
no program with a bad name: `get_sources` refuses it with a `StoreError`, and
the command line says so in one line (`trace`, `replay`), lists such runs
(`runs`), and a worker fails such a run instead of running it. `flowmetal run`
on a file whose own name is no program file name refuses before touching the store.
"""

from __future__ import annotations

import sys

import pytest

from bad_stores import BAD_NAMES, write_run
from conftest import ROOT
from flowmetal.runtime.program import ProgramError, ProgramNameError, load
from flowmetal.runtime.store import SQLiteStore, StoreError
from procs import flowmetal

sys.path.insert(0, str(ROOT / "tests" / "server"))
from server_kit import store_state  # noqa: E402

HELLO = """\
(defpackage acme.jobs
  (defn hello [] : str?
    "hello"))
"""
IDS = [repr(name[:20]) for name, _ in BAD_NAMES]
CLI_CASES = [("../../victim.flow", "`..` segment"), ("/etc/x.flow", "relative"), ("x\0.flow", "control characters")]


@pytest.mark.parametrize("name,says", BAD_NAMES, ids=IDS)
def test_load_refuses_a_bad_file_name(name, says):
    with pytest.raises(ProgramNameError) as caught:
        load({"dir/good.flow": HELLO, name: HELLO})
    assert isinstance(caught.value, ProgramError) and caught.value.diagnostics == []
    assert str(caught.value).startswith("bad file name") and says in str(caught.value)


@pytest.mark.parametrize("name,says", BAD_NAMES, ids=IDS)
def test_the_store_refuses_to_store_a_bad_file_name(tmp_path, name, says):
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    before = store_state(path)
    with pytest.raises(StoreError, match="nothing was stored") as caught:
        store.put_sources({"good.flow": HELLO, name: HELLO})
    assert says in str(caught.value)
    store.close()
    assert store_state(path) == before


@pytest.mark.parametrize("name,says", BAD_NAMES, ids=IDS)
def test_a_stored_bad_file_name_is_refused_when_read(tmp_path, name, says):
    path = tmp_path / "store.db"
    run_id = write_run(path, {"good.flow": HELLO, name: HELLO})
    store = SQLiteStore(path)
    try:
        run = store.get_run(run_id)
        with pytest.raises(StoreError, match="bad file name") as caught:
            store.get_sources(run.program)
        assert says in str(caught.value) and str(path) in str(caught.value)
    finally:
        store.close()


@pytest.mark.parametrize("program", [["a.flow"], {"a.flow": 3}, "a.flow"])
def test_a_stored_program_that_is_no_map_of_names_is_refused(tmp_path, program):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        with pytest.raises(StoreError, match="not a map of file names"):
            store.get_sources(program)
    finally:
        store.close()


@pytest.mark.parametrize("name,says", CLI_CASES, ids=[repr(n) for n, _ in CLI_CASES])
def test_the_command_line_on_a_store_with_a_bad_name(tmp_path, name, says):
    store = tmp_path / "shipped" / "store.db"
    store.parent.mkdir()
    run_id = write_run(store, {name: HELLO}, origin=str(tmp_path))
    listed = flowmetal("runs", "--store", str(store), cwd=tmp_path)
    assert listed.returncode == 0 and run_id in listed.stdout and "Traceback" not in listed.stderr
    for command in ("trace", "replay"):
        done = flowmetal(command, "--store", str(store), run_id, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert done.stdout == "" and "Traceback" not in done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"flowmetal {command}: error: ")
        assert "bad file name" in lines[0] and says in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]


def test_a_worker_fails_a_run_whose_stored_program_has_a_bad_name(tmp_path):
    store = tmp_path / "store.db"
    run_id = write_run(store, {"../x.flow": HELLO}, status="pending")
    done = flowmetal("worker", "--once", "--store", str(store), cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    opened = SQLiteStore(store)
    try:
        run = opened.get_run(run_id)
        assert run.status == "failed" and "bad file name `../x.flow`" in run.error
        assert [e.kind for e in opened.events(run_id)] == ["run-started", "run-failed"]
    finally:
        opened.close()


def test_a_store_out_of_reach_while_the_program_is_read_fails_no_run(tmp_path):
    """Only a program that can never be read fails its run; a store that could not be reached
    for a moment (a PostgreSQL restart) leaves the run to be taken again once its lease lapses."""
    from flowmetal.runtime.executor import Executor
    store = tmp_path / "store.db"
    run_id = write_run(store, {"hello.flow": HELLO}, status="pending")
    opened = SQLiteStore(store)
    try:
        def out_of_reach(program):
            raise StoreError("the server closed the connection (the operation was not done)")
        opened.get_sources = out_of_reach
        with pytest.raises(StoreError, match="closed the connection"):
            Executor(opened, worker="w").run_once(run_id)
        run = opened.get_run(run_id)
        assert (run.status, run.owner, run.error) == ("running", "w", None)  # its lease lapses, as after a crash
        assert [e.kind for e in opened.events(run_id)] == ["run-started"]
    finally:
        opened.close()


@pytest.mark.parametrize("file,says", [("a:b.flow", "colon"), ("tab\there.flow", "control characters"),
                                       ("back\\slash.flow", "backslash")])
def test_flowmetal_run_refuses_a_file_whose_name_is_no_program_file_name(tmp_path, file, says):
    (tmp_path / file).write_text(HELLO, encoding="utf-8")
    done = flowmetal("run", file, "hello", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("flowmetal run: error: bad file name") and says in done.stderr
    assert done.stderr.rstrip().endswith("nothing was run") and "Traceback" not in done.stderr
    assert not (tmp_path / ".flowmetal").exists()
