"""Looking into a run: its trace with source spans, and its state at any point of its log.

What the editor's trace panel shows (`flowmetal.ide.workbench`, the language
server's `flowmetal/trace` and `flowmetal/stateAt`), computed from the store's
records of one run and the exact program it ran (its stored sources), never
from the files as they are now.

- `trace` gives each event of the log with the span of the expression that
  caused it: a step's events carry the span of its request (recorded in the
  request's event), `run-started` and the run's end point at the entry
  function, `run-failed` at the faulting expression.
- `state_at` gives the state of the run at an event: the call stack, innermost
  function first, each function with the place it was at and the bindings in
  its scope (name, type, value as a literal). An event of step N shows the
  machine stopped at step N's endpoint call. The state comes from the stored
  snapshot when the event belongs to the step the run waits on now (the
  snapshot holds the machine as it stopped there), and otherwise from replaying
  the log (`replay.Walk`): evaluation between steps is deterministic, so
  running the program again and answering each endpoint call with its
  recorded result reaches exactly the state the run had. The cost of a replay
  grows with the step number, not with the time the run took; `Replays` keeps
  replays between questions, so stepping forward through a run costs only the
  steps in between.

Types: a binding's static type where the checker knows it (parameters and
annotated or inferred locals), else the type of its runtime value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowmetal.lang import deep
from flowmetal.lang.resolve import Symbol
from flowmetal.lang.source import Source, Span
from flowmetal.lang.types import ANY, show
from flowmetal.runtime.machine import RET, Env, Machine
from flowmetal.runtime.program import Program
from flowmetal.runtime.replay import Walk
from flowmetal.runtime.store import Event, Run
from flowmetal.runtime.values import List, Map, RecordValue, literal, type_name


class InspectError(Exception):
    """The question cannot be answered as asked (no such event): a message naming why."""


@dataclass
class TraceEvent:
    seq: int
    time: float
    kind: str
    step: int | None
    data: dict
    span: Span | None     # in the run's stored sources


@dataclass
class Binding:
    name: str
    type: str
    value: str            # a Flowmetal literal
    # The field names of the records in the value, by record name: a literal prints a record
    # without them (`(quote "sku-1" 1250)`), and an editor that unfolds it names its parts.
    records: dict[str, list[str]] = field(default_factory=dict, compare=False)


@dataclass
class Frame:
    function: str         # `package/name`, or the name of a `fn` (`fn` when it has none)
    span: Span | None     # where this function is: the innermost at the stop, the others at their call
    bindings: list[Binding] = field(default_factory=list)
    env: Env | None = field(default=None, repr=False, compare=False)  # its scope: the bindings' values


@dataclass
class State:
    seq: int
    kind: str
    step: int | None
    span: Span | None
    frames: list[Frame]
    result: str | None = None     # the step's result, when the log holds it by this event
    value: str | None = None      # the run's value, at its end
    error: str | None = None      # the fault, for a failed run
    source: str = "replay"        # "snapshot", "replay" or "start": where the state came from

    @property
    def bindings(self) -> list[Binding]:
        return self.frames[0].bindings if self.frames else []

    @property
    def records(self) -> dict[str, list[str]]:
        """The field names of the records in the stack's values, by record name."""
        out: dict[str, list[str]] = {}
        for frame in self.frames:
            for binding in frame.bindings:
                for name, fields in binding.records.items():
                    out.setdefault(name, fields)
        return out


# -- spans ------------------------------------------------------------------------------------------

def _sources(program: Program) -> dict[str, Source]:
    cached = program.__dict__.get("_inspect_sources")
    if cached is None:
        # The standard packages stored with the run too: a fault inside one is traced to its file there.
        cached = program.__dict__["_inspect_sources"] = {n: Source(t, n) for n, t in program.stored.items()}
    return cached


def parse_span(program: Program, text: str | None) -> Span | None:
    """A span recorded as `file:line:column-end_line:end_column` (1-based), in the stored sources."""
    if not text:
        return None
    try:
        name, line, middle, end_column = text.rsplit(":", 3)
        column, end_line = middle.split("-")
        source = _sources(program)[name]
        start = source.offset(int(line), int(column))
        end = source.offset(int(end_line), int(end_column))
    except (ValueError, KeyError, IndexError):
        return None
    return source.span(start, max(start, end))


def _line_span(program: Program, line: int | None) -> Span | None:
    """A whole line of the run's main file, without its indentation."""
    if not line:
        return None
    source = next(iter(_sources(program).values()))
    if not 1 <= line <= len(source.line_starts):
        return None
    text = source.line_text(line)
    start = source.line_starts[line - 1] + (len(text) - len(text.lstrip()))
    return source.span(start, source.line_starts[line - 1] + len(text.rstrip()))


