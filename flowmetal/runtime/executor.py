"""The executor: claims runs from the store and drives them, one durable step at a time.

A run advances in a process that holds its *lease*. The executor loads the run's
program (its stored sources, checked once per process and cached by code hash),
restores the machine from the latest snapshot (or starts it), and runs it. At
each endpoint call:

    now!  log!  make-callback!   answered here, at once; the run goes on (a callback's URL is
                                  on the store's public URL: `SQLiteStore.public_url`)
    jitter!                       answered here, at once, from the run id and step (`jitter`)
    with-timeout!                 sets a durable timer and runs the function under it
    sleep!                        sets a durable timer; the run waits
    get-callback!                 answered at once if the body came, else the run waits
    receive!                      answered at once if a signal is queued, else the run waits
                                    (`flowmetal.runtime.signals`)
    spawn! await! ...             `flowmetal.task`: tasks of this run (below, and `machine`)
    start-run! await-run! ...     `flowmetal.run`: child runs (`runtime.children`)
    an endpoint hosted here       performed here, in the run's own process (`inline`, below)
    any other endpoint            a pending step for a connector; the run waits

Events are kept in memory while the run goes on and committed together, with a
snapshot, when it must wait, finishes or fails (and every few hundred events).
That is safe by the rule from Flowmetal's design: a step that failed to persist
must not have had an effect outside the process. The steps answered here have
none that is not recorded first: a callback's URL or a request leaves the
process only through a step that waits, and every wait commits before it.
Lost uncommitted work is simply done again from the last snapshot.

Every commit checks that this worker still holds the lease (`LeaseLost`
otherwise, and the work is dropped): two workers never advance one run.

A run that computes without waiting cannot hold its worker for good: the
machine runs in slices (`SLICE` units of work, a few milliseconds), and at most
every `LOOK_EVERY` seconds, between slices or from inside a long pure call (the
machine's `pause` hook), the driver looks around:

    a cancel was asked for        the run ends `cancelled`
    the executor is stopping      a checkpoint, and the run is released (`pending`)
    `TIME_SLICE` of CPU spent     released too, if another run is runnable (behind it
      and another run waits         in the queue); a worker given one run keeps it
    the lease is a third gone     renewed (a heartbeat), so no other worker takes the run
    `CHECKPOINT_EVERY` elapsed    a checkpoint (a snapshot: a crash resumes from here);
                                  never inside a pure call, and rarer when snapshots are slow

A step for a connector is often answered within milliseconds. So when a run's
only news is such a request, the executor commits it (events, the step, the
snapshot: as durable as ever) *without* letting the run go, and watches for the
answer for up to `HOLD` seconds (25 ms): a result that comes meanwhile is given
to the run at once, in memory, with no release, no claim and no restore of the
snapshot; the next commit records it taken, as after any resume. Only when none
comes does the run wait as before (a second commit: `waiting`, released). A
crash while it holds loses nothing: the run is `running` on a lease, its
request and state committed, and the next holder resumes it from that snapshot
once the lease lapses. An endpoint that let a hold pass unanswered is not held
for again for `HOLD_AGAIN` seconds, so slow connectors cost no executor time.

Steps performed in the run's own process. An executor given `inline` (a worker's
`--connector` modules: `flowmetal.connectors.inline.InlineSteps`) performs the
steps of those endpoints itself, under the run's own lease, as a durable workflow
performs its steps: the commit of the run's request (its events and the snapshot
waiting on the step, which names the step's endpoint, arguments and key) writes no
row for the step (`Store.commit`'s `inline_steps`), the function runs on a thread
of `inline` while this thread renews the run's lease (every `beat_every`; a
stopping executor waits `inline.grace` seconds for it, then asks a connector for
the step and lets the run wait), and its result is given to the run in memory,
with the same events as a connector's answer. The step's row is written once,
with its result (`inline_results`), by the run's next commit, whatever it is: the
next step's request, the wait, the end, a checkpoint; so a step costs one commit,
and nothing that depends on the result leaves the process before it is committed.
A crash in between leaves the run's snapshot waiting on the step: whoever resumes
the run asks a connector for it (`resume_inline`), with the same key. A run with tasks,
or under a `with-timeout!`, leaves such steps to the connector path (a function
running here could not be interrupted by the timeout, nor let other tasks go on).

A snapshot larger than `MAX_SNAPSHOT` (or one that cannot be written) fails the
run with a clear error instead of an unstorable commit.

No run is left `running` by an error: a Python error anywhere in driving it
(outside the store, whose errors and lost leases leave the run to be claimed
again) fails it with an `internal error` fault. Values nested deeper than
Python's stack are printed, stored and read back on a deeper one (`deep.call`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from flowmetal.lang import deep
from flowmetal.runtime import children
from flowmetal.runtime import signals
from flowmetal.runtime.jitter import ENDPOINT as JITTER, jitter
from flowmetal.runtime.machine import RET, Done, Fault, Machine, Slice, Wait
from flowmetal.runtime.program import Program, ProgramError, load
from flowmetal.runtime.store import CALLBACK_WAIT, SIGNAL_WAIT, LeaseLost, Run, SQLiteStore, StoreError
from flowmetal.runtime.storeerrors import ProgramUnreadable
from flowmetal.runtime.values import Member, RecordValue, decode, encode, literal
from flowmetal.runtime.literals import read_literal

COMMIT_EVERY = 500        # events
HEARTBEAT_EVERY = 5.0     # seconds at most between lease renewals (a third of the lease when shorter)
SLICE = 20_000            # units of work (machine transitions, fast-path calls) between looks at the clock
LOOK_EVERY = 0.05         # seconds between looks at the store (cancel, lease, queue) while a run computes
TIME_SLICE = 0.3          # seconds of CPU a run keeps its executor while other runs wait
CHECKPOINT_EVERY = 5.0    # seconds between checkpoints of a run that computes (at least 10x a snapshot's cost)
MAX_SNAPSHOT = 256 << 20  # bytes: the largest state a run may store (SQLite's own limit is 1e9)
HOLD = 0.025              # seconds a run keeps its executor, after committing a connector's step, for the answer
HOLD_AGAIN = 30.0         # seconds before holding again for an endpoint that let a hold pass unanswered
TIMEOUT = Member("flowmetal.time", "timeout", "+timeout+")
UNITS_MS = {"+milliseconds+": 1, "+seconds+": 1000, "+minutes+": 60_000, "+hours+": 3_600_000,
            "+days+": 86_400_000}


MAX_DURATION_MS = 10_000 * 365 * UNITS_MS["+days+"]  # what a timer may wait: 10,000 years


def duration_ms(value) -> int:
    if not (isinstance(value, RecordValue) and value.record == "duration" and len(value.values) == 2):
        raise Fault(f"expected a duration, not {_literal(value)}")
    num, unit = value.values
    if (not isinstance(num, int) or isinstance(num, bool) or not isinstance(unit, Member)
            or unit.name not in UNITS_MS):
        raise Fault(f"expected a duration of a whole number of a time unit, not {_literal(value)}")
    ms = num * UNITS_MS[unit.name]
    if abs(ms) > MAX_DURATION_MS:
        raise Fault(f"the duration {_literal(value)} is longer than 10,000 years")
    return ms


def _size(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB"


def _result(value) -> str:
    return json.dumps(encode(value), separators=(",", ":"))


def _literal(value) -> str:
    try:
        return deep.call(literal, value)
    except RecursionError:
        raise Fault("a value is nested too deep to be printed") from None


def call_site(program: Program, stack: list, expr_id: int | None) -> int | None:
    """Where in the run's own program an endpoint call at `expr_id` comes from: `expr_id`
    itself, unless it stands in a standard package's function (the `sleep!` inside `retry!`);
    then the call in the program's files that entered the standard package, found on the
    machine's stack (a tail call keeps the caller it replaced). The trace shows that line."""
    files = program.sources

    def own(i) -> bool:
        return i is not None and 0 <= i < len(program.exprs) and program.exprs[i].node.span.source.name in files

    if expr_id is None or expr_id < 0 or own(expr_id):
        return expr_id
    for frame in reversed(stack):
        if frame[0] == RET:
            call_id, tail = frame[3], frame[4]
            if own(call_id):
                return call_id
            if tail is not None and own(tail[2]):
                return tail[2]
    return expr_id


