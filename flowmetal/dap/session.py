"""A debugging session over one run: what `flowmetal dap` does, in plain data.

It knows nothing of DAP's JSON: the adapter (`flowmetal.dap.adapter`) turns its
answers into messages. Each motion (`resume`, `next`, `step_in`, `step_out`,
`step_back`, `reverse_continue`) moves the run's `Timeline` and returns a `Stop`;
frames, scopes and variables describe the point it stopped at, with the same
state code as the editor's state at an event (`runtime.inspect`).

Where a debugger can stop: an expression about to be evaluated that no expression
starting on the same line encloses (one stop per line reached: `(log! (str a b))`
stops once, before the call), an endpoint call (function breakpoints), a fault,
and the end of the run. Positions and moves:

- `next`: the next such expression on another line, in the same frame or an outer
  one (the same task); `step_in`: the next on another line, or in a call entered;
  `step_out`: the first expression the frame's caller evaluates after it returned;
  `resume`: the next breakpoint, function breakpoint, fault (with the "faults"
  filter) or the end. `step_back` and `reverse_continue` are their mirror images;
  `reverse_continue` with no breakpoint behind goes back to the run's start.
- Breakpoints and steps stop at the run's stored sources. A breakpoint set in a
  file is mapped to the stored file whose text that file still holds, or set in
  the stored copy itself (`<store dir>/sources/<hash>/<name>`, what frames show
  when the file on disk changed since the run started); on a line where nothing
  can stop, it moves to the nearest line that can.
- Conditions and `evaluate`: a Flowmetal expression over the frame's bindings,
  checked as a function of the package the frame is in and run on a machine of its
  own; an endpoint call is refused (the machine stops before it, so nothing runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from flowmetal.dap.timeline import END, EVAL, FAULT, FINAL, WAIT, Point, Timeline
from flowmetal.lang import filenames
from flowmetal.lang.source import Span
from flowmetal.runtime import inspect
from flowmetal.runtime.machine import Done, Machine, Slice, Wait
from flowmetal.runtime.faults import Fault
from flowmetal.runtime.program import ProgramError, code_hash, load, number
from flowmetal.runtime.values import Env, List, Map, MapKey, RecordValue, literal, type_name

EVAL_BUDGET = 1_000_000     # transitions an evaluation may take
EVAL_NAME = "__debugger_evaluate__"
SHOWN = 2000                # characters of a value shown at most


class SessionError(Exception):
    """A request that cannot be carried out: a message naming the problem."""


@dataclass
class Stop:
    reason: str                      # entry, step, breakpoint, function breakpoint, exception, pause, end
    task: int = 0
    description: str = ""
    text: str = ""                   # for an exception: the fault
    breakpoints: list[int] = field(default_factory=list)
    ended: bool = False              # moving forward from the run's end: the session is over


@dataclass
class Breakpoint:
    id: int
    verified: bool
    line: int | None = None
    message: str | None = None
    condition: str | None = None
    path: str | None = None


@dataclass
class StackFrame:
    id: int
    name: str
    path: str | None
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass
class Variable:
    name: str
    value: str
    type: str
    reference: int = 0        # > 0: expandable, its children by `variables(reference)`
    count: int = 0


class EvaluationError(Exception):
    pass


def _shown(value) -> str:
    text = literal(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def _key_literal(key) -> str:
    return literal(key.value if isinstance(key, MapKey) else key)


class Session:
    def __init__(self, output=None) -> None:
        """`output(text)`: a line for the Debug Console (the run's events as they are passed)."""
        self.output = output or (lambda text: None)
        self.store = None
        self.location: str | None = None
        self.run = None
        self.program = None
        self.stored: dict[str, str] = {}  # the run's stored files, the standard packages kept with it included
        self.timeline: Timeline | None = None
        self.worker = None
        self.origin: str | None = None
        self.stop_on_entry = False
        self.pausing = False
        self._next_id = 1
        self.line_breakpoints: dict[str, list[Breakpoint]] = {}  # stored file -> its breakpoints
        self._at_expr: dict[int, Breakpoint] = {}                 # id(expr) -> its breakpoint
        self.function_breakpoints: dict[str, Breakpoint] = {}     # endpoint name (full or short)
        self.faults = False
        self._frames: dict[int, tuple] = {}
        self._refs: dict[int, tuple] = {}
        self._emitted = -1
        self._by_step: tuple = (None, {})
        self._evaluators: dict[tuple, object] = {}
        self._copies: dict[str, Path | None] = {}

    # -- launching -------------------------------------------------------------------------------

    def _open(self, store: str | None) -> None:
        from flowmetal.runtime.store import StoreError, open_store
        location = store or os.environ.get("FLOWMETAL_STORE") or os.path.join(".flowmetal", "store.db")
        self.location = location
        try:
            self.store = open_store(location)
        except (StoreError, OSError, ValueError) as error:
            raise SessionError(f"cannot open the store {location}: {error}") from None

    def launch_run(self, run_id, store: str | None = None) -> None:
        """Open a recorded run, of any status, for replay (one not finished is followed live)."""
        from flowmetal.runtime.store import StoreError
        if not isinstance(run_id, str) or not run_id:
            raise SessionError("`run` must be a run's id (a string)")
        if store is not None and "://" not in store and not Path(store).is_file():
            raise SessionError(f"no store at {store}")
        self._open(store)
        try:
            run = self.store.find_run(run_id)
        except StoreError as error:
            raise SessionError(str(error)) from None
        self._load(run)

    def launch_program(self, program: str, entry: str, args: list, store: str | None = None) -> None:
        """Start a new run of `entry` in the program `program` on the store, driven by a worker
        of this process (as `flowmetal run --detach` and a worker would), and follow it."""
        from flowmetal.ide.workbench import EmbeddedWorker
        from flowmetal.runtime.driving import prepare, program_files, record_run
        from flowmetal.runtime.literals import LiteralError
        if not isinstance(program, str) or not program:
            raise SessionError("`program` must be the path of a .flow file")
        if not isinstance(entry, str) or not entry:
            raise SessionError("`entry` must name the function to run (`name` or `package/name`)")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise SessionError("`args` must be a list of Flowmetal literals, each a string (e.g. \"42\", "
                               "\"\\\"text\\\"\")")
        try:
            sources = program_files(program)
            code, _, qualified = prepare(sources, entry, args, first=Path(program).name)
        except ProgramError as error:
            where = "; ".join(f"{d.span.source.name}:{d.span.line}:{d.span.column}: {d.message}"
                              for d in error.diagnostics[:3]) or str(error)
            raise SessionError(f"the program has errors: nothing was run ({where})") from None
        except (LiteralError, KeyError, ValueError, OSError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            raise SessionError(f"{message}: nothing was run") from None
        self._open(store)
        run_id = record_run(self.store, sources, qualified, list(args), code,
                            origin=str(Path(program).resolve().parent))
        self.worker = EmbeddedWorker(self.store.path, runs=lambda: frozenset({run_id}))
        self.worker.start()
        self._load(self.store.find_run(run_id))

    def _load(self, run) -> None:
        try:
            self.stored = self.store.get_sources(run.program)
            self.program = load(self.stored)
        except ProgramError as error:
            raise SessionError(f"run `{run.id}`: its stored program does not check here: {error}") from None
        self.run = run
        first = self.store.events(run.id, 0, until=1)
        origin = first[0].data.get("origin") if first else None
        self.origin = origin if isinstance(origin, str) and os.path.isabs(origin) else None
        self._stops = self._stop_points()
        reload = None
        if run.status not in FINAL:
            def reload():
                return self.store.find_run(run.id), self.store.events(run.id)
        self.timeline = Timeline(self.program, run, self.store.events(run.id), reload)
        self.timeline.on_wait = self._passing
        self.timeline.interrupted = lambda: self.pausing

    def close(self) -> None:
        if self.timeline is not None:
            self.timeline.close()
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def _require(self) -> Timeline:
        if self.timeline is None:
            raise SessionError("no run is open: send `launch` first")
        return self.timeline

    # -- where a run can stop -------------------------------------------------------------------

    def _stop_points(self) -> dict[int, object]:
        """id(expr) -> expr for the expressions that start a line: no expression starting on
        the same line encloses them (see the module)."""
        by_line: dict[tuple[str, int], list] = {}
        for expr in self.program.exprs:
            span = expr.node.span
            if span.source.name in self.program.sources:
                by_line.setdefault((span.source.name, span.line), []).append(expr)
        stops: dict[int, object] = {}
        self._lines: dict[str, dict[int, list]] = {}
        for (name, line), exprs in by_line.items():
            exprs.sort(key=lambda e: (e.node.span.start, -e.node.span.end))
            reach = -1
            for expr in exprs:
                span = expr.node.span
                if span.start >= reach:
                    stops[id(expr)] = expr
                    self._lines.setdefault(name, {}).setdefault(line, []).append(expr)
                    reach = span.end
        return stops

    def _span(self, expr) -> Span | None:
        return inspect._stored(self.program, expr.node.span) if expr is not None else None

    # -- sources: stored files and the paths a client sees ---------------------------------------

    def path_of(self, name: str) -> str | None:
        """Where the stored file `name` is for the client: the file it was read from while its text
        is the stored one, else a read-only copy of the stored text beside the store."""
        text = self.program.sources.get(name)
        if text is None:
            return None
        if self.origin is not None:
            candidate = filenames.inside(self.origin, name)
            try:
                if candidate is not None and candidate.read_text(encoding="utf-8") == text:
                    return str(candidate)
            except (OSError, UnicodeDecodeError):
                pass
        if name not in self._copies:
            folder = Path(self.location).resolve().parent
            digest = code_hash(self.program.sources)[:16]
            try:
                self._copies[name] = filenames.write_new(folder, f"sources/{digest}/{name}", text)
            except (filenames.FileNameError, OSError):
                self._copies[name] = None
        copy = self._copies[name]
        return str(copy) if copy is not None else None

    def stored_name(self, path: str) -> tuple[str | None, str | None]:
        """The stored file a client's path stands for, or None and why not."""
        try:
            real = Path(path).resolve()
        except (OSError, ValueError):
            return None, f"cannot read {path}"
        for name in self.program.sources:
            shown = self.path_of(name)
            if shown is not None and Path(shown).resolve() == real:
                return name, None
        for name in self.program.sources:
            if real.name == Path(name).name:
                return None, (f"{path} differs from the copy of `{name}` the run was started with: set "
                              f"breakpoints in {self.path_of(name)}")
        return None, f"{path} is no file of run `{self.run.id}`'s program"

    # -- breakpoints --------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def set_breakpoints(self, path: str, wanted: list[tuple[int, str | None]]) -> list[Breakpoint]:
        """Replace the breakpoints of a file: each (line, condition) verified and moved to the
        nearest line that can stop."""
        self._require()
        name, problem = self.stored_name(path)
        out = []
        lines = self._lines.get(name, {}) if name is not None else {}
        for line, condition in wanted:
            if name is None:
                out.append(Breakpoint(self._new_id(), False, line, problem, condition, path))
                continue
            if not lines:
                out.append(Breakpoint(self._new_id(), False, line, f"nothing in {path} runs", condition, path))
                continue
            best = min(lines, key=lambda n: (abs(n - line), n < line))
            message = None if best == line else f"moved from line {line}: nothing can stop there"
            out.append(Breakpoint(self._new_id(), True, best, message, condition or None, path))
        if name is not None:
            self.line_breakpoints[name] = [b for b in out if b.verified]
        self._at_expr = {id(e): b for n, bps in self.line_breakpoints.items() for b in bps
                         for e in self._lines.get(n, {}).get(b.line, [])}
        return out

    def set_function_breakpoints(self, names: list[str]) -> list[Breakpoint]:
        self._require()
        endpoints = {f"{p}/{n}": n for (p, n), d in self.program.functions.items() if d.form == "defendpoint"}
        out, chosen = [], {}
        for name in names:
            known = name in endpoints or name in endpoints.values()
            bp = Breakpoint(self._new_id(), known, None,
                            None if known else f"`{name}` is no endpoint of this program (e.g. `post!`, "
                                               f"`http.request/post!`)")
            out.append(bp)
            if known:
                chosen[name] = bp
        self.function_breakpoints = chosen
        return out

    def set_exception_filters(self, filters: list[str]) -> None:
        self.faults = "faults" in filters

    def _function_breakpoint(self, wait: Wait) -> Breakpoint | None:
        return self.function_breakpoints.get(wait.name) or self.function_breakpoints.get(wait.endpoint)

    def _line_hit(self, machine: Machine, expr) -> Breakpoint | None:
        bp = self._at_expr.get(id(expr))
        if bp is None:
            return None
        if bp.condition:
            try:
                value = self._evaluate(bp.condition, machine, machine.env, self._span(expr))
            except EvaluationError as error:
                self.output(f"breakpoint condition `{bp.condition}` at line {bp.line}: {error}; stopped there\n")
                return bp
            if value is None or value is False:
                return None
        return bp

    # -- moving ----------------------------------------------------------------------------------------

    def _wants(self, kind, position, machine, thing) -> bool:
        """What `resume` stops at."""
        if self.pausing:
            return kind == EVAL
        if kind == EVAL:
            return id(thing) in self._at_expr and self._line_hit(machine, thing) is not None
        if kind == WAIT:
            return self._function_breakpoint(thing) is not None
        return kind == FAULT and self.faults

    def _here(self):
        point = self.timeline.point
        expr = point.expr if point.kind == EVAL else (
            self.program.exprs[point.wait.expr_id] if point.kind == WAIT and point.wait.expr_id >= 0 else
            (self.timeline.machine.where() if point.kind == FAULT else None))
        span = expr.node.span if expr is not None else None
        return point, ((span.source.name, span.line) if span is not None else None)

    def start(self, stop_on_entry: bool = False) -> Stop:
        """The first stop after `configurationDone`: the entry, or the first breakpoint."""
        timeline = self._require()
        if stop_on_entry:
            point = timeline.forward(lambda kind, *_: kind == EVAL or kind == WAIT)
            return self._stop(point, "entry")
        return self.resume()

    def resume(self) -> Stop:
        timeline = self._require()
        if self._at_end():
            return Stop("end", ended=True)
        self.pausing = False
        return self._stop(timeline.forward(self._wants))

    def _at_end(self) -> bool:
        point = self.timeline.point
        return point is not None and point.kind == END and (self.run.status in FINAL or self.timeline.reload is None
                                                            or self.timeline.run.status in FINAL)

    def _stepping(self, into: bool = False, out: bool = False):
        point, line = self._here()
        task, depth = point.task, point.depth
        stops = self._stops

        def want(kind, position, machine, thing) -> bool:
            if kind == FAULT:
                return self.faults
            if kind == WAIT:
                return self._function_breakpoint(thing) is not None
            if self.pausing:
                return True
            if id(thing) in self._at_expr and self._line_hit(machine, thing) is not None:
                return True
            if out:
                return machine.task == task and machine.depth < depth
            if id(thing) not in stops:
                return False
            span = thing.node.span
            other_line = (span.source.name, span.line) != line
            if into:
                return other_line or machine.depth > depth or machine.task != task
            return machine.task == task and (machine.depth < depth or (machine.depth == depth and other_line))
        return want

    def step(self, into: bool = False, out: bool = False) -> Stop:
        timeline = self._require()
        if self._at_end():
            return Stop("end", ended=True)
        self.pausing = False
        if timeline.point is None:
            return self.start(True)
        return self._stop(timeline.forward(self._stepping(into, out)), "step")

    def step_back(self) -> Stop:
        timeline = self._require()
        if timeline.point is None:
            return self.start(True)
        point, line = self._here()
        task, depth = point.task, point.depth
        stops = self._stops

        def want(kind, position, machine, thing) -> bool:
            if kind != EVAL or id(thing) not in stops:
                return False
            if point.kind == END:
                return True
            span = thing.node.span
            return machine.task == task and (machine.depth < depth or (
                machine.depth == depth and (span.source.name, span.line) != line))
        found = timeline.backward(want)
        if found is None:
            return self._stop(timeline.goto(0), "entry")
        return self._stop(found, "step")

    def reverse_continue(self) -> Stop:
        timeline = self._require()
        if timeline.point is None:
            return self.start(True)
        found = timeline.backward(self._wants)
        if found is None:
            return self._stop(timeline.goto(0), "entry")
        return self._stop(found)

    def pause(self) -> None:
        self.pausing = True

    def _stop(self, point: Point, reason: str | None = None) -> Stop:
        self._frames.clear()
        self._refs.clear()
        self.pausing_was, self.pausing = self.pausing, False
        machine = self.timeline.machine
        if point.kind == END:
            self._ended(point)
            if point.error is not None:
                text = point.error
                return Stop("exception", 0, "the run failed", text)
            if point.divergence:
                return Stop("end", 0, f"the replay stops: {point.divergence}")
            if point.value is not None:
                return Stop("end", 0, f"the run completed: {point.value}")
            return Stop("end", 0, f"the run's log ends here ({self.timeline.run.status})")
        if point.kind == FAULT:
            return Stop("exception", point.task, "fault", point.fault.message)
        if point.kind == WAIT:
            bp = self._function_breakpoint(point.wait)
            if bp is not None and reason is None:
                return Stop("function breakpoint", point.task, f"calls `{point.wait.name}`", breakpoints=[bp.id])
            return Stop(reason or "step", point.task)
        if reason is None or reason == "step":
            bp = self._at_expr.get(id(point.expr))
            if bp is not None and (reason is None or self._line_hit(machine, point.expr) is not None):
                return Stop("breakpoint", point.task, breakpoints=[bp.id])
        if self.pausing_was:
            return Stop("pause", point.task)
        return Stop(reason or "step", point.task)

    # -- the Debug Console: the run's events as they are passed ------------------------------------------

    def _passing(self, position: int, wait: Wait) -> None:
        if position <= self._emitted:
            return
        self._emitted = position
        events = self.timeline.events
        if self._by_step[0] is not events:   # indexed once for each version of the log
            index: dict = {}
            for event in events:
                if event.step is not None and event.kind != "run-started":
                    index.setdefault(event.step, []).append(event)
            self._by_step = (events, index)
        for event in self._by_step[1].get(wait.step, ()):
            self.output(self._event_line(event))

    def _event_line(self, event) -> str:
        data = {k: v for k, v in event.data.items() if k not in ("span", "origin")}
        task = data.pop("task", None)
        parts = " ".join(f"{k}={v if isinstance(v, str) else literal_json(v)}" for k, v in data.items())
        prefix = f"[task {task}] " if task else ""
        return f"{prefix}#{event.seq} {event.kind}" + (f" step {event.step}" if event.step else "") + \
            (f": {parts}" if parts else "") + "\n"

    def _ended(self, point: Point) -> None:
        if point.position <= self._emitted:
            return
        self._emitted = point.position
        for event in self.timeline.events:
            if event.kind in ("run-completed", "run-failed", "run-cancelled"):
                self.output(self._event_line(event))

    # -- threads, frames, scopes, variables ---------------------------------------------------------

    def threads(self) -> list[tuple[int, str]]:
        timeline = self._require()
        entry = "/".join(self.program.package_of(self.run.entry))
        machine = timeline.machine
        tasks = {0}
        if machine is not None:
            tasks |= {machine.task, *machine.others}
            tasks -= {t for t in machine.results if t != machine.task}
        return [(t, f"task 0: {entry}" if t == 0 else f"task {t}") for t in sorted(tasks)]

    def stack(self, task: int) -> list[StackFrame]:
        timeline = self._require()
        point = timeline.point
        if point is None:
            return []
        machine = timeline.machine
        if point.kind == END:
            span = inspect.entry_span(self.program, self.run)
            frames = [inspect.Frame("(the run's end)", span, [], None)]
        elif task == machine.task:
            frames = self._frames_here(point, machine)
        else:
            frames = self._task_frames(machine, task)
        out = []
        for frame in frames:
            fid = len(self._frames) + 1
            self._frames[fid] = (frame, task)
            span = frame.span
            if span is None:
                out.append(StackFrame(fid, frame.function, None, 0, 0, 0, 0))
                continue
            out.append(StackFrame(fid, frame.function, self.path_of(span.source.name), span.line, span.column,
                                  span.end_line, span.end_column))
        return out

    def _frames_here(self, point: Point, machine: Machine) -> list:
        if point.kind == EVAL:
            return inspect._frames(self.program, machine, machine.env, self._span(point.expr))
        if point.kind == WAIT:
            expr = self.program.exprs[point.wait.expr_id] if point.wait.expr_id >= 0 else None
            return inspect._frames(self.program, machine, machine.call_env, self._span(expr))
        where = machine.where()
        env = machine.env if machine.mode_eval else machine.call_env
        return inspect._frames(self.program, machine, env, self._span(where))

    def _task_frames(self, machine: Machine, task: int) -> list:
        saved = machine.others.get(task)
        if saved is None:
            return []
        if "new" in saved:
            return [inspect.Frame(f"task {task} (not started)", None, [], None)]
        fields = saved.get("fields")
        if fields is None:
            fields = saved["fields"] = machine._restored["fields"](saved["raw"])
            del saved["raw"]
        view = SimpleNamespace(stack=fields["stack"])
        expr = fields["expr"] if fields["mode_eval"] else None
        env = fields["env"] if fields["mode_eval"] else fields["call_env"]
        if expr is None:
            expr = next((f[1] for f in reversed(fields["stack"]) if len(f) > 1 and hasattr(f[1], "node")), None)
        return inspect._frames(self.program, view, env, self._span(expr))

    def scopes(self, frame_id: int) -> list[tuple[str, int]]:
        frame, task = self._frame(frame_id)
        ref = self._ref(("scope", frame))
        return [("Locals", ref)]

    def _frame(self, frame_id):
        found = self._frames.get(frame_id)
        if found is None:
            raise SessionError(f"no frame {frame_id} at this stop (ask `stackTrace` again)")
        return found

    def _ref(self, what: tuple) -> int:
        ref = len(self._refs) + 1
        self._refs[ref] = what
        return ref

    def variables(self, reference: int) -> list[Variable]:
        what = self._refs.get(reference)
        if what is None:
            raise SessionError(f"no variables {reference} at this stop")
        if what[0] == "scope":
            frame = what[1]
            values = _values(frame.env)
            if frame.function == "(the run's end)":
                point = self.timeline.point
                return [Variable("result", point.value or "nil", "")] if point.value is not None else []
            return [self._variable(b.name, values.get(b.name), b.type) for b in frame.bindings]
        value = what[1]
        if isinstance(value, List):
            return [self._variable(f"[{i}]", item) for i, item in enumerate(value)]
        if isinstance(value, Map):
            return [self._variable(_key_literal(k), v) for k, v in value.items()]
        if isinstance(value, RecordValue):
            return [self._variable(f, v) for f, v in zip(value.fields, value.values)]
        return []

    def _variable(self, name: str, value, type_: str | None = None) -> Variable:
        expandable = isinstance(value, (List, Map, RecordValue)) and len(
            value.values if isinstance(value, RecordValue) else value) > 0
        count = len(value.values if isinstance(value, RecordValue) else value) if expandable else 0
        return Variable(name, _shown(value), type_ or type_name(value),
                        self._ref(("value", value)) if expandable else 0, count)

    # -- evaluating -----------------------------------------------------------------------------------

    def evaluate(self, text: str, frame_id: int | None) -> Variable:
        timeline = self._require()
        if not isinstance(text, str) or not text.strip():
            raise SessionError("nothing to evaluate")
        if timeline.point is None or timeline.point.kind == END:
            raise SessionError("the run is not stopped in a frame")
        if frame_id is not None:
            frame, task = self._frame(frame_id)
            env, span = frame.env, frame.span
        else:
            frames = self._frames_here(timeline.point, timeline.machine)
            env, span = (frames[0].env, frames[0].span) if frames else (None, None)
        try:
            value = self._evaluate(text, timeline.machine, env, span)
        except EvaluationError as error:
            raise SessionError(str(error)) from None
        return self._variable("", value)

    def _evaluate(self, text: str, machine: Machine, env: Env | None, span: Span | None):
        values = _values(env)
        names = tuple(values)
        package = self._package_at(span)
        key = (package.name, names, text)
        program = self._evaluators.get(key)
        if program is None:
            program = self._evaluators[key] = self._evaluator(package, names, text)
        if isinstance(program, EvaluationError):
            raise program
        inner = Machine(program)
        try:
            inner.start(f"{package.name}/{EVAL_NAME}", [values[n] for n in names])
            spent = 0
            while True:
                outcome = inner.run(100_000)
                if isinstance(outcome, Slice):
                    spent += 100_000
                    if spent >= EVAL_BUDGET:
                        raise EvaluationError(f"`{text}` takes more than {EVAL_BUDGET:,} steps: stopped")
                    continue
                break
        except Fault as fault:
            raise EvaluationError(f"fault: {fault.message}") from None
        if isinstance(outcome, Wait):
            raise EvaluationError(f"`{text}` calls the endpoint `{outcome.name}`: only pure expressions are "
                                  f"evaluated, nothing was called")
        assert isinstance(outcome, Done)
        return outcome.value

    def _package_at(self, span: Span | None):
        scopes = [s for s in self.program.scopes.values() if not s.standard]
        if span is not None:
            for scope in scopes:
                node = scope.package.node.span
                if node.source.name == span.source.name and node.start <= span.start < node.end:
                    return scope.package
        package, _ = self.program.package_of(self.run.entry)
        return self.program.scopes[package].package

    def _evaluator(self, package, names: tuple, text: str):
        """The program with a function of the bindings' names returning `text`, in `package`.

        The function is written at the end of `package`, so it sees what the package's code
        sees, but numbered after every other expression: the run's values name code by
        expression id (a closure is the id of its `fn`), and the rest of the copy keeps the ids
        it has in the run's program, so a closure of any package runs its own code here."""
        node = package.node.span
        name = node.source.name
        source = self.program.sources[name]
        close = node.end - 1
        params = " ".join(names)
        added = f"\n(defn {EVAL_NAME} [{params}]\n{text}\n)"
        sources = dict(self.stored)  # the very standard packages the run uses, as the run's program
        sources[name] = source[:close] + added + source[close:]
        try:
            copy = load(sources)
        except ProgramError as error:
            first = source[:close].count("\n") + 3  # the line `text` starts on
            problems = [f"{d.message}" + (f" (line {d.span.line - first + 1} of the expression)"
                                          if d.span.source.name == name and d.span.line > first else "")
                        for d in error.diagnostics if d.is_error][:3]
            return EvaluationError("; ".join(problems) or "the expression does not check")
        except Exception as error:  # noqa: BLE001 - a malformed expression is reported, never a traceback
            return EvaluationError(f"cannot evaluate `{text}`: {error}")
        probe = copy.functions.get((package.name, EVAL_NAME))
        if probe is not None:
            number(copy, last=probe)
        kept = copy.exprs[:len(self.program.exprs)]
        if probe is None or [type(e) for e in kept] != [type(e) for e in self.program.exprs]:
            # The expression's text closed the package early, or the like: the copy is another program.
            return EvaluationError(f"cannot evaluate `{text}`: it is not one expression")
        return copy


def _values(env: Env | None) -> dict:
    chain = []
    while env is not None:
        chain.append(env)
        env = env.parent
    seen: dict = {}
    for scope in reversed(chain):
        for name, value in scope.vars.items():
            seen.pop(name, None)
            seen[name] = value
    return seen


def literal_json(value) -> str:
    import json
    return json.dumps(value, ensure_ascii=False)
