"""Python connectors: `@endpoint` functions served by `flowmetal connector MODULE` as a real
process, while an executor in this process drives the runs. A result of the declared type
completes the run; a result of another type, or an exception, fails it with a message
naming the endpoint, the declared type and the value."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector_helpers import drive, start_run
from flowmetal.connectors.sdk import Connector, conforms, endpoint, from_python, run_connector
from flowmetal.lang.types import BASES, ListOf, MapOf, Union
from flowmetal.runtime.executor import Executor
from flowmetal.runtime.store import SQLiteStore
from flowmetal.runtime.values import Keyword, RecordValue, decode

HERE = Path(__file__).resolve().parent
SOURCES = {"billing.flow": (HERE / "billing.flow").read_text(encoding="utf-8")}
MODULE = HERE / "billing_endpoints.py"


def flowmetal(*args: str, cwd: Path = HERE, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    return subprocess.Popen([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=env, start_new_session=True,
                            **kw)


def interrupt(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A store, and `flowmetal connector billing_endpoints.py` serving it in its own process."""
    folder = tmp_path_factory.mktemp("sdk")
    path = folder / "store.db"
    SQLiteStore(path).close()
    log = open(folder / "connector.log", "w+b")
    proc = flowmetal("connector", str(MODULE), "--store", str(path), "--poll", "0.02", stdout=subprocess.DEVNULL,
                     stderr=log)
    store = SQLiteStore(path)
    yield store, proc
    store.close()
    status = interrupt(proc)
    log.seek(0)
    output = log.read().decode()
    log.close()
    assert status == 130, output
    assert "serving acme.billing/bad!, acme.billing/boom!, acme.billing/charge!" in output


def run(served, entry: str, *args: str) -> tuple[SQLiteStore, str, str]:
    store, proc = served
    run_id = start_run(store, SOURCES, entry, list(args))
    status = drive(store, run_id)
    assert proc.poll() is None, "the connector process ended"
    return store, run_id, status


def test_a_result_of_the_declared_type_completes_the_run(served):
    store, run_id, status = run(served, "acme.billing/pay", "5")
    assert status == "completed"
    assert store.get_run(run_id).result == "13"  # 5 * 2 in EUR, then 1 * 3 in USD
    assert [store.step(run_id, n)["status"] for n in (1, 2)] == ["applied", "applied"]


def test_arguments_arrive_as_keywords_and_lists_come_back_as_lists(served):
    store, run_id, status = run(served, "acme.billing/pay-receipt", "7")
    assert status == "completed"
    # `card-number` arrived as `card_number`; the Python list inside the record came back as a list;
    # the function was given its step, whose key is RUN:STEP.
    assert store.get_run(run_id).result == f'(receipt "{run_id}:1" [7 4])'


def test_maps_keywords_and_enum_members_cross_both_ways(served):
    store, gold, status = run(served, "acme.billing/pay-tier", "60")
    assert status == "completed" and store.get_run(gold).result == "+gold+"
    store, none, status = run(served, "acme.billing/pay-tier", "10")
    assert status == "completed" and store.get_run(none).result == "nil"


def test_a_result_of_the_wrong_type_fails_the_run_naming_endpoint_type_and_value(served):
    store, run_id, status = run(served, "acme.billing/pay-bad", "3")
    assert status == "failed"
    error = store.get_run(run_id).error
    assert "`acme.billing/bad!` returned \"not a number\", which is not of its declared type int?" in error
    step = store.step(run_id, 1)  # the failure was given to the run (`applied`), its error kept
    assert step["status"] == "applied" and "not of its declared type int?" in step["error"]
    (failed,) = [e for e in store.events(run_id) if e.kind == "run-failed"]
    assert "acme.billing/bad!" in failed.data["error"]


def test_a_result_over_the_limit_fails_its_step_naming_size_and_limit_and_is_not_stored(served):
    store, run_id, status = run(served, "acme.billing/pay-huge", str(2 * 1024 * 1024))
    assert status == "failed"
    error = store.get_run(run_id).error
    assert "`acme.billing/huge!` returned a value of 2097154 bytes" in error
    assert "limit of 1048576 bytes (1 MiB" in error
    row = store.step(run_id, 1)
    assert row["result"] is None and len(row["error"]) < 1000
    store, run_id, status = run(served, "acme.billing/pay-huge", "1000")
    assert status == "completed" and len(store.get_run(run_id).result) == 1002