@dataclass
class Progress:
    """What one advance did: the run's status afterwards."""
    run_id: str
    status: str


class Executor:
    """Drives runs on one store connection, in one thread. `stop`, once set, makes the run
    in hand commit a checkpoint and go back to the queue (within `LOOK_EVERY` seconds)."""

    def __init__(self, store: SQLiteStore, worker: str | None = None, lease: float = 30.0,
                 public_url: str | None = None, stop: threading.Event | None = None, hold: float = HOLD,
                 inline=None) -> None:
        self.store = store
        # The endpoints performed in the run's own process (`endpoints`, `start`, `grace`), or None.
        self.inline = inline
        self.hold = hold  # seconds to hold a run for a connector's answer (0: never)
        self.slow: dict[str, float] = {}  # endpoint -> when holding for it is worth trying again
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease = lease
        self.stop = stop
        # Callback URLs are built on the store's public URL, one setting of the whole deployment,
        # read when each is made, so that it reaches whichever server serves the store. `public_url`
        # overrides it for this executor only (the editor's embedded worker, tests).
        self._public_url = public_url.rstrip("/") if public_url else None
        self._programs: dict[str, Program] = {}

    @property
    def public_url(self) -> str:
        return self._public_url or self.store.public_url().rstrip("/")

    # -- programs --

    def program(self, run: Run) -> Program:
        program = self._programs.get(run.code_hash)
        if program is None:
            program = self._programs[run.code_hash] = load(self.store.get_sources(run.program))
        return program

    # -- the loop --

    def run_once(self, run_id: str | None = None) -> Progress | None:
        """Claim one runnable run (or the named one, if runnable) and advance it. Any run
        claimed is shared: after its time slice it makes way for other runnable runs; the
        named one is kept until it waits or ends."""
        run = self.store.claim(self.worker, self.lease, run_id=run_id)
        if run is None:
            return None
        try:
            return self.advance(run, share=run_id is None)
        except LeaseLost:
            return Progress(run.id, "lost")

    def advance(self, run: Run, share: bool = False) -> Progress:
        driver = _Driver(self, run, share)
        try:
            return driver.go()
        except _Cancel:  # asked for while the run was going: it stops at the next checkpoint
            return driver.cancel()
        except (LeaseLost, StoreError, sqlite3.Error, OSError):
            raise  # the store's: the run is claimed again once the lease lapses
        except Exception as error:  # a bug of the driver's own: the run fails rather than stays `running`
            return driver.fail(Fault(f"internal error: {type(error).__name__}: {error}"))


