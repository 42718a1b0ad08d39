"""Replaying a run from its log alone, and verifying that replay reproduces it.

The log records every step's request (endpoint and arguments) and result. A
replay runs the program again from the start, answering each endpoint call
with its recorded result instead of performing it, and so rebuilds the run's
state without the store's snapshots. With `verify`, each request must be the
one recorded, step for step, and the state where the run last stopped must be
the stored snapshot's; the first difference is reported with its step number
and source span (a stored source edited afterwards shows up this way).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from flowmetal.lang import deep
from flowmetal.runtime import children
from flowmetal.runtime.executor import TIMEOUT
from flowmetal.runtime.literals import read_literal
from flowmetal.runtime.machine import Done, Fault, Machine, Slice
from flowmetal.runtime.program import load
from flowmetal.runtime.store import SQLiteStore, child_id
from flowmetal.runtime.values import ChildRef, literal


# How long a replay computes past its log's last step (see `Walk._run_past_log`), and the
# budget of each slice there.
PAST_LOG_SECONDS = 10.0
SLICE_BUDGET = 100_000


@dataclass
class Replay:
    steps: int = 0
    value: str | None = None       # the final value's literal, when the run ended
    fault: str | None = None
    divergence: str | None = None
    lines: list[str] = field(default_factory=list)


def replay(store: SQLiteStore, run_id: str, verify: bool = False) -> Replay:
    run = store.find_run(run_id)
    program = load(store.get_sources(run.program))
    out = Replay()
    walk = Walk(program, run, store.events(run.id), verify=verify)
    for _ in walk:
        pass
    out.steps, out.value, out.fault, out.divergence, out.lines = (walk.steps, walk.value, walk.fault,
                                                                  walk.divergence, walk.lines)
    if verify and out.divergence is None and not walk.stopped_past_log:
        out.divergence = deep.call(_compare_end, store, run, walk.machine, out)
    return out


class Walk:
    """Runs a run's program again from its start, answering each endpoint call from the log.

    Iterating yields each `Wait` *before* it is answered, with `machine` stopped at
    that endpoint call: a point where the run's state can be inspected
    (`runtime.inspect`). When iteration ends, `value`, `fault` or `divergence` say
    why: the run's end, a fault (the machine is left where it faulted), or the log
    disagreeing with the program; otherwise the run waits still at `steps`.
    """

    def __init__(self, program, run, events, verify: bool = False, start_from: dict | None = None) -> None:
        """`start_from`: a `checkpoint` an earlier walk of the same log took, to go on from
        there instead of from the run's start."""
        self.program, self.run, self.verify = program, run, verify
        self.start_from = start_from
        # Called as `on_step(walk, step)` each time a step has been answered and the
        # machine is about to run on: where `checkpoint()` can be taken.
        self.on_step = None
        self.timeouts: list[int] = []
        self.requested = {e.step: e for e in events if e.kind == "step-requested"}
        self.completed = {e.step: e for e in events if e.kind == "step-completed"}
        self.steps = 0
        self.value: str | None = None
        self.fault: str | None = None
        self.fault_error: Fault | None = None
        self.divergence: str | None = None
        self.lines: list[str] = []
        self.stopped_past_log = False
        self.package, _ = program.package_of(run.entry)
        self.machine = self.new_machine()

    def new_machine(self, data: dict | None = None) -> Machine:
        """The walk's machine: fresh, or restored from a checkpoint's `data`. A debugger's walk
        gives a machine of its own kind here (`flowmetal.dap.timeline`)."""
        if data is None:
            return Machine(self.program)
        return deep.call(Machine.restore, self.program, data)

    def _run_past_log(self, machine: Machine):
        """Run on past the log's last step, where the log no longer says how far the run got: a
        run cancelled, released or still going while it computed may compute for ever. So
        this runs in slices for at most PAST_LOG_SECONDS, then stops (None) with a line
        saying so; a run that ended with a fault there still gets to it in that time."""
        deadline = time.monotonic() + PAST_LOG_SECONDS
        def pause(resumable: bool = True) -> bool:
            return time.monotonic() > deadline
        while True:
            outcome = machine.run(SLICE_BUDGET, pause)
            if not isinstance(outcome, Slice):
                return outcome
            if time.monotonic() > deadline:
                self.stopped_past_log = True
                self.lines.append(f"replay stops {PAST_LOG_SECONDS:g}s past the log's last step: the run "
                                  f"computed on there ({self.run.status}), and its log says no more")
                return None

    def where(self, expr_id) -> str:
        if expr_id is None or expr_id < 0:
            return self.run.entry
        span = self.program.exprs[expr_id].node.span
        return f"{span.source.name}:{span.line}:{span.column}"

    def checkpoint(self) -> dict:
        """The walk's state between two steps, for another walk to start from."""
        return {"machine": deep.call(self.machine.snapshot), "timeouts": list(self.timeouts), "steps": self.steps,
                "parked": {str(t): s for t, s in self.parked.items()}}

    def __iter__(self):
        program, run = self.program, self.run
        requested, completed = self.requested, self.completed
        self.parked = {}  # task -> the step it waits on outside the machine (None: other tasks)
        if self.start_from is not None:
            machine = self.machine = self.new_machine(self.start_from["machine"])
            self.timeouts, self.steps = list(self.start_from["timeouts"]), self.start_from["steps"]
            self.parked = {int(t): s for t, s in self.start_from.get("parked", {}).items()}
        else:
            machine = self.machine
            try:
                machine.start(run.entry, [read_literal(a, program, self.package) for a in run.args])
            except Fault as fault:
                self.fault, self.fault_error = fault.render(), fault
                return
        timeouts = self.timeouts
        parked = self.parked
        answered = None
        last_recorded = max(requested, default=0)
        outcome = None
        while True:
            if answered is not None and self.on_step is not None:
                self.timeouts = timeouts
                self.on_step(self, answered)
                answered = None
            try:
                if outcome is _SCHEDULE:
                    outcome = self._schedule(machine, timeouts)
                    if outcome is _WAITS:
                        return  # the run waits here still
                if outcome is None:
                    if run.status != "completed" and (self.steps or 0) >= last_recorded:
                        outcome = self._run_past_log(machine)
                        if outcome is None:
                            return
                    else:
                        outcome = machine.run()
            except Fault as fault:
                outcome = self._task_fault(machine, fault, timeouts)
                if outcome is _ENDS:
                    return
                continue
            timeouts[:] = [t for t in timeouts if t not in machine.timeouts_done]
            machine.timeouts_done.clear()
            if isinstance(outcome, Done):
                if outcome.task != 0:
                    machine.finish_task(("ok", outcome.value))
                    outcome = _SCHEDULE
                    continue
                self.value = deep.call(literal, outcome.value)
                return
            step = outcome.step
            self.steps = step
            args = {k: deep.call(literal, v) for k, v in outcome.args.items()}
            recorded = requested.get(step)
            if recorded is None:
                if run.status in ("completed", "failed") and self.verify:
                    self.divergence = (f"step {step} at {self.where(outcome.expr_id)}: replay calls "
                                       f"`{outcome.name}`, which the log never recorded")
                return
            if recorded.data.get("endpoint") != outcome.name or (self.verify and recorded.data.get("args") != args):
                self.divergence = (f"step {step} at {self.where(outcome.expr_id)}: the log recorded "
                                   f"`{recorded.data.get('endpoint')}` {json.dumps(recorded.data.get('args'))}, "
                                   f"replay calls `{outcome.name}` {json.dumps(args)}")
                return
            yield outcome
            answered = step
            self.lines.append(f"step {step} {outcome.name} {' '.join(f'{k}={v}' for k, v in args.items())}")
            wait = outcome
            outcome = None
            if wait.name == "flowmetal.time/with-timeout!":
                timeouts.append(step)
                outcome = machine.enter_timeout(step, wait.args["f"])
                if outcome is not None:
                    raise NotImplementedError  # pragma: no cover - enter_timeout only starts the function
                continue
            if wait.package in ("flowmetal.task", children.PACKAGE):
                try:
                    outcome = (self._task_endpoint(machine, wait, timeouts) if wait.package == "flowmetal.task"
                               else self._run_endpoint(machine, wait))
                except Fault as fault:  # raised where the task called it
                    if not fault.trace:
                        fault.set_trace(machine.trace())
                    outcome = self._task_fault(machine, fault, timeouts)
                    if outcome is _ENDS:
                        return
                continue
            result = completed.get(step)
            if result is None or result.data.get("waited"):
                parked[machine.task] = step  # answered when every task is parked, in the log's order
                outcome = _SCHEDULE
                continue
            machine.resume(_value(result.data.get("result"), program, self.package))

    def _task_fault(self, machine: Machine, fault: Fault, timeouts: list):
        """A fault in a task ends the task (its awaiters meet it: `_SCHEDULE`); in the entry's
        own, the run (`_ENDS`)."""
        if machine.task != 0:
            if not fault.trace:
                fault.set_trace(machine.trace())
            self._drop_timeouts_of(machine, machine.task, timeouts)
            machine.finish_task(("fault", fault.message, fault.trace))
            return _SCHEDULE
        self.fault, self.fault_error = fault.render(), fault
        return _ENDS

    def _task_endpoint(self, machine: Machine, wait, timeouts):
        """`flowmetal.task`'s endpoints, computed again as the executor computes them."""
        name = wait.endpoint
        if name == "spawn!":
            machine.resume(machine.spawn(wait.args["f"]))
            return None
        if name == "cancel!":
            tid = machine.task_to_cancel(wait.args["t"])
            self._drop_timeouts_of(machine, tid, timeouts)
            machine.cancel_task(tid)
            self.parked.pop(tid, None)
            machine.resume(None)
            return None
        answer = machine.await_call(name, wait.args)
        if answer is None:
            self.parked[machine.task] = None
            return _SCHEDULE
        if answer[0] == "fault":
            raise Fault(answer[1])
        machine.resume(answer[1])
        return None

    def _run_endpoint(self, machine: Machine, wait):
        """`flowmetal.run`'s endpoints, as the executor answers them (`runtime.children`): a
        child's id is derived from the run's and the step, its outcome read from the log."""
        name = wait.endpoint
        if name == "start-run!":
            children.start_request(self.program, wait.args)
            machine.resume(ChildRef(child_id(self.run.id, wait.step)))
            return None
        children.child_of(wait.args["c"], name)
        if name == "cancel-run!":
            machine.resume(None)
            return None
        result = self.completed.get(wait.step)
        if result is None or result.data.get("waited"):
            self.parked[machine.task] = wait.step  # given when every task is parked, in the log's order
            self.__dict__.setdefault("child_waits", {})[wait.step] = wait.expr_id
            return _SCHEDULE
        if "error" in result.data:
            raise Fault(result.data["error"])
        machine.resume(children.read_value(result.data.get("result"), self.program, self.package))
        return None

    @staticmethod
    def _drop_timeouts_of(machine: Machine, tid: int, timeouts: list) -> None:
        for tstep in list(timeouts):
            if machine.timeout_owner(tstep) == tid:
                timeouts.remove(tstep)

    def _schedule(self, machine: Machine, timeouts: list):
        """As the executor's `schedule`: the next ready task; when none is, the next answer
        the log gave a parked task (in the log's order), or `_WAITS`."""
        tid = machine.pop_ready()
        if tid is not None:
            self.parked.pop(tid, None)
            return machine.switch_to(tid)
        candidates = []
        for t, step in self.parked.items():
            event = self.completed.get(step) if step is not None else None
            if event is not None:
                candidates.append((event.seq, "step", t, step))
        for tstep in timeouts:
            event = self.completed.get(tstep)
            if event is not None and event.data.get("result") == literal(TIMEOUT):
                candidates.append((event.seq, "timeout", None, tstep))
        if not candidates:
            return _WAITS
        _, kind, t, step = min(candidates)
        if kind == "timeout":
            owner = machine.timeout_owner(step)
            timeouts.remove(step)
            machine.switch_to(owner)
            machine.awaiting.pop(owner, None)
            machine.answers.pop(owner, None)
            self.parked.pop(owner, None)
            machine.expire_timeout(step, TIMEOUT)
            return None
        del self.parked[t]
        event = self.completed[step]
        if "error" in event.data:  # a child run's fault, raised where the task waits
            machine.switch_to(t)
            children.raise_at(machine, event.data["error"], self.__dict__.get("child_waits", {}).get(step))
        machine.deliver(t, _value(event.data.get("result"), self.program, self.package))
        return None


