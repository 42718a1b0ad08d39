"""`flowmetal dap` end to end: a real adapter process, a DAP client, recorded and live runs.

The lines a test stops at are marked in tests/dap/programs/debugged.flow (`;; @name`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from dap_kit import PROGRAMS, Client, client, markers, recorded  # noqa: F401 (fixtures)

AT = markers(PROGRAMS / "debugged.flow")


def test_capabilities(client):
    caps = client.request("initialize", {"adapterID": "flowmetal"})["body"]
    assert caps["supportsStepBack"] and caps["supportsConditionalBreakpoints"]
    assert caps["supportsFunctionBreakpoints"] and caps["supportsEvaluateForHovers"]
    assert [f["filter"] for f in caps["exceptionBreakpointFilters"]] == ["faults"]


def test_breakpoints_are_verified_and_moved_to_a_line_that_can_stop(client, recorded):
    folder, ids = recorded
    blank = AT["main-a"] - 1   # the empty line before `(let ...` in `main`
    answers = client.launch({folder / "debugged.flow": [blank, AT["square-let"]]}, run=ids["main"],
                            store="store.db")
    moved, exact = answers[folder / "debugged.flow"]
    assert moved["verified"] and moved["line"] == AT["main-a"] and "moved" in moved["message"]
    assert exact["verified"] and exact["line"] == AT["square-let"]
    stopped = client.event("stopped")
    assert stopped["reason"] == "breakpoint" and stopped["hitBreakpointIds"] == [moved["id"]]
    top = client.top()
    assert (top["name"], top["line"], top["source"]["path"]) == ("debugged/main", AT["main-a"],
                                                                  str(folder / "debugged.flow"))
    assert top["endLine"] > top["line"]  # the whole `let`
    stopped = client.move("continue")
    assert stopped["hitBreakpointIds"] == [exact["id"]]
    assert client.variables() == {"n": {"name": "n", "value": "3", "type": "int?", "variablesReference": 0}}


def test_a_file_changed_since_the_run_maps_breakpoints_to_the_stored_copy(tmp_path):
    program = tmp_path / "debugged.flow"
    shutil.copy(PROGRAMS / "debugged.flow", program)
    done = subprocess.run([sys.executable, "-m", "flowmetal", "run", "debugged.flow", "main", "3", "--store",
                           "store.db"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    run_id = done.stderr.split("run ", 1)[1].split(":", 1)[0]
    program.write_text(";; edited since\n" + program.read_text())
    client = Client(tmp_path)
    try:
        client.request("initialize")
        client.request("launch", {"run": run_id, "store": "store.db"})
        (refused,) = client.request("setBreakpoints", {"source": {"path": str(program)}, "breakpoints": [
            {"line": AT["square-let"]}]})["body"]["breakpoints"]
        assert not refused["verified"] and "differs from the copy" in refused["message"]
        copy = refused["message"].rsplit("set breakpoints in ", 1)[1]
        assert copy.startswith(str(tmp_path / "sources")) and copy.endswith("/debugged.flow")
        (bp,) = client.request("setBreakpoints", {"source": {"path": copy}, "breakpoints": [
            {"line": AT["square-let"]}]})["body"]["breakpoints"]
        assert bp["verified"] and bp["line"] == AT["square-let"]
        client.request("configurationDone")
        assert client.event("stopped")["hitBreakpointIds"] == [bp["id"]]
        assert client.top()["source"]["path"] == copy   # frames show the stored copy, not the edited file
    finally:
        client.close()


def test_conditional_breakpoints(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [{"line": AT["square-let"], "condition": "(= n 2)"}]},
                  run=ids["main"], store="store.db")
    client.event("stopped")
    assert client.variables()["n"]["value"] == "2"


def test_a_condition_in_error_is_shown_and_stops(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [{"line": AT["square-let"], "condition": "(+ n \"x\")"}]},
                  run=ids["main"], store="store.db")
    assert client.event("stopped")["reason"] == "breakpoint"
    assert client.variables()["n"]["value"] == "3"
    assert any("condition `(+ n \"x\")`" in line and "str?" in line for line in client.output)


def test_the_faults_filter_stops_where_a_failed_run_faults(client, recorded):
    folder, ids = recorded
    client.launch(filters=["faults"], run=ids["broken"], store="store.db")
    stopped = client.event("stopped")
    assert stopped["reason"] == "exception" and "no match clause fits 6" in stopped["text"]
    top = client.top()
    assert (top["name"], top["line"]) == ("debugged/broken", AT["broken-match"] - 1)
    assert client.variables()["k"]["value"] == "6"
    end = client.move("continue")   # then the run's end, still stopped (it can be stepped back from)
    assert end["reason"] == "exception" and end["description"] == "the run failed"
    client.request("continue")
    assert client.event("exited")["exitCode"] == 1
    client.event("terminated")


def test_a_function_breakpoint_stops_at_every_call_of_the_endpoint(client, recorded):
    folder, ids = recorded
    client.launch(functions=["log!"], run=ids["main"], store="store.db")
    lines = []
    for _ in range(3):
        stopped = client.event("stopped")
        assert stopped["reason"] == "function breakpoint"
        lines.append(client.top()["line"])
        client.request("continue")
    assert lines == [AT["square-let"] + 1] * 3   # `(log! (str "square " sq))`, for 3, then 1 and 2
    assert any("step-completed step 1" in line for line in client.output)


def test_stepping_forward_in_out_and_back(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [AT["main-a"]]}, run=ids["main"], store="store.db")
    client.event("stopped")
    assert client.top()["line"] == AT["main-a"]
    client.move("next")   # `(square n)` is stepped over, `b`'s binding next
    assert (client.top()["line"], client.variables()["a"]["value"]) == (AT["main-b"], "9")
    client.move("stepIn")
    assert (client.top()["name"], client.top()["line"]) == ("debugged/total", AT["total-let"])
    client.move("stepIn")
    assert client.top()["name"] == "debugged/square"   # through `map`
    assert client.variables()["n"]["value"] == "1"
    client.move("stepOut")   # past the other squares `map` makes: `sum`'s binding
    assert (client.top()["name"], client.top()["line"]) == ("debugged/total", AT["total-let"] + 1)
    assert client.variables()["squares"]["value"] == "[1 4 9]"
    client.move("stepBack")  # the mirror of `next`: the same or an outer frame, another line
    assert (client.top()["name"], client.top()["line"]) == ("debugged/total", AT["total-let"])
    assert "squares" not in client.variables()
    client.move("stepBack")
    assert (client.top()["name"], client.top()["line"]) == ("debugged/main", AT["main-b"])
    client.move("stepBack")
    assert client.top()["line"] == AT["main-a"]
    assert "a" not in client.variables()


def test_reverse_continue_goes_back_to_the_previous_breakpoint_hit(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [AT["square-result"]]}, run=ids["main"], store="store.db")
    seen = []
    for _ in range(3):
        client.event("stopped") if not seen else client.move("continue")
        seen.append(client.variables()["sq"]["value"])
    assert seen == ["9", "1", "4"]
    assert client.move("reverseContinue")["reason"] == "breakpoint"
    assert client.variables()["sq"]["value"] == "1"
    client.move("reverseContinue")
    assert client.variables()["sq"]["value"] == "9"
    assert client.move("reverseContinue")["reason"] == "entry"   # no hit before: the run's start


def test_records_maps_and_lists_expand(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [AT["shapes-log"]]}, run=ids["shapes"], store="store.db")
    client.event("stopped")
    found = client.variables()
    assert found["p"]["value"] == "(point 4 5)" and found["p"]["type"] == "point?"
    assert {k: v["value"] for k, v in client.children(found["p"]["variablesReference"]).items()} == {"x": "4", "y": "5"}
    m = client.children(found["m"]["variablesReference"])
    assert m['"a"']["value"] == "1"
    assert {k: v["value"] for k, v in client.children(m['"b"']["variablesReference"]).items()} == {
        "[0]": "4", "[1]": "4"}
    xs = client.children(found["xs"]["variablesReference"])
    assert list(xs) == ["[0]", "[1]"] and xs["[0]"]["variablesReference"] > 0


def test_evaluate_pure_expressions_in_the_frame(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [AT["square-result"]]}, run=ids["main"], store="store.db")
    client.event("stopped")
    frame = client.top()["id"]
    ok = client.request("evaluate", {"expression": "(+ sq n 100)", "frameId": frame, "context": "repl"})
    assert (ok["body"]["result"], ok["body"]["type"]) == ("112", "int?")
    outer = client.request("stackTrace", {"threadId": 1})["body"]["stackFrames"][1]
    assert client.request("evaluate", {"expression": "n", "frameId": outer["id"]})["body"]["result"] == "3"
    refused = client.request("evaluate", {"expression": "(log! \"x\")", "frameId": frame}, ok=False)
    assert not refused["success"] and "calls the endpoint `flowmetal.log/log!`" in refused["message"]
    bad = client.request("evaluate", {"expression": "(+ sq \"x\")", "frameId": frame}, ok=False)
    assert not bad["success"] and "str?" in bad["message"]
    unknown = client.request("evaluate", {"expression": "nope", "frameId": frame}, ok=False)
    assert not unknown["success"] and "nope" in unknown["message"]


def test_evaluate_calls_a_closure_of_a_package_numbered_after_the_frames(tmp_path):
    # The expression is checked in a copy of the program with a function added to `helpers`,
    # which the walk numbering expressions passes before `main`: the closure bound to `f` (the
    # id of a `fn` of `main`) must still name its own code there.
    for name in ("main.flow", "helpers.flow"):
        shutil.copy(PROGRAMS / "closures" / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k != "FLOWMETAL_STORE"}
    done = subprocess.run([sys.executable, "-m", "flowmetal", "run", "main.flow", "main", "5", "--store",
                           "store.db"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == "1006", done.stderr
    run_id = done.stderr.split("run ", 1)[1].split(":", 1)[0]
    line = markers(PROGRAMS / "closures" / "helpers.flow")["apply-log"]
    client = Client(tmp_path)
    try:
        client.launch({tmp_path / "helpers.flow": [line]}, run=run_id, store="store.db")
        client.event("stopped")
        top = client.top()
        assert (top["name"], client.variables()["f"]["type"]) == ("helpers/apply-to", "(fn? [int?] : int?)")
        for expression, value in (("(f x)", "1006"), ("(f 20)", "1025"), ("(+ (f 0) x)", "1006")):
            answer = client.request("evaluate", {"expression": expression, "frameId": top["id"], "context": "repl"})
            assert answer["body"]["result"] == value, expression
        # The run's own program is untouched: it goes on to its end with the same value.
        end = client.move("continue")
        assert end["reason"] == "end" and end["description"] == "the run completed: 1006"
    finally:
        client.close()


def test_a_run_with_tasks_has_a_thread_for_each(client, recorded):
    folder, ids = recorded
    client.launch({folder / "debugged.flow": [AT["worker-log"]]}, run=ids["fan"], store="store.db")
    first = client.event("stopped")
    threads = {t["id"]: t["name"] for t in client.request("threads")["body"]["threads"]}
    assert threads[1] == "task 0: debugged/fan" and len(threads) == 3
    assert first["threadId"] != 1
    assert client.variables(thread=first["threadId"])["n"]["value"] == "1"
    entry = client.top(thread=1)
    assert entry["name"] == "debugged/fan"
    second = client.move("continue")
    assert second["threadId"] not in (1, first["threadId"])
    assert client.variables(thread=second["threadId"])["n"]["value"] == "2"


def test_a_live_run_stops_at_a_breakpoint_after_its_sleep(tmp_path):
    shutil.copy(PROGRAMS / "debugged.flow", tmp_path / "debugged.flow")
    client = Client(tmp_path)
    try:
        client.launch({tmp_path / "debugged.flow": [AT["after-nap"]]}, program=str(tmp_path / "debugged.flow"),
                      entry="napper", args=["200"], store=str(tmp_path / "live.db"))
        stopped = client.event("stopped")
        assert stopped["reason"] == "breakpoint"
        assert (client.top()["line"], client.variables()["ms"]["value"]) == (AT["after-nap"], "200")
        assert any("timer" in line for line in client.output)
        end = client.move("continue")
        assert end["reason"] == "end" and end["description"] == "the run completed: 200"
        client.request("continue")
        assert client.event("exited")["exitCode"] == 0
    finally:
        client.close()


def test_bad_launches_are_errors_naming_the_problem(client, recorded):
    client.request("initialize")
    missing = client.request("launch", {"run": "nope", "store": "store.db"}, ok=False)
    assert not missing["success"] and "nope" in missing["message"]
    none = client.request("launch", {}, ok=False)
    assert "`run`" in none["message"] and "`program`" in none["message"]