class _Driver:
    def __init__(self, executor: Executor, run: Run, share: bool = False) -> None:
        self.ex = executor
        self.store = executor.store
        self.run = run
        self.events: list[tuple] = []
        self.extra: dict = {"steps": [], "timers": [], "callbacks": [], "completed_steps": [],
                            "cancelled_steps": [], "fired_timers": [], "signals": [],
                            "children": [], "cancel_children": [], "applied_steps": [],
                            "inline_results": []}
        # [step, due, task] of the with-timeout! timers around the code (a state written before
        # tasks kept their owner has [step, due]: `timeout_owner` looks for it)
        self.timeouts: list[list] = []
        self.waits = Waits()
        self.given: set[int] = set()  # steps and timers given in this advance (the store learns at the commit)
        now = time.monotonic()
        self.share = share               # make way for other runs after a time slice
        self.last_beat = now
        self.beat_every = min(HEARTBEAT_EVERY, executor.lease / 3)
        self.next_look = now + LOOK_EVERY
        self.next_checkpoint = now + CHECKPOINT_EVERY
        self.cpu_start = time.thread_time()

    def event(self, kind: str, step: int | None = None, line: int | None = None, task: int | None = None,
              **data) -> None:
        """Log an event, of the current task unless `task` says. An event of a step without a
        line of its own gets its request's line."""
        machine = getattr(self, "machine", None)
        data["task"] = task if task is not None else (machine.task if machine is not None else 0)
        if step is not None:
            if line is None:
                line = self.step_line(step)
            elif kind == "step-requested":
                self.step_lines[step] = line
        self.events.append((kind, step, data, line))

    def step_line(self, step: int) -> int | None:
        lines = self.__dict__.setdefault("step_lines", {})
        if step not in lines:
            lines[step] = self.store.request_line(self.run.id, step)
        return lines[step]

    @property
    def step_lines(self) -> dict:
        return self.__dict__.setdefault("step_lines", {})

    def line(self, expr_id: int) -> int | None:
        if expr_id is None or expr_id < 0:
            return None
        return self.program.exprs[expr_id].node.span.line

    def span(self, expr_id: int) -> str | None:
        """Where an expression is: `file:line:column-end_line:end_column`."""
        if expr_id is None or expr_id < 0:
            return None
        s = self.program.exprs[expr_id].node.span
        return f"{s.source.name}:{s.line}:{s.column}-{s.end_line}:{s.end_column}"

    def commit(self, **kw) -> dict:
        extra = {k: v for k, v in self.extra.items() if v}
        # A snapshot of values nested deeper than this stack is written on a deeper one (the
        # transaction that failed to write it was rolled back).
        answer = deep.call(self.store.commit, self.run, self.ex.worker, self.events, **extra, **kw)
        self.events = []
        self.extra = {k: [] for k in self.extra}
        return answer or {}

    # -- start or resume --

    def go(self) -> Progress:
        run = self.run
        try:
            self.program = self.ex.program(run)
        except ProgramError as error:
            self.event("run-failed", error=f"the program does not check: {error}")
            self.commit(status="failed", error=str(error), release=True)
            return Progress(run.id, "failed")
        # A stored program that cannot be read (a bad file name) never will be; a store that
        # could not be reached for a moment (any other StoreError) leaves the run to be taken again.
        except ProgramUnreadable as error:
            self.event("run-failed", error=f"the program cannot be read: {error}")
            self.commit(status="failed", error=str(error), release=True)
            return Progress(run.id, "failed")
        if self.store.cancel_requested(run.id):
            return self.cancel()
        state = deep.call(self.store.snapshot, run.id)
        machine: Machine
        try:
            if state is None:
                machine = self.machine = Machine(self.program)
                package, _ = self.program.package_of(run.entry)
                args = [deep.call(read_literal, text, self.program, package) for text in run.args]
                machine.start(run.entry, args)
                outcome = None
            else:
                def load(keys):
                    return self.store.snapshot_parts(run.id, keys)
                machine = deep.call(Machine.restore, self.program, state["machine"], load)
            self.machine = machine
            if state is not None:
                self.timeouts = state.get("timeouts", [])
                self.step_lines.update({int(k): v for k, v in state.get("lines", {}).items()})
                waiting = state["waiting"]
                if "waits" in state:
                    self.waits = Waits(load, {int(t): w for t, w in state["waits"].items()}, state.get("parted", 0))
                elif waiting is not None:  # a state written before tasks: the entry's one wait
                    self.waits = Waits(load, {0: waiting})
                self.resume_inline()
                if waiting is None:  # a checkpoint in the middle of running: go on from there
                    outcome = self.expire_running(machine)
                else:
                    outcome = _WAKE
            return self.drive(machine, outcome)
        except Fault as fault:
            return self.fail(fault)

    def resume_inline(self) -> None:
        """A step that was being performed in the run's own process when the run was last
        stored (its result never committed: that process crashed, stopped or lost the run) is
        asked of a connector now, with the same key, as any step is. (Its function may have
        run already: the key lets the endpoint see it; the store records one result.)"""
        for wait in self.waits.head.values():
            inline = wait.pop("inline", None) if wait.get("kind") == "step" else None
            if inline is not None:
                name, args_json, key = inline
                self.extra["steps"].append((wait["step"], name, args_json, key))

    def timeout_owner(self, machine: Machine, timeout: list) -> int | None:
        """The task a `with-timeout!` timer stops, None if it ended."""
        if len(timeout) > 2:
            return None if timeout[2] in machine.results else timeout[2]
        return machine.timeout_owner(timeout[0])

    def expire_running(self, machine: Machine):
        """Resumed from a checkpoint while the current task ran: a `with-timeout!` timer of
        its own that fell due meanwhile ends the code under it."""
        now = self.store.clock()  # due times are on the store's clock (the database's, on PostgreSQL)
        for timeout in reversed(self.timeouts):
            tstep, due = timeout[:2]
            if due <= now and self.timeout_owner(machine, timeout) == machine.task:
                self.event("timer-fired", step=tstep, timeout=True)
                self.extra["fired_timers"].append(tstep)
                self.timeouts = [t for t in self.timeouts if t[0] != tstep]
                if machine.expire_timeout(tstep, TIMEOUT):
                    self.event("step-completed", step=tstep, result=literal(TIMEOUT))
                    break
        return None

    def wake(self, machine: Machine):
        """Every task is parked: give one of them what it waited for, if something came (the
        first to come first), and make it current (None: run on); else end the wait of a
        `with-timeout!` that fell due (`expire_due`), or 'still-waiting'. What came wins over
        a timeout due by the time the run looks: the work is done, and nothing is lost by
        taking it. One at a time, each recorded as it is given: the log's order is the run's."""
        # A run without tasks, timeouts or a timer to wait on has no timer to look for: neither
        # the store's clock nor its timers are asked (two round trips a step on PostgreSQL).
        timed = (machine.next_task > 1 or bool(self.timeouts)
                 or any(w["kind"] == "timer" for w in self.waits.head.values()))
        now = self.store.clock() if timed else time.time()
        # What came, each with when it came (a timer: when it fell due; a step: when its result
        # was recorded): the first to come is given first. The store says what came (the run's
        # finished steps, its due timers), and the waits say whose it is: O(what came).
        came = []
        rows = [r for r in self.store.finished_steps(self.run.id, None) if r["step"] not in self.given]
        timers = ([t for t in self.store.due_timers(self.run.id, now) if t["step"] not in self.given]
                  if timed else [])
        owners = self.waits.tasks_of([r["step"] for r in rows] + [t["step"] for t in timers])
        for row in rows:
            tid = owners.get(row["step"])
            wait = self.waits.get(tid) if tid is not None else None
            if wait is None or wait["kind"] != "step" or wait["step"] != row["step"]:
                # Nobody waits for it any more (a timeout ended its wait first): taken, so that it
                # does not wake the run again.
                self.extra["applied_steps"].append(row["step"])
                continue
            came.append((row["completed"] or now, row["step"], tid, row))
        for timer in timers:  # a `with-timeout!`'s has no owner here: `expire_due` ends it
            tid = owners.get(timer["step"])
            wait = self.waits.get(tid) if tid is not None else None
            if wait is not None and wait["kind"] == "timer" and wait["step"] == timer["step"]:
                came.append((wait["due"], wait["step"], tid, None))
        for tid, wait in self.waits.head.items():
            if wait["kind"] == "signal":
                signal = signals.queued(self, wait["name"])
                if signal is not None:
                    came.append((signal["sent"], wait["step"], tid, signal))
        came += children.came(self)
        if not came:
            return self.expire_due(machine, now)
        _, step, tid, row = min(came, key=lambda c: (c[0], c[1]))
        wait = self.waits.pop(tid)
        self.given.add(step)
        if wait["kind"] == "child":  # a child run's outcome
            children.give(self, machine, step, row, task=tid)
            return None
        if wait["kind"] == "signal":  # the oldest signal of its name, taken now
            machine.switch_to(tid)
            machine.resume(signals.take(self, step, row, waited=True))
            return None
        if row is None:  # a timer
            machine.deliver(tid, None)
            self.event("timer-fired", step=step)
            self.extra["fired_timers"].append(step)
            self.event("step-completed", step=step, result="nil", waited=True)
            return None
        if row["status"] == "failed":
            self.extra["applied_steps"].append(step)
            machine.switch_to(tid)
            raise Fault(row["error"])  # the connector's message names the endpoint already
        value = deep.call(lambda: decode(json.loads(row["result"])))
        machine.deliver(tid, value)
        self.event("step-completed", step=step, result=_literal(value), waited=True)
        self.extra["completed_steps"].append((step, row["result"]))
        return None

    def expire_due(self, machine: Machine, now: float):
        """A `with-timeout!` timer that fell due (innermost first) ends the code under it, and
        what that code waited for is cancelled: None (run on), else 'still-waiting'."""
        for timeout in reversed(self.timeouts):
            tstep, due = timeout[:2]
            if due > now:
                continue
            owner = self.timeout_owner(machine, timeout)
            self.timeouts = [t for t in self.timeouts if t[0] != tstep]
            self.extra["fired_timers"].append(tstep)
            if owner is None:  # its task ended (cancelled): nothing to stop
                self.event("timer-fired", step=tstep, timeout=True)
                continue
            wait = self.waits.pop(owner)
            if wait is not None and wait["kind"] != "tasks":
                self.extra["cancelled_steps"].append(wait["step"])
            machine.switch_to(owner)
            machine.awaiting.pop(owner, None)
            machine.answers.pop(owner, None)
            self.event("timer-fired", step=tstep, timeout=True)
            if machine.expire_timeout(tstep, TIMEOUT):
                self.event("step-completed", step=tstep, result=literal(TIMEOUT), waited=True)
                return None
        return "still-waiting"

    def schedule(self, machine: Machine):
        """The current task parked or ended: run the next ready task; when none is, wake a
        parked one; when none can be woken, the run waits (a Progress)."""
        while True:
            tid = machine.pop_ready()
            if tid is not None:
                wait = self.waits.head.get(tid)  # a wait for tasks is kept in the head
                if wait is not None and wait["kind"] == "tasks":  # woken by the tasks it awaited
                    del self.waits.head[tid]
                    answer = machine.answers.get(tid)
                    self.event("step-completed", step=wait["step"], task=tid, waited=True,
                               **({"result": _literal(answer[1])} if answer and answer[0] == "ok"
                                  else {"error": answer[1] if answer else "cancelled"}))
                return machine.switch_to(tid)  # None, or a new task's first call of an endpoint
            woke = self.wake(machine)
            if woke is None:
                return None
            if self.waits.outside() or self.timeouts:
                return self.suspend(machine)
            if self.waits.head:  # every task awaits another, and nothing outside will come
                stuck = ", ".join(str(t) for t in sorted(self.waits.head))
                raise _RunFault(f"every task waits for another task (tasks {stuck}): none can go on")
            return self.suspend(machine)

    # -- running --

    def drive(self, machine: Machine, outcome) -> Progress:
        while True:
            try:
                outcome = self.advance(machine, outcome)
            except Fault as fault:
                if machine.task == 0 or isinstance(fault, _RunFault):
                    raise
                # A fault in a task ends the task, not the run: it is raised in its awaiters.
                if not fault.trace:
                    fault.set_trace(machine.trace())
                trace = [{"package": p, "function": f, "line": line} for p, f, line in fault.trace]
                self.event("task-failed", error=fault.message, trace=trace)
                self.drop_timeouts_of(machine, machine.task)
                machine.finish_task(("fault", fault.message, fault.trace))
                outcome = _SCHEDULE
            if isinstance(outcome, Progress):
                return outcome

    def advance(self, machine: Machine, outcome):
        """One move of `drive`: the next outcome, or a Progress when the run stops."""
        if outcome is _WAKE:
            outcome = self.wake(machine)
            if outcome == "still-waiting":
                return self.suspend(machine)
        if outcome is _SCHEDULE:
            outcome = self.schedule(machine)
            if isinstance(outcome, Progress) or outcome is _WAKE:
                return outcome
        if outcome is None:
            outcome = machine.run(SLICE, self.pause)
        for tstep in machine.timeouts_done:  # a with-timeout! function finished in time
            self.event("timer-cancelled", step=tstep)
            self.extra["cancelled_steps"].append(tstep)
            self.timeouts = [t for t in self.timeouts if t[0] != tstep]
        machine.timeouts_done.clear()
        if isinstance(outcome, Slice):
            return self.between(machine)
        if isinstance(outcome, Done):
            text = _literal(outcome.value)
            if outcome.task != 0:
                self.event("task-completed", result=text)
                machine.finish_task(("ok", outcome.value))
                return _SCHEDULE
            self.cancel_tasks(machine)
            self.event("run-completed", result=text)
            self.commit(status="completed", result=text, release=True)
            return Progress(self.run.id, "completed")
        outcome = self.endpoint(machine, outcome)
        if outcome is None:  # answered here: the run goes on
            if len(self.events) >= COMMIT_EVERY:
                self.checkpoint(machine)
            return self.between(machine)
        return outcome  # a Progress, or _SCHEDULE: the task is parked

    def drop_timeouts_of(self, machine: Machine, tid: int) -> None:
        """The `with-timeout!` timers of a task that ended: cancelled."""
        for timeout in list(self.timeouts):
            tstep = timeout[0]
            if (timeout[2] if len(timeout) > 2 else machine.timeout_owner(tstep)) == tid:
                self.timeouts = [t for t in self.timeouts if t[0] != tstep]
                self.event("timer-cancelled", step=tstep, task=tid)
                self.extra["cancelled_steps"].append(tstep)

    def cancel_task(self, machine: Machine, tid: int) -> bool:
        """End task `tid` as cancelled, with what it waits for."""
        self.drop_timeouts_of(machine, tid)
        if not machine.cancel_task(tid):
            return False
        wait = self.waits.pop(tid)
        if wait is not None and wait["kind"] != "tasks":
            self.extra["cancelled_steps"].append(wait["step"])
        self.event("task-cancelled", task=tid)
        return True

    def cancel_tasks(self, machine: Machine) -> None:
        """The run ends: the tasks still going are cancelled (recorded)."""
        self.waits.preload(machine.live_tasks())
        for tid in machine.live_tasks():
            if tid != machine.task:
                self.cancel_task(machine, tid)

    # -- between slices --

    def between(self, machine: Machine) -> Progress | None:
        """Look around, at most every `LOOK_EVERY` seconds (and at once when stopping):
        None to run on, or the Progress of a run that stopped here."""
        now = time.monotonic()
        stopping = self.ex.stop is not None and self.ex.stop.is_set()
        if not stopping and now < self.next_look:
            return None
        self.next_look = now + LOOK_EVERY
        if self.store.cancel_requested(self.run.id):
            return self.cancel()
        if stopping or self.make_way():
            return self.release(machine)
        if now >= self.next_checkpoint:
            self.checkpoint(machine)
        elif now - self.last_beat >= self.beat_every:
            self.beat()
        return None

    def pause(self, resumable: bool = True) -> bool:
        """The machine's hook inside a long pure call or constant: keep the lease, and say
        whether it must stop here so that `between` can act. A pure call stopped is made
        again by the machine, which keeps its progress (`resumable`); a constant's work
        would be lost, so only a cancel or a shutdown stops one, never sharing."""
        now = time.monotonic()
        if self.ex.stop is not None and self.ex.stop.is_set():
            return True
        if now < self.next_look:
            return False
        self.next_look = now + LOOK_EVERY
        if self.store.cancel_requested(self.run.id) or (resumable and self.make_way()):
            self.next_look = now  # `between` acts on it at once
            return True
        if now - self.last_beat >= self.beat_every:
            self.beat()
        return False

    def make_way(self) -> bool:
        """Whether this run's time slice is over and another run is waiting for an executor."""
        return (self.share and time.thread_time() - self.cpu_start >= TIME_SLICE
                and self.store.others_runnable(self.run.id))

    def beat(self) -> None:
        # Fenced by its epoch. The steps performed here are held by the run's lease alone.
        self.store.heartbeat(self.run, self.ex.worker, self.ex.lease)
        self.last_beat = time.monotonic()

    def checkpoint(self, machine: Machine) -> None:
        """Commit what is done so far with a snapshot of where the run is, and renew the
        lease: a crash after this resumes here, not before the events just committed."""
        if self.store.cancel_requested(self.run.id):
            raise _Cancel()
        started = time.monotonic()
        state, parts = self.state(machine, None)
        self.commit(snapshot=state, parts=parts)
        self.beat()
        self.next_checkpoint = self.last_beat + max(CHECKPOINT_EVERY, 10 * (self.last_beat - started))

    def release(self, machine: Machine) -> Progress:
        """Checkpoint and put the run back in the queue, behind the runs runnable now."""
        state, parts = self.state(machine, None)
        self.commit(snapshot=state, parts=parts, status="pending", wake_at=self.store.clock(), release=True)
        return Progress(self.run.id, "pending")

    def state(self, machine: Machine, waiting: dict | None) -> tuple[str, dict]:
        """The run's snapshot as the JSON text to store, and the parts of a run with tasks to
        write with it (`Machine.snapshot_parts`, `Waits`), refused (a `Fault`: the run fails)
        when they cannot be stored: `MAX_SNAPSHOT` bounds what one commit writes."""
        def snapshot() -> tuple[str, dict, int]:
            head, parts = machine.snapshot_parts() if machine.next_task > 1 else (machine.snapshot(), {})
            parts.update(self.waits.take_parts())
            state = {"machine": head, "waiting": waiting, "timeouts": self.timeouts, **self.waits.head_state()}
            text = json.dumps(state, separators=(",", ":"))
            return text, parts, len(text) + sum(len(t) for t in parts.values() if t is not None)
        try:
            state, parts, size = deep.call(snapshot)
        except (ValueError, RecursionError, OverflowError) as error:
            raise Fault(f"the run's state cannot be stored: {error}") from None
        if size > MAX_SNAPSHOT:
            raise Fault(f"the run's state is too large to store: {_size(size)}, more than the limit of "
                        f"{_size(MAX_SNAPSHOT)}")
        return state, parts

    def endpoint(self, machine: Machine, wait: Wait):
        """Answer or record one endpoint call. Returns the next outcome to handle (None: run
        the machine on), or a Progress when the run now waits."""
        site = call_site(self.program, machine.stack, wait.expr_id)
        step, name, line = wait.step, wait.name, self.line(site)
        args_text = {k: _literal(v) for k, v in wait.args.items()}
        self.event("step-requested", step=step, line=line, endpoint=name, args=args_text,
                   key=f"{self.run.id}:{step}", span=self.span(site))
        if wait.package == "flowmetal.task":
            return self.tasks(machine, wait)
        if wait.package == children.PACKAGE:
            return children.endpoint(self, machine, wait)
        if name == "flowmetal.time/now!":
            value = int(time.time() * 1000)
            self.event("step-completed", step=step, result=literal(value))
            machine.resume(value)
            return None
        if name == JITTER:
            value = jitter(self.run.id, step, wait.args.get("n"))
            self.event("step-completed", step=step, result=literal(value))
            machine.resume(value)
            return None
        if name == "flowmetal.log/log!":
            self.event("log", step=step, line=line, message=wait.args.get("message"))
            self.event("step-completed", step=step, result="nil")
            machine.resume(None)
            return None
        if name == "http.callback/make-callback!":
            token = secrets.token_urlsafe(24)
            value = RecordValue("http.callback", "callback", ("url",), (f"{self.ex.public_url}/callback/{token}",))
            self.extra["callbacks"].append((token, step))
            self.event("step-completed", step=step, result=literal(value))
            machine.resume(value)
            return None
        if name == "flowmetal.time/with-timeout!":
            due = self.store.clock() + duration_ms(wait.args["d"]) / 1000
            self.timeouts.append([step, due, machine.task])
            self.extra["timers"].append((step, due))
            self.event("timer-set", step=step, line=line, due=due, timeout=True)
            return machine.enter_timeout(step, wait.args["f"])
        if name == "flowmetal.time/sleep!":
            due = self.store.clock() + duration_ms(wait.args["d"]) / 1000
            self.extra["timers"].append((step, due))
            self.event("timer-set", step=step, line=line, due=due)
            return self.park(machine, {"step": step, "kind": "timer", "due": due})
        if name == "http.callback/get-callback!":
            cb = wait.args["cb"]
            token = cb.values[0].rsplit("/", 1)[-1] if isinstance(cb, RecordValue) else str(cb)
            row = self.store.callback(token)
            if row is not None and row["delivered"] is not None:
                self.event("step-completed", step=step, result=literal(row["body"]))
                machine.resume(row["body"])
                return None
            self.extra["steps"].append((step, name, json.dumps({"token": token}), f"{self.run.id}:{step}"))
            return self.park(machine, {"step": step, "kind": "step"})
        if name == signals.RECEIVE:
            return signals.receive(self, machine, step, wait.args.get("name"))
        # An endpoint implemented outside the interpreter: a connector will answer.
        try:
            args_json = deep.call(lambda: json.dumps({k: encode(v) for k, v in wait.args.items()}))
        except (TypeError, ValueError) as error:  # a function value: it has no form outside the run
            raise Fault(f"the arguments of `{name}` cannot be sent to it: {error}") from None
        inline = self.ex.inline
        if (inline is not None and name in inline.endpoints and machine.next_task <= 1 and not self.timeouts
                and not (self.ex.stop is not None and self.ex.stop.is_set())):
            return self.perform(machine, step, name, args_json)
        self.extra["steps"].append((step, name, args_json, f"{self.run.id}:{step}"))
        return self.park(machine, {"step": step, "kind": "step"})

    def perform(self, machine: Machine, step: int, name: str, args_json: str):
        """A step of an endpoint hosted here, performed in this process (the module's docstring):
        None to run on with its result, a Progress when its function outlived a stop (given back,
        the run waits), `_SCHEDULE` when the store knew the step already (the run waits for it)."""
        key = f"{self.run.id}:{step}"
        # What a resume needs to ask a connector for the step, should this process not commit
        # its result (`resume_inline`).
        waiting = {"step": step, "kind": "step", "inline": [name, args_json, key]}
        self.waits.put(machine.task, waiting, parted=False)
        state, parts = self.state(machine, waiting)
        if step not in self.commit(snapshot=state, parts=parts, inline_steps=[(step, name, args_json, key)]):
            return _SCHEDULE
        args = deep.call(lambda: {k: decode(v) for k, v in json.loads(args_json).items()})
        outcome = self.await_function(name, self.ex.inline.start(self.run.id, step, name, key, args, self.program))
        if outcome is None:  # given up while stopping: a connector performs it, the run waits
            self.extra["steps"].append((step, name, args_json, key))
            self.commit(status="waiting", release=True)
            return Progress(self.run.id, "waiting")
        done, text = outcome
        self.waits.pop(machine.task)
        self.given.add(step)
        self.extra["inline_results"].append((step, name, args_json, key,
                                             "completed" if done == "complete" else "failed", text))
        if done != "complete":
            raise Fault(text)  # as a connector's failure: the message names the endpoint
        value = deep.call(lambda: decode(json.loads(text)))
        self.event("step-completed", step=step, result=_literal(value), waited=True)
        machine.resume(value)
        return None

    def await_function(self, name: str, future) -> tuple[str, str] | None:
        """The outcome of a function running for a step here, keeping the run's lease (`beat`)
        while it runs; None when the executor was told to stop and it did not
        return within `inline.grace` seconds: its step is left to a connector (`perform`
        records it pending; what the function returns is dropped)."""
        deadline = None
        while True:
            now = time.monotonic()
            wait = self.last_beat + self.beat_every - now
            if self.ex.stop is not None:
                if deadline is None and self.ex.stop.is_set():
                    deadline = now + self.ex.inline.grace
                wait = min(wait, 0.05 if deadline is None else deadline - now)
            try:
                outcome = future.result(timeout=max(0.0, wait))
            except FutureTimeout:
                pass
            except Exception as error:  # noqa: BLE001 - a fault of the performing itself still ends the step
                return "fail", f"`{name}` could not be performed: {type(error).__name__}: {error}"
            else:
                return outcome
            if deadline is not None and time.monotonic() >= deadline:
                future.cancel()
                return None
            if time.monotonic() - self.last_beat >= self.beat_every:
                self.beat()

    def tasks(self, machine: Machine, wait: Wait):
        """`flowmetal.task`'s endpoints, answered here: None to run on, or `_SCHEDULE` when
        the task now awaits others."""
        step, name = wait.step, wait.endpoint
        if name == "spawn!":
            ref = machine.spawn(wait.args["f"])
            self.event("task-spawned", step=step, spawned=ref.task)
            self.event("step-completed", step=step, result=literal(ref))
            machine.resume(ref)
            return None
        if name == "cancel!":
            self.cancel_task(machine, machine.task_to_cancel(wait.args["t"]))
            self.event("step-completed", step=step, result="nil")
            machine.resume(None)
            return None
        answer = machine.await_call(name, wait.args)
        if answer is None:
            return self.park(machine, {"step": step, "kind": "tasks"})
        if answer[0] == "fault":
            raise Fault(answer[1])
        self.event("step-completed", step=step, result=_literal(answer[1]))
        machine.resume(answer[1])
        return None

    def park(self, machine: Machine, wait: dict):
        """The current task waits for `wait`: on with another task, or the run waits."""
        self.waits.put(machine.task, wait, parted=machine.next_task > 1)
        return _SCHEDULE

    def suspend(self, machine: Machine) -> Progress:
        """Every task is parked and nothing they wait for has come: the run waits (until its
        earliest timer, which the store finds). What came while it ran, after the last look,
        wakes it at once: the commit looks (`SQLiteStore.commit`)."""
        # `waiting`: the current task's wait (what inspecting the run shows).
        waiting = self.waits.get(machine.task)
        state, parts = self.state(machine, waiting or {"kind": "none", "step": None})
        held = self.holdable()
        if held:
            # Committed as durably as a wait, but the run stays ours for a moment (`HOLD`).
            self.commit(snapshot=state, parts=parts)
            if self.answered(held):
                return _WAKE  # given at once, in memory (`wake`)
            if self.store.cancel_requested(self.run.id):  # asked for while it was held: a waiting run
                raise _Cancel()                           # would not look again
            self.commit(status="waiting", release=True, awaited_children=children.awaited(self.waits.head))
            return Progress(self.run.id, "waiting")
        self.commit(snapshot=state, parts=parts, status="waiting", release=True,
                    awaited_children=children.awaited(self.waits.head))
        # A step that was answered while we committed (a callback delivered, a connector
        # quick to answer) woke the run already: `complete_step` sets its wake time.
        return Progress(self.run.id, "waiting")

    def holdable(self) -> list[str]:
        """The endpoints of the connectors' steps this commit requests, if holding the run for
        their answer is worth it (none: let it go): not when stopping or not holding, nor for
        an endpoint whose last hold passed unanswered."""
        if self.ex.hold <= 0 or (self.ex.stop is not None and self.ex.stop.is_set()):
            return []
        now = time.monotonic()
        names = [name for _, name, _, _ in self.extra["steps"] if name not in (CALLBACK_WAIT, SIGNAL_WAIT)]
        if not names or any(self.ex.slow.get(name, 0.0) > now for name in names):
            return []
        return names

    def answered(self, endpoints: list[str]) -> bool:
        """Whether a step of the run finished within `HOLD` seconds (looked for every 0.5 to 4 ms)."""
        deadline = time.monotonic() + self.ex.hold
        pause = 0.0005
        while True:
            if any(row["step"] not in self.given for row in self.store.finished_steps(self.run.id, None)):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or (self.ex.stop is not None and self.ex.stop.is_set()):
                break
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.004)
        for name in endpoints:  # not quick: no more holds for it for a while
            self.ex.slow[name] = time.monotonic() + HOLD_AGAIN
        return False

    def end_waits(self) -> None:
        """The run ends: what its tasks wait for outside is cancelled."""
        machine = getattr(self, "machine", None)
        if machine is not None and machine.next_task > 1:
            self.cancel_tasks(machine)
        if machine is not None:
            self.waits.preload([machine.task])
        for wait in self.waits.known_waits():
            if wait["kind"] in ("step", "timer", "signal"):
                self.extra["cancelled_steps"].append(wait["step"])
        self.waits = Waits()

    def fail(self, fault: Fault) -> Progress:
        machine = getattr(self, "machine", None)
        if not fault.trace and machine is not None:  # a fault of the driver's (an endpoint's arguments)
            fault.set_trace(machine.trace())
        trace = [{"package": p, "function": f, "line": line} for p, f, line in fault.trace]
        where = machine.where() if machine is not None else None
        span = self.span(self.program.ids.get(id(where))) if where is not None else None
        self.event("run-failed", line=self.line(self.program.ids.get(id(where))) if where is not None else None,
                   error=fault.message, trace=trace, **({"span": span} if span else {}),
                   **({"trace_omitted": fault.omitted} if fault.omitted else {}))
        self.end_waits()
        self.commit(status="failed", error=fault.render(), release=True)
        return Progress(self.run.id, "failed")

    def cancel(self) -> Progress:
        self.end_waits()
        self.event("run-cancelled")
        self.commit(status="cancelled", release=True)
        return Progress(self.run.id, "cancelled")