def entry_span(program: Program, run: Run) -> Span | None:
    try:
        definition = program.functions.get(program.package_of(run.entry))
    except KeyError:
        return None
    return _stored(program, definition.name_node.span) if definition is not None else None


def _stored(program: Program, span: Span | None) -> Span | None:
    """The same span over this module's copy of the stored source (one Source a file)."""
    if span is None:
        return None
    source = _sources(program).get(span.source.name)
    return source.span(span.start, span.end) if source is not None else span


# -- the trace --------------------------------------------------------------------------------------

def trace(program: Program, run: Run, events: list[Event],
          requests: dict[int, Span | None] | None = None) -> list[TraceEvent]:
    """The events with their spans. `requests` (step -> span of its request) carries what
    earlier events said across calls, for tracing a log piece by piece; it is updated."""
    requests = {} if requests is None else requests
    out = []
    entry = entry_span(program, run)
    for event in events:
        span = parse_span(program, event.data.get("span"))
        if event.kind == "step-requested" and event.step is not None:
            requests[event.step] = span or _line_span(program, event.line)
        if span is None and event.step is not None:
            span = requests.get(event.step) or _line_span(program, event.line)
        if span is None and event.kind in ("run-started", "run-completed", "run-cancelled"):
            span = entry
        if span is None and event.kind == "run-failed":
            frames = event.data.get("trace") or []
            span = _line_span(program, event.line or (frames[0]["line"] if frames else None)) or entry
        out.append(TraceEvent(event.seq, event.time, event.kind, event.step, dict(event.data), span))
    return out


# -- the state at an event ----------------------------------------------------------------------------

class Replays:
    """Replays kept between questions about the same runs, so that stepping through a run
    costs the steps in between, not a replay from its start each time.

    Stepping forward goes on with the kept replay. Stepping back starts again from the
    nearest checkpoint before the step (the machine's state, taken every `every` steps
    as replays go by), so going back costs at most `every` steps. A run whose log has
    grown since is replayed afresh."""

    def __init__(self, keep: int = 4, every: int = 50) -> None:
        self.keep = keep
        self.every = every
        self._walks: dict[str, tuple] = {}   # run id -> (walk, its iterator, the wait it is at, log length)
        self._checkpoints: dict[str, tuple[int, dict[int, dict]]] = {}  # run id -> (log length, step -> state)

    def _new_walk(self, program: Program, run: Run, events: list[Event], step: int | None) -> Walk:
        length, saved = self._checkpoints.pop(run.id, (len(events), {}))
        if length != len(events):
            saved = {}
        self._checkpoints[run.id] = (len(events), saved)
        while len(self._checkpoints) > self.keep:
            self._checkpoints.pop(next(iter(self._checkpoints)))
        before = [s for s in saved if step is None or s < step]
        walk = Walk(program, run, events, start_from=saved[max(before)] if before else None)

        def keep(walk: Walk, answered: int) -> None:
            if answered % self.every == 0 and answered not in saved:
                saved[answered] = walk.checkpoint()
        walk.on_step = keep
        return walk

    def walk_to(self, program: Program, run: Run, events: list[Event], step: int):
        """A `Walk` stopped at step `step`'s endpoint call, and that `Wait`; or the walk
        ended (finished, faulted, diverged, or the log ends first; `step` None: walk to
        the end) and None."""
        kept = self._walks.pop(run.id, None)
        if kept is not None:
            walk, steps, at, length = kept
            if walk.program is not program or length != len(events) or at is None or (
                    step is not None and at.step > step):
                kept = None
        if kept is None:
            walk = self._new_walk(program, run, events, step)
            steps, at = iter(walk), None
        while at is None or step is None or at.step < step:  # step None: to the walk's end
            at = next(steps, None)
            if at is None:
                break
        self._walks[run.id] = (walk, steps, at, len(events))
        while len(self._walks) > self.keep:
            self._walks.pop(next(iter(self._walks)))
        return walk, at if at is not None and at.step == step else None


