"""The fast path (flowmetal.runtime.fast) gives what the machine gives: values, faults, traces.

Every golden evaluation case is run twice, once as usual (pure functions
compiled) and once on the machine alone; so are generated `match` expressions
over values of every kind. Tail calls in compiled code run in constant Python
stack, and a compiled loop stopped at every slice still gets on.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from flowmetal.runtime import fast
from flowmetal.runtime.machine import Done, Fault, Machine, Slice
from flowmetal.runtime.program import load
from flowmetal.runtime.values import Keyword, List, Map, Member, RecordValue, literal

from test_eval_golden import CASES


def outcome(program, entry: str, args: list, compiled: bool, budget=None, pause=None):
    """("value", literal) or ("fault", message, trace) of `entry`, and the machine that ran it."""
    machine = Machine(program)
    machine._deep = not compiled  # the machine alone: never hands a call to the fast path
    try:
        machine.start(entry, args)
        while True:
            result = machine.run(budget, pause)
            if isinstance(result, Done):
                return ("value", literal(result.value)), machine
            if not isinstance(result, Slice):  # an endpoint: answered with nil, as in memory
                machine.resume(None)
    except Fault as fault:
        return ("fault", fault.message, fault.trace), machine


_PROGRAMS: dict = {}
# Recursion deeper than Python's stack runs on the machine either way (the fast path gives it up),
# and takes seconds there: one of them is enough.
SAME = [case for case in CASES if not case.name.startswith("deep") or case.name == "deep-through-match"]


@pytest.mark.parametrize("case", SAME, ids=[case.id for case in SAME])
def test_each_golden_case_gives_the_same_on_the_fast_path_and_on_the_machine(case):
    program = _PROGRAMS.get(case.path)
    if program is None:
        program = _PROGRAMS[case.path] = load({"<input>.flow": case.path.read_text(encoding="utf-8")})
    fast_outcome, _ = outcome(program, case.entry, [], compiled=True)
    slow_outcome, _ = outcome(program, case.entry, [], compiled=False)
    assert fast_outcome == slow_outcome


MATCH_PROGRAM = """\
(defpackage m
  (defenum color +red+ +green+)
  (defrecord pair [a : any? b : any?])
  (defn pick [x : any?] : any?
    (match x
{clauses})))
"""

PATTERNS = ["0", "1", "2.5", "-1", '"s"', '""', ":k", ":j", "nil", "true", "false", "+red+", "+green+",
            "_", "v", "(pair 0 _)", "(pair v 1)", "(pair :k v)", "(pair (pair v _) w)", "(pair _ nil)"]
VALUES = [0, 1, 1.0, 2.5, -1, -1.0, "s", "", Keyword("k"), Keyword("j"), None, True, False,
          Member("m", "color", "+red+"), Member("m", "color", "+green+"), List([]), List([0]), Map({}),
          RecordValue("m", "pair", ("a", "b"), (0, 1)), RecordValue("m", "pair", ("a", "b"), (Keyword("k"), None)),
          RecordValue("m", "pair", ("a", "b"), (RecordValue("m", "pair", ("a", "b"), (2.5, 0)), "w"))]


def _clause(i: int, pattern: str) -> str:
    names = [n for n in ("v", "w") if f" {n}" in f" {pattern.replace('(', ' ')}"]
    return f"      [{pattern} [{i} {' '.join(names)}]]"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=7), st.lists(st.sampled_from(VALUES), min_size=1, max_size=5))
def test_match_compiled_gives_what_the_machine_gives(patterns, values):
    text = MATCH_PROGRAM.format(clauses="\n".join(_clause(i, p) for i, p in enumerate(patterns)))
    program = load({"m.flow": text})  # the checker takes any of these: the subject is `any?`
    for value in values:
        compiled, _ = outcome(program, "m/pick", [value], compiled=True)
        machine, _ = outcome(program, "m/pick", [value], compiled=False)
        assert compiled == machine, (text, literal(value))


def test_match_of_literals_dispatches_by_value_as_equality_does():
    program = load({"m.flow": MATCH_PROGRAM.format(clauses="\n".join(
        _clause(i, p) for i, p in enumerate(["1", "true", "0", "false", '"1"', "+red+", "nil", "_"])))})
    expected = [(1, "[0]"), (1.0, "[0]"), (True, "[1]"), (0, "[2]"), (-0.0, "[2]"), (False, "[3]"), ("1", "[4]"),
                (Member("m", "color", "+red+"), "[5]"), (None, "[6]"), (Keyword("1"), "[7]"), (List([1]), "[7]")]
    for value, shown in expected:  # pairs: as dict keys, 1, 1.0 and true would be one
        assert outcome(program, "m/pick", [value], compiled=True)[0] == ("value", shown), literal(value)


LOOPS = """\
(defpackage loops
  (defn count-up [n : int? limit : int?] : int? (if (= n limit) n (count-up (+ n 1) limit)))
  (defn even [n : int?] : bool? (if (= n 0) true (odd (- n 1))))
  (defn odd [n : int?] : bool? (if (= n 0) false (even (- n 1))))
  (defn walk [xs : (list? int?) acc : int?] : int?
    (match (count xs)
      [0 acc]
      [_ (walk (rest xs) (+ acc (first xs)))]))
  (defn sum-to [n : int?] : int? (walk (range n) 0))
  (defn countdown [n : int?] : int? (if (= n 0) (mod 1 n) (countdown (- n 1))))
  (defn outer [n : int?] : int? (+ 1 (countdown n))))
"""


@pytest.mark.parametrize("entry, args, expected", [
    ("loops/count-up", [0, 100_000], "100000"),
    ("loops/even", [100_001], "false"),         # two functions calling each other in tail position
    ("loops/sum-to", [50_000], "1249975000"),   # through `match`, `let`-free bodies, `rest`
])
def test_a_loop_of_tail_calls_stays_on_the_fast_path(entry, args, expected):
    program = load({"loops.flow": LOOPS})
    result, machine = outcome(program, entry, args, compiled=True)
    assert result == ("value", expected)
    assert machine._deep is False  # never deeper than Python's stack: the machine did not take over


def test_a_fault_at_the_end_of_a_compiled_loop_is_the_machines_fault_with_its_trace():
    program = load({"loops.flow": LOOPS})
    compiled, _ = outcome(program, "loops/outer", [5_000], compiled=True)
    machine, _ = outcome(program, "loops/outer", [5_000], compiled=False)
    assert compiled == machine
    assert compiled[0] == "fault" and compiled[1] == "division by zero"
    assert [f for _, f, _ in compiled[2]] == ["countdown", "outer"]


def test_a_compiled_loop_stopped_at_every_slice_goes_on_from_where_it_stopped(monkeypatch):
    """The machine takes a stopped loop over at its latest tail call, not from its start: so
    a loop stopped at each slice (other runs waiting) gets on by a slice's worth each time."""
    monkeypatch.setattr(fast, "CHUNK", 16)
    program = load({"loops.flow": LOOPS})
    slices = 0

    def stop(resumable: bool) -> bool:
        return True

    machine = Machine(program)
    machine.start("loops/count-up", [0, 3_000])
    while not isinstance(result := machine.run(100, stop), Done):
        assert isinstance(result, Slice)
        slices += 1
        machine = Machine.restore(program, machine.snapshot())  # as if another process went on
    assert result.value == 3_000
    assert slices < 300  # one iteration a slice (starting the loop over) would take 3,000