class Waits:
    """What each parked task waits for outside the machine: {"step", "kind": "step" (a
    connector's, a callback), "timer" (with "due"), "signal" (with "name"), "child" (a child
    run's end, with "child", its id), or "tasks" (other tasks: the machine knows which)}.

    In a run with tasks, a wait for a step or a timer is a part of the run's state of its own
    ("w<task>", and "s<step>" naming the task, found when the store says the step finished or
    the timer fell due), read and written only when it is touched. The others, looked at on
    every wake (a queued signal, a child's end) or by the scheduler, are kept in the head
    (`head`), as every wait was before states were stored in parts (and still is in a run
    without tasks, or one restored from such a state)."""

    KEPT_IN_HEAD = ("tasks", "signal", "child")

    def __init__(self, load=None, head: dict | None = None, parted: int = 0) -> None:
        self.load = load              # keys -> {key: text}: the run's stored parts
        self.head: dict[int, dict] = head or {}
        self.parted = parted          # waits stored in parts
        self.known: dict[int, dict | None] = {}  # waits in parts read or made here (None: none)
        self.changed: dict[str, str | None] = {}  # parts to write (None: delete)

    def put(self, tid: int, wait: dict, parted: bool) -> None:
        if not parted or wait["kind"] in self.KEPT_IN_HEAD:
            self.head[tid] = wait
            return
        self.known[tid] = wait
        self.parted += 1
        self.changed[f"w{tid}"] = json.dumps(wait, separators=(",", ":"))
        self.changed[f"s{wait['step']}"] = str(tid)

    def get(self, tid: int) -> dict | None:
        if tid in self.head:
            return self.head[tid]
        if tid not in self.known:
            self.preload([tid])
        return self.known.get(tid)

    def pop(self, tid: int) -> dict | None:
        if tid in self.head:
            return self.head.pop(tid)
        wait = self.get(tid)
        if wait is not None:
            self.known[tid] = None
            self.parted -= 1
            self.changed[f"w{tid}"] = self.changed[f"s{wait['step']}"] = None
        return wait

    def preload(self, tids) -> None:
        """Read the waits of `tids` not known yet, in one go."""
        todo = [t for t in tids if t not in self.head and t not in self.known]
        texts = self.load([f"w{t}" for t in todo]) if todo and self.parted and self.load else {}
        for t in todo:
            text = texts.get(f"w{t}")
            self.known[t] = json.loads(text) if text is not None else None

    def tasks_of(self, steps: list[int]) -> dict[int, int]:
        """The tasks waiting for `steps` (a step or a timer), of those any task waits for."""
        if not steps:
            return {}
        out = {w["step"]: t for t, w in self.head.items() if w["kind"] in ("step", "timer")}
        out.update((w["step"], t) for t, w in self.known.items() if w is not None)
        todo = [s for s in steps if s not in out and f"s{s}" not in self.changed]
        if todo and self.parted and self.load:
            for key, text in self.load([f"s{s}" for s in todo]).items():
                out[int(key[1:])] = int(text)
        return out

    def outside(self) -> bool:
        """Whether any task waits for something outside the run."""
        return self.parted > 0 or any(w["kind"] != "tasks" for w in self.head.values())

    def known_waits(self) -> list[dict]:
        return [*self.head.values(), *(w for w in self.known.values() if w is not None)]

    def head_state(self) -> dict:
        return {"waits": {str(t): w for t, w in self.head.items()}, "parted": self.parted}

    def take_parts(self) -> dict[str, str | None]:
        changed, self.changed = self.changed, {}
        return changed


class _Cancel(Exception):
    pass


class _RunFault(Fault):
    """A fault of the whole run, whichever task meets it."""


_WAKE = object()      # `drive`: every task is parked; wake one if something came
_SCHEDULE = object()  # `drive`: the current task parked or ended; run the next