def state_at(program: Program, run: Run, events: list[Event], seq: int, snapshot: dict | None = None,
             replays: Replays | None = None, load=None) -> State:
    """The state at event `seq`. `snapshot`: the run's stored one, with `load(keys) -> {key:
    text}` reading its other parts (a run with tasks is stored in parts)."""
    event = next((e for e in events if e.seq == seq), None)
    if event is None:
        last = events[-1].seq if events else 0
        raise InspectError(f"run `{run.id}` has no event {seq}: its events are 1 to {last}")
    results = {e.step: e.data.get("result") for e in events if e.kind == "step-completed" and e.seq <= seq}
    if event.kind == "run-completed":
        return State(seq, event.kind, None, entry_span(program, run), [], value=event.data.get("result"),
                     source="log")
    step = event.step
    if step is None and event.kind != "run-failed":
        # run-started, run-cancelled: the last step requested by then, or the start
        step = max((e.step for e in events if e.seq <= seq and e.step is not None), default=None)
    if step is None and event.kind != "run-failed":
        return _start(program, run, seq, event.kind)
    waiting = (snapshot or {}).get("waiting") or {}
    if (event.kind != "run-failed" and run.status == "waiting" and waiting.get("step") == step
            and "call_env" in snapshot["machine"]):
        machine = deep.call(Machine.restore, program, snapshot["machine"], load)
        span = _request_span(program, events, step)
        return State(seq, event.kind, step, span, _frames(program, machine, machine.call_env, span),
                     result=results.get(step), source="snapshot")
    walk, wait = (replays or Replays()).walk_to(program, run, events, step)
    if wait is not None:
        span = _stored(program, program.exprs[wait.expr_id].node.span) if wait.expr_id >= 0 else None
        return State(seq, event.kind, step, span, _frames(program, walk.machine, walk.machine.call_env, span),
                     result=results.get(step))
    if walk.fault_error is not None:
        where = walk.machine.where()
        span = _stored(program, where.node.span) if where is not None else None
        # Evaluating: the expression's scope; applying (a call, a match): the scope it was in.
        env = walk.machine.env if walk.machine.mode_eval else walk.machine.call_env
        return State(seq, event.kind, step, span, _frames(program, walk.machine, env, span),
                     error=walk.fault)
    if walk.divergence:
        raise InspectError(f"the run's log and its program disagree: {walk.divergence}")
    raise InspectError(f"replaying run `{run.id}` did not reach step {step}")


def _request_span(program: Program, events: list[Event], step: int) -> Span | None:
    for e in events:
        if e.kind == "step-requested" and e.step == step:
            return parse_span(program, e.data.get("span")) or _line_span(program, e.line)
    return None


def _start(program: Program, run: Run, seq: int, kind: str) -> State:
    """The run as it starts: the entry function, its parameters bound to the arguments."""
    from flowmetal.runtime.literals import read_literal
    package, name = program.package_of(run.entry)
    definition = program.functions.get((package, name))
    span = entry_span(program, run)
    env = Env({})
    for param, text in zip(definition.params if definition else [], run.args):
        env.vars[param.name] = read_literal(text, program, package)
    frame = Frame(f"{package}/{name}", span, _bindings(program, env, span))
    return State(seq, kind, None, span, [frame], source="start")


def _frames(program: Program, machine: Machine, env: Env | None, span: Span | None) -> list[Frame]:
    """The call stack, innermost first: each function with where it is and its scope there.
    A function's scope is the environment of the innermost pending frame of its body."""
    frames: list[Frame] = []
    for frame in reversed(machine.stack):
        if frame[0] == RET:
            _, package, function, call_id = frame[:4]
            label = f"{package}/{function}" if package else (function or "fn")
            frames.append(Frame(label, span, _bindings(program, env, span), env))
            call = program.exprs[call_id] if call_id is not None and call_id >= 0 else None
            span = _stored(program, call.node.span) if call is not None else None
            env = None
            continue
        if env is None:
            env = next((part for part in frame[1:] if isinstance(part, Env)), None)
        if span is None:  # called from a built-in (`map`): the caller's pending expression
            expr = frame[1] if len(frame) > 1 and hasattr(frame[1], "node") else None
            span = _stored(program, expr.node.span) if expr is not None else None
    return frames


def _bindings(program: Program, env: Env | None, span: Span | None) -> list[Binding]:
    chain = []
    while env is not None:
        chain.append(env)
        env = env.parent
    seen: dict[str, object] = {}
    for scope in reversed(chain):   # outermost first: parameters, then the lets inside them
        for name, value in scope.vars.items():
            seen.pop(name, None)
            seen[name] = value
    symbols = program.workspace.scope_at(span.source.name, span.start) if span is not None else {}
    out = []
    for name, value in seen.items():
        out.append(Binding(name, _type(program, symbols.get(name), value), deep.call(literal, value),
                           _record_fields(value)))
    return out


def _record_fields(value) -> dict[str, list[str]]:
    """The field names of the records in `value`, however deep, by record name (without recursion:
    a value can be deeper than Python's stack)."""
    out: dict[str, list[str]] = {}
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, RecordValue):
            out.setdefault(item.record, list(item.fields))
            stack.extend(item.values)
        elif isinstance(item, (List, tuple)):
            stack.extend(item)
        elif isinstance(item, (Map, dict)):
            stack.extend(item.values())
    return out


def _type(program: Program, symbol: Symbol | None, value) -> str:
    if symbol is not None and symbol.kind in ("parameter", "local"):
        if symbol.type is not None and symbol.type != ANY:
            return show(symbol.type)
        if symbol.node is not None:
            found = program.workspace.type_at(symbol.node.span.source.name, symbol.node.span.start)
            if found is not None and found[1] != ANY:
                return show(found[1])
    return type_name(value)