def test_the_limit_on_results_is_the_connectors_to_set(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    run_id = start_run(store, SOURCES, "acme.billing/pay-huge", ["100"])
    Executor(store).run_once(run_id)
    with Connector({"acme.billing/huge!": lambda n: "x" * n}, store, worker="tight", max_result=101) as connector:
        assert connector.run_once() == 1
    assert drive(store, run_id) == "failed"
    assert "a value of 102 bytes (stored form), over this connector's limit of 101 bytes" in store.get_run(run_id).error


def test_a_list_is_checked_all_the_way_down(served):
    store, run_id, status = run(served, "acme.billing/pay-mixed")
    assert status == "failed"
    error = store.get_run(run_id).error
    assert "`acme.billing/mixed!` returned [1 \"two\"]" in error and "(list? int?)" in error


def test_an_exception_in_the_function_fails_the_run_with_it(served):
    store, run_id, status = run(served, "acme.billing/pay-boom", "3")
    assert status == "failed"
    error = store.get_run(run_id).error
    assert "`acme.billing/boom!` raised RuntimeError: card declined for 3" in error
    assert "billing_endpoints.py:" in error


def test_a_dotted_module_name_is_served_too_and_an_interrupt_ends_it(tmp_path):
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = flowmetal("connector", "billing_endpoints", "--store", str(tmp_path / "s.db"), stdout=out, stderr=out)
        deadline = time.monotonic() + 15
        while b"serving" not in log.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert interrupt(proc) == 130, log.read_text()
    assert "serving acme.billing/bad!, acme.billing/boom!, acme.billing/charge!, acme.billing/classify!" \
           in log.read_text()


@pytest.mark.parametrize("module, message", [
    ("empty_module.py", "no @endpoint functions"),
    ("no/such/file.py", "no such file"),
    ("no_such_module_anywhere", "no module named `no_such_module_anywhere`"),
])
def test_the_command_refuses_a_module_it_cannot_serve(tmp_path, module, message):
    proc = flowmetal("connector", module, "--store", str(tmp_path / "s.db"), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith("flowmetal connector: error: ") and message in err and "Traceback" not in err


# -- in this process: the pieces ------------------------------------------------------------------------


def test_async_functions_and_a_stop_event(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")

    async def charge(amount, currency):
        return amount + 1000

    run_id = start_run(store, SOURCES, "acme.billing/pay", ["1"])
    Executor(store).run_once(run_id)
    connector = Connector({"acme.billing/charge!": charge}, store, worker="inline")
    assert connector.run_once() == 1
    Executor(store).run_once(run_id)
    assert connector.run_once() == 1
    assert drive(store, run_id) == "completed" and store.get_run(run_id).result == "2002"
    assert decode(json.loads(store.step(run_id, 1)["result"])) == 1001


def test_run_connector_serves_a_module_until_stopped(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    run_id = start_run(store, SOURCES, "acme.billing/pay", ["2"])
    polls = []

    def stop():
        polls.append(1)
        Executor(store).run_once(run_id)
        return store.get_run(run_id).status == "completed" or len(polls) > 200

    assert run_connector(str(MODULE), store, worker="inline", poll=0.01, stop=stop) == 2
    assert store.get_run(run_id).result == "7"


def test_endpoint_names_are_package_slash_name():
    for bad in ("charge!", "acme.billing/", "/charge!", "a b/c!", 42):
        with pytest.raises(ValueError):
            endpoint(bad)


def test_one_name_cannot_be_implemented_twice():
    @endpoint("tests.twice/once!")
    def first():
        return 1

    with pytest.raises(ValueError, match="implemented twice"):
        @endpoint("tests.twice/once!")
        def second():
            return 2


def test_conformance_looks_inside_lists_maps_and_unions():
    ints = ListOf(BASES["int?"])
    assert conforms(from_python([1, 2]), ints)
    assert not conforms(from_python([1, "2"]), ints)
    assert not conforms([1, 2], ints)  # a Python list is converted first, never taken as is
    table = MapOf(BASES["keyword?"], ints)
    assert conforms(from_python({Keyword("a"): [1]}), table)
    assert not conforms(from_python({"a": [1]}), table)
    either = Union(frozenset({BASES["int?"], BASES["nil?"]}))
    assert conforms(None, either) and conforms(3, either) and not conforms(True, either)
    record = from_python(RecordValue("p", "r", ("xs",), ([1, 2],)))
    assert record.values == ((1, 2),)
