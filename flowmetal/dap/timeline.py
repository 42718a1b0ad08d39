"""A run replayed one evaluation step at a time, that can be walked in either direction.

The same replay as `flowmetal replay` and the editor's state at an event
(`runtime.replay.Walk`, answering each endpoint call from the log), with one
difference: its machine (`DebugMachine`) takes every call on the machine itself,
the fast path off (`fast.py` compiles pure functions into closures, which have no
steps to stop at), and runs one transition at a time, asking its walker before
each whether to stop there. Evaluation between steps is deterministic, so a
*position*, the number of transitions made since the run started, names one
moment of the run in any replay of it.

Points: the moments a debugger can stop at, each at its own position: `eval`
(an expression about to be evaluated), `wait` (the machine stopped at an endpoint
call, before its answer), `fault` (a fault raised, before the run or its task meets
it) and `end` (the walk's end: the run's value, its fault, or the end of its log).

Walking back: a walk runs only forward, so a position behind is reached by a new
walk from the nearest *checkpoint* before it (`Walk.checkpoint()`, the machine's
snapshot, taken at the first transition of every `every` as walks go by), run
forward to it: each step back costs at most `every` transitions. A walk that
meets the end of a live run's log waits for the log to grow, and walks again
from its latest checkpoint.

Threads: a walk is a generator driving a machine; to stop it in the middle of
an evaluation without a second interpreter, each walk runs on a thread of its
own (`_Walker`) that blocks at a point until told to go on or to give up. The
caller's thread reads the machine only while that thread is blocked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flowmetal.lang import deep
from flowmetal.runtime.machine import SLICE, Fault, Machine, Wait
from flowmetal.runtime.replay import Walk

EVAL, WAIT, FAULT, END = "eval", "wait", "fault", "end"
CHECKPOINT_EVERY = 2000   # transitions between checkpoints: the cost bound of a step back
FINAL = ("completed", "failed", "cancelled")
LOG_POLL = 0.05           # seconds between looks at a live run's log


@dataclass
class Point:
    kind: str             # EVAL, WAIT, FAULT or END
    position: int
    task: int = 0
    depth: int = 0
    expr: object = None   # EVAL: the expression about to be evaluated
    wait: Wait | None = None
    fault: Fault | None = None
    value: str | None = None       # END: the run's value, when it completed
    error: str | None = None       # END: the run's fault, rendered
    divergence: str | None = None  # END: the log and the program disagree


class Abandoned(BaseException):
    """A walk nobody wants any more: unwinds its thread (a BaseException: the machine turns
    every Exception into a fault of the run)."""


class DebugMachine(Machine):
    """The machine, one transition at a time, its walker asked before each (see the module)."""

    walker: "_Walker"

    def __init__(self, program) -> None:
        super().__init__(program)
        self._deep = True   # the slow path for every call: each of its steps can be stopped at

    def run(self, budget: int | None = None, pause=None):
        walker = self.walker
        one = super().run
        left = budget
        while True:
            walker.tick(self)
            try:
                outcome = one(1, pause)
            except Fault as fault:
                walker.ticks += 1
                walker.faulted(self, fault)
                raise
            walker.ticks += 1
            if outcome is not SLICE:
                return outcome
            if left is not None:
                left -= 1
                if left <= 0:
                    return SLICE


class _DebugWalk(Walk):
    def __init__(self, walker: "_Walker", *args, **kwargs) -> None:
        self.walker = walker
        super().__init__(*args, **kwargs)

    def new_machine(self, data: dict | None = None) -> Machine:
        machine = (DebugMachine(self.program) if data is None
                   else deep.call(DebugMachine.restore, self.program, data))
        machine.walker = self.walker
        return machine


class _Walker:
    """One walk on a thread of its own, stopping at the first point its `want` accepts.

    `want(kind, position, machine, thing)`: thing is the expression (EVAL), the `Wait`
    (WAIT) or the `Fault` (FAULT). The END point stops it whatever `want` says."""

    def __init__(self, timeline: "Timeline", checkpoint: tuple[int, dict] | None) -> None:
        self.timeline = timeline
        self.ticks = checkpoint[0] if checkpoint else 0
        self.walk = _DebugWalk(self, timeline.program, timeline.run, timeline.events,
                               start_from=checkpoint[1] if checkpoint else None)
        every = timeline.every
        self.next_slot = (self.ticks // every + 1) * every if checkpoint else 0
        self.want = None
        self.point: Point | None = None
        self.error: BaseException | None = None
        self.finished = False
        self._abandon = False
        self._go = threading.Semaphore(0)
        self._stopped = threading.Semaphore(0)
        self._thread: threading.Thread | None = None

    @property
    def machine(self) -> Machine:
        return self.walk.machine

    # -- the caller's side --

    def advance(self, want) -> Point:
        if self.finished:
            return self.point
        self.want = want
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="flowmetal-dap-walk", daemon=True)
            self._thread.start()
        else:
            self._go.release()
        self._stopped.acquire()
        if self.error is not None:
            raise self.error
        return self.point

    def abandon(self) -> None:
        self._abandon = True
        if self._thread is not None and not self.finished:
            self._go.release()

    # -- the walk's thread --

    def _stop(self, point: Point) -> None:
        self.point = point
        self._stopped.release()
        self._go.acquire()
        if self._abandon:
            raise Abandoned()

    def tick(self, machine: Machine) -> None:
        """Before each transition: a checkpoint at the first of each slot, and a stop if wanted."""
        t = self.ticks
        if t >= self.next_slot:
            every = self.timeline.every
            self.timeline.keep(t, self.walk)
            self.next_slot = (t // every + 1) * every
        if machine.mode_eval:
            expr = machine.expr
            if self.want(EVAL, t, machine, expr):
                self._stop(Point(EVAL, t, machine.task, machine.depth, expr=expr))

    def faulted(self, machine: Machine, fault: Fault) -> None:
        t = self.ticks
        if self.want(FAULT, t, machine, fault):
            self._stop(Point(FAULT, t, machine.task, machine.depth, fault=fault))
        self.ticks = t + 1

    def _main(self) -> None:
        walk = self.walk
        try:
            for wait in walk:
                t = self.ticks
                machine = walk.machine
                self.timeline.passing(t, wait)
                if self.want(WAIT, t, machine, wait):
                    self._stop(Point(WAIT, t, machine.task, machine.depth, wait=wait))
                self.ticks = t + 1
            end = Point(END, self.ticks, walk.machine.task, 0, value=walk.value, error=walk.fault,
                        divergence=walk.divergence)
        except Abandoned:
            return
        except BaseException as error:  # a bug here: the caller raises it, the walk is over
            self.error = error
            end = None
        self.finished = True
        self.point = end
        self._stopped.release()


class Timeline:
    """A run's evaluation, one position at a time: `forward`, `backward`, `goto`.

    `reload()`, when given, reads the run and its log again: a run not finished is followed
    live. `passing(position, wait)` is called (from the walk's thread) at each endpoint call a
    walk goes past; `interrupted()` is asked while waiting for a live run's log to grow."""

    def __init__(self, program, run, events, reload=None, every: int = CHECKPOINT_EVERY) -> None:
        self.program, self.run, self.events = program, run, list(events)
        self.reload = reload
        self.every = every
        self.slots: dict[int, tuple[int, dict]] = {}   # position // every -> (position, checkpoint)
        self.walker: _Walker | None = None
        self.point: Point | None = None
        self.on_wait = None
        self.interrupted = lambda: False

    @property
    def machine(self) -> Machine | None:
        return self.walker.machine if self.walker is not None else None

    @property
    def walk(self) -> Walk | None:
        return self.walker.walk if self.walker is not None else None

    def keep(self, position: int, walk: Walk) -> None:
        slot = position // self.every
        if slot not in self.slots:
            self.slots[slot] = (position, walk.checkpoint())

    def passing(self, position: int, wait: Wait) -> None:
        if self.on_wait is not None:
            self.on_wait(position, wait)

    def close(self) -> None:
        if self.walker is not None:
            self.walker.abandon()
            self.walker = None

    # -- moving --

    def _new_walker(self, before: int | None) -> _Walker:
        """A walk from the latest checkpoint at or before `before` (None: from the start)."""
        checkpoint = None
        if before is not None:
            slot = before // self.every
            while slot >= 0:
                found = self.slots.get(slot)
                if found is not None and found[0] <= before:
                    checkpoint = found
                    break
                slot -= 1
        if self.walker is not None:
            self.walker.abandon()
        self.walker = _Walker(self, checkpoint)
        return self.walker

    def forward(self, want) -> Point:
        """The first point after the current one that `want` accepts, or the end."""
        start = self.point.position if self.point is not None else -1
        if self.point is not None and self.point.kind == END and not self._live():
            return self.point

        def after(kind, position, machine, thing):
            return position > start and want(kind, position, machine, thing)
        return self._advance(after)

    def goto(self, position: int) -> Point:
        """The point at `position` (or the end, if the walk ends first)."""
        if self.walker is None or self.point is None or position <= self.point.position:
            self._new_walker(position)
        return self._advance(lambda kind, at, machine, thing: at >= position)

    def backward(self, want) -> Point | None:
        """The latest point before the current one that `want` accepts, gone to; None when there is none."""
        if self.point is None:
            return None
        high = self.point.position
        while high > 0:
            walker = self._new_walker(high - 1)
            low = walker.ticks
            found: list[int] = []

            def scan(kind, position, machine, thing, high=high):
                if position >= high:
                    return True
                if want(kind, position, machine, thing):
                    found.append(position)
                return False
            walker.advance(scan)
            if found:
                return self.goto(found[-1])
            if low == 0:
                break
            high = low
        return None

    def _live(self) -> bool:
        return self.reload is not None and self.run.status not in FINAL

    def _advance(self, want) -> Point:
        if self.walker is None:
            self._new_walker(None)
        while True:
            point = self.walker.advance(want)
            self.point = point
            if point.kind != END or point.value is not None or point.error is not None or point.divergence:
                return point
            if not self._live() or not self._await_log():
                return point
            self._new_walker(point.position)

    def _await_log(self) -> bool:
        """Wait for a live run's log to grow: True when it did, False when the run ended
        without more, or the wait was interrupted."""
        while not self.interrupted():
            run, events = self.reload()
            grown = len(events) > len(self.events)
            self.run = run
            if grown:
                self.events = list(events)
                return True
            if run.status in FINAL:
                return False
            time.sleep(LOG_POLL)
        return False