_SCHEDULE = object()  # the current task parked or ended: run the next
_WAITS = object()     # every task is parked and the log says no more
_ENDS = object()      # the walk ends (a fault of the run)


def _value(text: str, program, package: str):
    try:
        return read_literal(text, program, package)
    except ValueError:
        for scope in program.scopes.values():  # a record of another package (a callback)
            try:
                return read_literal(text, program, scope.name)
            except ValueError:
                continue
        raise


def _compare_end(store: SQLiteStore, run, machine: Machine, out: Replay) -> str | None:
    if run.status == "completed" and out.value != run.result:
        return f"the run completed with {run.result}, replay gives {out.value}"
    if run.status == "waiting":
        stored = store.snapshot(run.id)
        if stored is None:
            return None
        # Both made afresh (`full`): a stored table may keep entries nobody refers to any more.
        kept = Machine.restore(machine.program, stored["machine"],
                               lambda keys: store.snapshot_parts(run.id, keys)).snapshot(full=True)
        replayed = machine.snapshot(full=True)
        for state in (kept, replayed):
            state.get("tasks", {}).pop("compacted", None)
        if "call_env" not in stored["machine"]:  # written before it was kept
            replayed.pop("call_env", None)
            kept.pop("call_env", None)
        if kept != replayed:
            return f"step {out.steps}: the state replay reaches differs from the stored snapshot"
    return None
