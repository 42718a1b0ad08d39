"""The evaluator: a CEK machine whose whole state is plain data.

Why a machine rather than a recursive interpreter: a run must be able to stop
at any endpoint call, be written to the store, and be resumed by another
process days later. So the evaluator keeps no Python stack: its continuation is
an explicit list of frames, each a tuple of a tag and plain parts (expressions,
environments, values, numbers). `snapshot()` turns the whole state into JSON-able
data (expressions by id, environments by a shared table, values by
`values.encode`), and `Machine.restore` rebuilds it. Recursion depth is bounded
by `MAX_DEPTH`, not by Python's recursion limit.

The loop alternates two modes: *eval* (an expression and an environment) and
*apply* (a value returned to the frame on top of the stack). Calls bind
parameters (positional, then `:name value`, then defaults evaluated in the
callee's scope), push a `RET` frame (a stack-trace boundary) and evaluate the
body. Tail calls replace the caller's `RET` frame (proper tail calls: a loop
written as recursion runs in constant space; stack traces show the last call
of a tail-calling chain). Higher-order built-ins (`map`, `filter`, `reduce`) are frames too, so a
function they call may itself wait on an endpoint.

An endpoint call stops the machine with a `Wait` holding the step number (the
idempotency key's second half), the endpoint and its arguments; the driver
(`flowmetal.runtime.executor`) performs or records it and resumes the machine
with the result. `with-timeout!` is the one endpoint that runs code: the driver
calls `enter_timeout`, which applies the function under a `TIMEOUT` frame, and
`expire_timeout` unwinds to that frame with `+timeout+` when the timer wins.

A run must never hold its worker for good, so `run(budget)` can stop anywhere:
after `budget` units of work (a machine transition or a call made by the fast
path is one unit) it returns a `Slice`, in a state that can be snapshotted or
run on. A pure call handed to the fast path (`flowmetal.runtime.fast`) spends
from the same budget; when it is spent inside that call, the `pause` hook
decides whether the call goes on (the driver renewed its lease, nothing asks it
to stop) or stops there: the machine then makes the call itself, from its start
(it is pure, so nothing is done twice that shows), and the slice ends. A
constant (`def`) is computed by a machine of its own, in slices too.

Memory is bounded too: at most `MAX_DEPTH` calls in progress (tail calls do not
count: they replace their caller); one more is the fault "call stack too deep",
and a fault's stack trace keeps only its innermost `TRACE_KEEP` calls.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from itertools import islice, repeat
from operator import length_hint

from flowmetal.lang.forms import (
    split_arguments, Call, Cond, Do, FnExpr, If, Invalid, Let, Lit, Logic, MapLit, Match, Name, PBind, PInvalid, PLit, PMember,
    PRecord, PWild, VectorLit, When,
)
from flowmetal.lang.resolve import Symbol
from flowmetal.lang.syntax import Kind
from flowmetal.lang.types import Enum, Record
from flowmetal.runtime import primitives as prim
from flowmetal.runtime.fast import UNLIMITED, Compiler, Faulting, NotPure, OutOfFuel, pure_functions
from flowmetal.runtime.faults import TRACE_KEEP, Fault  # noqa: F401  (TRACE_KEEP: the bound named above)
from flowmetal.runtime.program import Program
from flowmetal.runtime.values import (
    EMPTY_LIST, EMPTY_MAP, BuiltinFn, Closure, Env, GlobalFn, Keyword, List, Map, Member, RecordValue, TaskRef,
    decode, encode, literal, map_key, type_name,
)

COMPACT_SLACK = 1024  # environments' refs handed out past twice the live ones before a full rewrite
MAX_DEPTH = 150_000   # calls in progress at once (non-tail); docs/language.md
# The one endpoint taking any number of arguments: `(start-run! f arg...)` gives the endpoint
# `f` and the list of the others (`args`).
START_RUN = ("flowmetal.run", "start-run!")

# Frame tags.
CALL, ARGS, BIND, RET, BODY, IF, LET, COND, LOGIC, MATCH, VEC, MAP, HMAP, HFILTER, HREDUCE, TIMEOUT, WHEN = range(17)


@dataclass
class Wait:
    """The machine stopped at an endpoint call: step `step` of the run."""
    step: int
    package: str
    endpoint: str
    args: dict
    expr_id: int

    @property
    def name(self) -> str:
        return f"{self.package}/{self.endpoint}"


@dataclass
class Done:
    """The current task returned `value` (task 0, the entry's own: the run's value)."""
    value: object
    task: int = 0


class Slice:
    """The machine spent its budget: its state is whole (snapshot it, or run it again)."""

    def __repr__(self) -> str:
        return "Slice()"


SLICE = Slice()


class _SliceOver(Exception):
    """`pause` stopped the computation of a constant (see `_constant`)."""


class _HookFailed(Exception):
    """The driver's `pause` hook raised `error`: it goes back to the driver as it was, not as a
    fault of the run (a lost lease, a store that failed)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class _Hook:
    """The driver's `pause`, its errors marked as its own (`_HookFailed`)."""
    __slots__ = ("pause",)

    def __init__(self, pause) -> None:
        self.pause = pause

    def __call__(self, resumable: bool = True) -> bool:
        try:
            return self.pause(resumable)
        except _HookFailed:
            raise
        except Exception as error:
            raise _HookFailed(error) from error


# A task's own part of the machine's state (see "tasks").
_TASK_FIELDS = ("stack", "mode_eval", "expr", "env", "value", "depth", "call_env", "call_expr", "fault_at")

MISSING = object()
_FAST = object()  # `_bind`'s answer when the call is for the fast path: `run` makes it


class Machine:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.stack: list[tuple] = []
        self.mode_eval = False
        self.expr = None
        self.env: Env | None = None
        self.value = None
        self.steps = 0               # endpoint calls made so far
        self.done = False
        self.fault_at = None         # the expression a fault concerns, for the trace
        self.call_env: Env | None = None  # the caller's scope at the latest call: what a `Wait` was called from
        self.call_expr = None             # the latest call expression
        self._deep = False           # the fast path hit Python's recursion limit: stay on the machine
        self._plans: dict[int, tuple] = {}
        self.depth = 0               # calls in progress: RET frames on the stack
        self._budget: int | None = None
        self._pause = None
        self._fast_call_args = None  # the call `_bind` left for `run` to make on the fast path
        # Tasks (`flowmetal.task`): the fields above are the current task's; the others'
        # are kept in `others` while it runs (see "tasks" below).
        self.task = 0                     # the current task
        self.others: dict[int, dict] = {}  # tid -> {"fields": {...}} or {"new": fn}
        self.ready: list[int] = []        # tasks that can run, in the order they became so
        self.results: dict[int, tuple] = {}   # tid -> ("ok", value) | ("fault", message, trace) | ("cancelled",)
        self.awaiting: dict[int, tuple] = {}  # tid -> (mode, [tids]): a task waiting for tasks
        self.answers: dict[int, tuple] = {}   # tid -> ("ok", value) | ("fault", message): for a woken task
        self.next_task = 1

    # -- starting and resuming --------------------------------------------------------------

    def start(self, entry: str, args: list) -> None:
        package, name = self.program.package_of(entry)
        definition = self.program.functions.get((package, name))
        if definition is None or definition.form != "defn":
            raise Fault(f"no function `{name}` in package `{package}`")
        supplied = {}
        params = definition.params
        if len(args) > len(params):
            raise Fault(f"`{name}` takes {_count(len(params), 'argument')}, {len(args)} given")
        for param, value in zip(params, args):
            supplied[param.name] = value
        missing = [p.name for p in params[len(args):] if p.default is None]
        if missing:
            raise Fault(f"`{name}` needs {', '.join(missing)}")
        self._settle(self._bind(("def", package, name), supplied, None))

    def resume(self, value) -> None:
        """Continue after a `Wait` with the endpoint's result."""
        self.value = value
        self.mode_eval = False

    # -- the loop -------------------------------------------------------------------------------

    def run(self, budget: int | None = None, pause=None):
        """Run until the machine finishes (`Done`), waits (`Wait`) or, given a `budget`, has
        spent it (`Slice`: run again to go on). `pause(resumable)` is asked, inside a pure
        call or a constant longer than the budget, whether to stop there (True) or go on;
        `resumable` is False when stopping loses the work (a constant). Raises `Fault`."""
        stack = self.stack
        # One tick a transition: an iterator of Nones counts without making an int each time.
        ticks = repeat(None) if budget is None else repeat(None, budget)
        own_hook = pause is not None and type(pause) is not _Hook  # not a constant's machine's
        self._budget, self._pause = budget, (_Hook(pause) if own_hook else pause)
        try:
            for _ in ticks:
                if self.mode_eval:
                    self._eval(self.expr, self.env)
                    continue
                if not stack:
                    if self.task == 0:
                        self.done = True
                    return Done(self.value, self.task)
                frame = stack.pop()
                outcome = self._apply(frame, self.value)
                if outcome is not None:
                    if outcome is _FAST:
                        self._fast_call(ticks)
                        continue
                    return outcome
            return SLICE
        except _SliceOver:  # raised before the transition changed anything: it is made again later
            return SLICE
        except Fault as fault:
            if not fault.trace:
                fault.set_trace(self.trace())
            raise
        except _HookFailed as failed:  # the driver's own error (its store, its lease): the driver's
            if own_hook:
                raise failed.error from None
            raise
        except RecursionError:  # a value nested too deep to print or compare
            fault = Fault("a value is nested too deep")
            fault.set_trace(self.trace())
            raise fault from None
        except MemoryError:
            self.stack.clear()  # give the memory back before anything else
            raise Fault("out of memory") from None
        except Exception as error:  # any other Python error is a fault of the run, with its trace
            fault = prim.python_fault(error)
            fault.set_trace(self.trace())
            raise fault from None

    def trace(self) -> list[tuple[str, str, int]]:
        """The Flowmetal stack trace, innermost function first: each function with the
        line it was at (the innermost: where the fault happened; the others: the call)."""
        out = []
        line = self._where_line()
        for frame in reversed(self.stack):
            if frame[0] == RET:
                _, package, function, call_id, tail = frame
                out.append((package, function, line))
                line = self.program.exprs[call_id].node.span.line if call_id is not None else 0
                if tail is not None:  # the caller this frame replaced, by a tail call
                    t_package, t_function, t_call = tail
                    out.append((t_package, t_function, line))
                    line = self.program.exprs[t_call].node.span.line if t_call is not None else 0
        return out

    def _where_line(self) -> int:
        where = self.where()
        return where.node.span.line if where is not None else 0

    def where(self):
        """The expression the machine is at: being evaluated, faulting, or the innermost pending one."""
        if self.mode_eval and self.expr is not None:
            return self.expr
        if self.fault_at is not None:
            return self.fault_at
        if self.call_expr is not None:
            return self.call_expr
        for frame in reversed(self.stack):
            if len(frame) > 1 and hasattr(frame[1], "node"):
                return frame[1]
        return None

    # -- eval --------------------------------------------------------------------------------------

    def _eval(self, e, env: Env) -> None:
        kind = type(e)
        stack = self.stack
        if kind is Lit:
            self.value = Keyword(e.value) if e.kind is Kind.KEYWORD else e.value
            self.mode_eval = False
        elif kind is Name:
            self.value = self._name(e, env)
            self.mode_eval = False
        elif kind is Call:
            stack.append((CALL, e, env))
            self.expr = e.fn
        elif kind is If:
            stack.append((IF, e, env))
            self.expr = e.test
        elif kind is Let:
            if not e.bindings:
                self._body(e.body, env)
                return
            stack.append((LET, e, Env({}, env), 0))
            self.expr, self.env = e.bindings[0].value, stack[-1][2]
        elif kind is Do:
            self._body(e.body, env)
        elif kind is When:
            stack.append((WHEN, e, env))
            self.expr = e.test
        elif kind is Cond:
            if not e.clauses:
                if e.orelse is None:
                    self._give(None)
                else:
                    self.expr = e.orelse
                return
            stack.append((COND, e, env, 0))
            self.expr = e.clauses[0][0]
        elif kind is Logic:
            if not e.items:
                self._give(True if e.op == "and" else None)
                return
            stack.append((LOGIC, e, env, 0))
            self.expr = e.items[0]
        elif kind is Match:
            stack.append((MATCH, e, env))
            self.expr = e.subject
        elif kind is FnExpr:
            self._give(Closure(self.program.expr_id(e), env, "fn"))
        elif kind is VectorLit:
            if not e.items:
                self._give(EMPTY_LIST)
                return
            stack.append((VEC, e, env, []))
            self.expr = e.items[0]
        elif kind is MapLit:
            if not e.items:
                self._give(EMPTY_MAP)
                return
            stack.append((MAP, e, env, []))
            self.expr = e.items[0]
        else:  # Invalid: the checker refused such programs; never reached in a checked one
            raise Fault("this expression is malformed")

    def _give(self, value) -> None:
        self.value = value
        self.mode_eval = False

    def _body(self, body: list, env: Env) -> None:
        if not body:
            self._give(None)
            return
        if len(body) > 1:
            self.stack.append((BODY, body, env, 1))
        self.expr, self.env = body[0], env
        self.mode_eval = True

    def _name(self, e: Name, env: Env):
        symbol = self.program.symbols.get(id(e.node))
        if symbol is None or symbol.kind in ("parameter", "local"):
            try:
                return env.lookup(e.name)
            except KeyError:
                raise Fault(f"`{e.name}` has no value here") from None
        return self._global(symbol)

    def _global(self, symbol: Symbol):
        kind = symbol.kind
        if kind == "member":
            enum = symbol.type
            return Member(enum.package, enum.name, symbol.name)
        if kind == "builtin":
            return BuiltinFn(symbol.name)
        if kind == "constant":
            return self._constant(symbol)
        return GlobalFn(symbol.package, symbol.name)

    def _constant(self, symbol: Symbol):
        """A `def`'s value: computed once per machine, by a machine of its own (constants are pure)."""
        cache = self.__dict__.setdefault("_constants", {})
        key = (symbol.package, symbol.name)
        if key not in cache:
            definition = self.program.functions[key]
            inner = Machine(self.program)
            inner.expr, inner.env, inner.mode_eval = definition.value, Env({}), True
            # Its state is not part of this machine's: stopping it loses its work, so `pause`
            # is told so (only a cancel or a shutdown stops it) and it goes on otherwise.
            while isinstance(outcome := inner.run(self._budget, self._pause), Slice):
                if self._pause is not None and self._pause(False):
                    raise _SliceOver()
            if not isinstance(outcome, Done):
                raise Fault(f"the constant `{symbol.name}` calls an endpoint: constants must be pure")
            cache[key] = outcome.value
        return cache[key]

    # -- apply ---------------------------------------------------------------------------------------

    def _apply(self, frame: tuple, value):
        tag = frame[0]
        stack = self.stack
        if tag == ARGS:
            _, e, env, fn, plan, values, i = frame
            values.append(value)
            if i + 1 < len(plan):
                stack.append((ARGS, e, env, fn, plan, values, i + 1))
                self.expr, self.env, self.mode_eval = plan[i + 1][1], env, True
                return None
            return self._call(fn, plan, values, e, env)
        if tag == CALL:
            _, e, env = frame
            plan = self._plan(e, value)
            if not plan:
                return self._call(value, plan, [], e, env)
            stack.append((ARGS, e, env, value, plan, [], 0))
            self.expr, self.env, self.mode_eval = plan[0][1], env, True
            return None
        if tag == BODY:
            _, body, env, i = frame
            if i + 1 < len(body):
                stack.append((BODY, body, env, i + 1))
            self.expr, self.env, self.mode_eval = body[i], env, True
            return None
        if tag == RET:
            self.depth -= 1
            return None  # the value passes through: the function returned
        if tag == IF:
            _, e, env = frame
            truth = value is not None and value is not False
            if e.negated:
                truth = not truth
            if truth:
                self.expr, self.env, self.mode_eval = e.then, env, True
            elif e.orelse is not None:
                self.expr, self.env, self.mode_eval = e.orelse, env, True
            else:
                self.value = None
            return None
        if tag == WHEN:
            _, e, env = frame
            if value is not None and value is not False:
                self._body(e.body, env)
            else:
                self.value = None
            return None
        if tag == LET:
            _, e, env, i = frame
            env.vars[e.bindings[i].name] = value
            if i + 1 < len(e.bindings):
                # Each binding sees the ones before it: a fresh frame per binding keeps
                # closures made in earlier bindings from seeing later names.
                inner = Env({}, env)
                stack.append((LET, e, inner, i + 1))
                self.expr, self.env, self.mode_eval = e.bindings[i + 1].value, inner, True
            else:
                self._body(e.body, env)
            return None
        if tag == COND:
            _, e, env, i = frame
            if value is not None and value is not False:
                self.expr, self.env, self.mode_eval = e.clauses[i][1], env, True
            elif i + 1 < len(e.clauses):
                stack.append((COND, e, env, i + 1))
                self.expr, self.env, self.mode_eval = e.clauses[i + 1][0], env, True
            elif e.orelse is not None:
                self.expr, self.env, self.mode_eval = e.orelse, env, True
            else:
                self.value = None
            return None
        if tag == LOGIC:
            _, e, env, i = frame
            truth = value is not None and value is not False
            if (e.op == "and" and not truth) or (e.op == "or" and truth) or i + 1 == len(e.items):
                self.value = value
            else:
                stack.append((LOGIC, e, env, i + 1))
                self.expr, self.env, self.mode_eval = e.items[i + 1], env, True
            return None
        if tag == MATCH:
            _, e, env = frame
            for clause in e.clauses:
                bound: dict = {}
                if self._matches(clause.pattern, value, bound):
                    self._body(clause.body, Env(bound, env) if bound else env)
                    return None
            self.fault_at, self.call_env = e, env  # where, and in what scope, for the trace and inspection
            raise Fault(f"no match clause fits {literal(value)}")
        if tag == VEC or tag == MAP:  # gather the literal's items, in order
            _, e, env, items = frame
            items.append(value)
            if len(items) < len(e.items):
                stack.append(frame)
                self.expr, self.env, self.mode_eval = e.items[len(items)], env, True
            elif tag == VEC:
                self.value = List(items)
            else:
                try:
                    self.value = Map([(map_key(items[k]), items[k + 1]) for k in range(0, len(items) - 1, 2)])
                except TypeError:  # a key with no hash
                    self.fault_at, self.call_env = e, env
                    raise Fault("this value cannot be the key of a map") from None
            return None
        if tag == BIND:
            _, owner, params, i, env, supplied, call_id = frame
            env.vars[params[i].name] = value
            return self._bind_from(owner, params, i + 1, env, supplied, call_id)
        if tag == HMAP:
            _, f, items, i, results = frame
            results.append(value)
            if i + 1 < len(items):
                stack.append((HMAP, f, items, i + 1, results))
                return self._call_value(f, [items[i + 1]], None)
            self.value = List(results)
            return None
        if tag == HFILTER:
            _, f, items, i, results = frame
            if value is not None and value is not False:
                results.append(items[i])
            if i + 1 < len(items):
                stack.append((HFILTER, f, items, i + 1, results))
                return self._call_value(f, [items[i + 1]], None)
            self.value = List(results)
            return None
        if tag == HREDUCE:
            _, f, items, i = frame
            if i < len(items):
                stack.append((HREDUCE, f, items, i + 1))
                return self._call_value(f, [value, items[i]], None)
            self.value = value
            return None
        if tag == TIMEOUT:
            self.value = value  # the function finished before its timer
            self.timeouts_done.append(frame[1])
            return None
        raise AssertionError(f"unknown frame {tag}")

    # -- calls --------------------------------------------------------------------------------------

    def _plan(self, e: Call, fn) -> list:
        """Which argument expression binds which parameter: [(name or None, expr), ...].
        Positional until the first `:name value` past the required parameters (the
        checker's rule)."""
        key = (id(e), type(fn), getattr(fn, "name", None), getattr(fn, "package", None))
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        params = self._params_of(fn)
        args = e.args
        plan = []
        if params is None:
            plan = [(None, a) for a in args]
        else:
            positional, named = split_arguments(args, sum(1 for p in params if p.default is None))
            plan = [(None, a) for a in positional] + [(k.value, v) for k, v in named if v is not None]
        self._plans[key] = plan
        return plan

    def _params_of(self, fn):
        if type(fn) is GlobalFn and (fn.package, fn.name) == START_RUN:
            return None  # its arguments after the function's are the child's, all by position
        if type(fn) is GlobalFn:
            definition = self.program.functions.get((fn.package, fn.name))
            if definition is not None and definition.form in ("defn", "defendpoint"):
                return definition.params
        return None

    def _call(self, fn, plan, values, e, env):
        # Where the latest call is, and in what scope: for the stack trace of a fault inside
        # a built-in, and for inspecting a run stopped at an endpoint (`runtime.inspect`).
        self.call_env, self.call_expr = env, e
        if any(name is not None for name, _ in plan):
            params = self._params_of(fn)
            supplied = {}
            for (name, _), v, p in zip(plan, values, [*params, *([None] * len(values))]):
                supplied[name if name is not None else p.name] = v
            return self._invoke(fn, None, supplied, e)
        return self._invoke(fn, values, None, e)

    def _call_value(self, fn, args: list, e):
        return self._invoke(fn, args, None, e)

    def _invoke(self, fn, args: list | None, supplied: dict | None, e):
        """Apply a function value to positional `args` (or to `supplied` by name)."""
        call_id = self.program.expr_id(e) if e is not None else None
        kind = type(fn)
        if kind is Closure:
            fexpr = self.program.exprs[fn.fn_id]
            if args is None:
                raise Fault("a `fn` takes its arguments by position")
            return self._bind_args(("fn", fn), fexpr.params, args, fn.env, call_id, fn.name)
        if kind is BuiltinFn:
            return self._builtin(fn.name, args if args is not None else list(supplied.values()))
        if kind is GlobalFn:
            scope = self.program.scopes.get(fn.package)
            symbol = scope.decls.get(fn.name) if scope else None
            if symbol is None:
                raise Fault(f"`{fn.package}/{fn.name}` is not defined")
            if symbol.kind in ("function", "endpoint"):
                definition = symbol.definition
                if supplied is None:
                    if (fn.package, fn.name) == START_RUN and args:  # `(start-run! f arg...)`
                        args = [args[0], List(args[1:])]
                    if len(args) > len(definition.params):
                        raise Fault(f"`{fn.name}` takes {_count(len(definition.params), 'argument')}, {len(args)} given")
                    supplied = {p.name: v for p, v in zip(definition.params, args)}
                return self._bind(("def", fn.package, fn.name), supplied, call_id)
            if symbol.kind == "constructor":
                record = symbol.record
                values = args if args is not None else list(supplied.values())
                if len(values) != len(record.fields):
                    raise Fault(f"`{fn.name}` takes {_count(len(record.fields), 'field')}, {len(values)} given")
                self._give(RecordValue(record.package, record.name, tuple(f for f, _ in record.fields),
                                       tuple(values)))
                return None
            if symbol.kind == "accessor":
                (value,) = args if args is not None else list(supplied.values())
                record = symbol.record
                if not (isinstance(value, RecordValue) and value.record == record.name
                        and value.package == record.package):
                    raise Fault(f"`{fn.name}` needs a `{record.name}` record, not {literal(value)}")
                self._give(value.values[symbol.field_index])
                return None
            if symbol.predicate_of is not None:
                (value,) = args if args is not None else list(supplied.values())
                self._give(prim.is_instance(value, symbol.predicate_of))
                return None
            raise Fault(f"`{fn.name}` cannot be called")
        raise Fault(f"{literal(fn)} is not a function: its type is {type_name(fn)}")

    def _bind_args(self, owner, params, args, env, call_id, name):
        if len(args) > len(params):
            raise Fault(f"`{name}` takes {_count(len(params), 'argument')}, {len(args)} given")
        supplied = {p.name: v for p, v in zip(params, args)}
        return self._bind_params(owner, params, supplied, Env({}, env), call_id)

    def _bind(self, owner, supplied: dict, call_id):
        _, package, name = owner
        key = (package, name)
        if not self._deep:
            compiler = _fast(self.program, key)
            if compiler is not None:
                self._fast_call_args = (compiler, key, owner, supplied, call_id)
                return _FAST  # `run` makes the call, with what is left of its budget
        return self._slow_bind(owner, supplied, call_id)

    def _slow_bind(self, owner, supplied: dict, call_id):
        definition = self.program.functions[(owner[1], owner[2])]
        return self._bind_params(owner, definition.params, supplied, Env({}), call_id)

    def _settle(self, outcome):
        """`outcome` of a call made outside `run`: a call left for the fast path is made by
        the machine instead (only `run` has the budget to make it with)."""
        if outcome is _FAST:
            _, _, owner, supplied, call_id = self._fast_call_args
            self._fast_call_args = None
            return self._slow_bind(owner, supplied, call_id)
        return outcome

    def _fast_call(self, ticks) -> None:
        """Make the call `_bind` left for the fast path, spending from `ticks` (what is left
        of the budget) what it spent."""
        compiler, key, owner, supplied, call_id = self._fast_call_args
        self._fast_call_args = None
        budget = self._budget
        left = UNLIMITED if budget is None else length_hint(ticks)
        compiler.begin(left, budget, self._pause)
        try:
            value = compiler.call_top(key, supplied)
        except OutOfFuel:  # asked to stop inside it: the machine makes the call, next slice
            self._slow_bind(*self._resumed(compiler, owner, supplied), call_id)
            compiler.allowance = compiler.spent()  # nothing left: the slice ends
        except RecursionError:
            self._deep = True  # deeper than Python's stack: the machine from here on
            self._slow_bind(*self._resumed(compiler, owner, supplied), call_id)
        except (Fault, Faulting):
            # Run again (it is pure), to fault with a trace; on the machine alone, since the run
            # ends with it: the calls it makes, each a loop's iteration maybe, are not run again
            # on the fast path, up to the fault, one after the other.
            self._deep = True
            self._slow_bind(owner, supplied, call_id)
        except _HookFailed:
            raise
        except Exception:  # NotPure, or any Python error: the machine makes it (and reports what goes wrong)
            self._slow_bind(owner, supplied, call_id)
        else:
            self._give(value)
        if budget is not None:
            spent = min(left, left - compiler.left())  # the call's own slices (`pause`) are not this one's
            if spent > 0:
                next(islice(ticks, spent - 1, spent), None)  # spend it: an exhausted budget ends the slice

    @staticmethod
    def _resumed(compiler, owner, supplied):
        """Where the machine takes a stopped fast call over: at the latest tail call of its
        loop (a pure function and its parameters), else at its start."""
        if compiler.resume_at is None:
            return owner, supplied
        (package, name), parameters = compiler.resume_at
        return ("def", package, name), dict(parameters)

    def _bind_params(self, owner, params, supplied, env, call_id):
        return self._bind_from(owner, params, 0, env, supplied, call_id)

    def _bind_from(self, owner, params, i, env, supplied, call_id):
        while i < len(params):
            param = params[i]
            value = supplied.get(param.name, MISSING)
            if value is not MISSING:
                env.vars[param.name] = value
                i += 1
                continue
            if param.default is None:
                raise Fault(f"missing argument `{param.name}`")
            self.stack.append((BIND, owner, params, i, env, supplied, call_id))
            self.expr, self.env, self.mode_eval = param.default, env, True
            return None
        return self._enter(owner, env, call_id)

    def _enter(self, owner, env, call_id):
        if owner[0] == "fn":
            closure = owner[1]
            fexpr = self.program.exprs[closure.fn_id]
            self._push_ret((RET, "", closure.name, call_id))
            self._body(fexpr.body, env)
            return None
        _, package, name = owner
        definition = self.program.functions[(package, name)]
        if definition.form == "defendpoint":
            self.steps += 1
            args = {p.name: env.vars[p.name] for p in definition.params}
            return Wait(self.steps, package, name, args, call_id if call_id is not None else -1)
        self._push_ret((RET, package, name, call_id))
        self._body(definition.body, env)
        return None

    def _push_ret(self, frame: tuple) -> None:
        """Enter a function. A call in tail position (the caller has nothing left to do:
        its own RET is on top) replaces the caller's frame, so loops written as
        recursion run in constant space, and their snapshots stay small."""
        stack = self.stack
        if stack and stack[-1][0] == RET:
            caller = stack[-1]
            # Remember the caller it replaced, for the stack trace (a self-call in a
            # loop keeps the outermost caller instead).
            tail = caller[4] if caller[1:3] == frame[1:3] else [caller[1], caller[2], caller[3]]
            stack[-1] = (*frame, tail)
        else:
            if self.depth >= MAX_DEPTH:
                raise Fault(f"call stack too deep: more than {MAX_DEPTH} frames (a recursion that does not end?)")
            self.depth += 1
            stack.append((*frame, None))

    # -- built-ins -------------------------------------------------------------------------------

    def _builtin(self, name: str, args: list):
        if name in ("map", "filter"):  # a frame walks the items, calling `f` on each in turn
            f, items = args
            items = prim.as_list(items, name)
            if not items:
                self._give(EMPTY_LIST)
                return None
            self.stack.append((HMAP if name == "map" else HFILTER, f, items, 0, []))
            return self._call_value(f, [items[0]], None)
        if name == "reduce":
            f, init, items = args
            items = prim.as_list(items, "reduce")
            self.stack.append((HREDUCE, f, items, 0))
            self._give(init)
            return None
        self._give(prim.call(name, args))
        return None

    # -- patterns ----------------------------------------------------------------------------------

    def _matches(self, p, value, bound: dict) -> bool:
        kind = type(p)
        if kind is PWild:
            return True
        if kind is PBind:
            bound[p.name] = value
            return True
        if kind is PLit:
            expected = Keyword(p.value) if p.kind is Kind.KEYWORD else p.value
            return prim.equal(value, expected)
        if kind is PMember:
            symbol = self.program.symbols.get(id(p.node))
            if symbol is None:
                return False
            enum = symbol.type
            return value == Member(enum.package, enum.name, symbol.name)
        if kind is PRecord:
            symbol = self.program.symbols.get(id(p.ctor.node))
            if symbol is None or symbol.record is None:
                return False
            record = symbol.record
            if not (isinstance(value, RecordValue) and value.record == record.name
                    and value.package == record.package) or len(p.args) != len(value.values):
                return False
            return all(self._matches(sub, v, bound) for sub, v in zip(p.args, value.values))
        if kind is PInvalid:
            return False
        return False

    # -- with-timeout! -----------------------------------------------------------------------------

    @property
    def timeouts_done(self) -> list:
        return self.__dict__.setdefault("_timeouts_done", [])

    def enter_timeout(self, step: int, fn) -> object:
        """Apply `fn` under a TIMEOUT frame for step `step` (the driver set its timer)."""
        self.stack.append((TIMEOUT, step))
        return self._settle(self._invoke(fn, [], None, None))

    def expire_timeout(self, step: int, value) -> bool:
        """Unwind to step `step`'s TIMEOUT frame and return `value` there; False if it is gone."""
        for i in range(len(self.stack) - 1, -1, -1):
            frame = self.stack[i]
            if frame[0] == TIMEOUT and frame[1] == step:
                self.depth -= sum(1 for f in self.stack[i:] if f[0] == RET)
                del self.stack[i:]
                self._give(value)
                return True
        return False

    # -- tasks ------------------------------------------------------------------------------------------
    #
    # A task is a stack of its own. The machine's fields (stack, mode, value...) are those
    # of the current task; switching saves them in `others` and loads another's. Which task
    # runs when is decided here, the same way for the executor and for replay: a task runs
    # until it waits; the driver then parks it and takes the next task of `ready`; only when
    # none is ready does it give a parked task what it waited for, one at a time, in an
    # order the run's log records (so replay reproduces the interleaving exactly).

    def spawn(self, fn) -> TaskRef:
        """A new task that will call `fn` with no arguments; it is ready at once."""
        tid = self.next_task
        self.next_task += 1
        self.others[tid] = {"new": fn}
        self.ready.append(tid)
        return TaskRef(tid)

    def pop_ready(self) -> int | None:
        return self.ready.pop(0) if self.ready else None

    def live_tasks(self) -> list[int]:
        """The tasks that have not ended, the current one included, in order."""
        return sorted({self.task, *self.others} - set(self.results))

    def switch_to(self, tid: int):
        """Make `tid` the current task. A new task starts (calling its function): the
        outcome of that call (None: run the machine; a `Wait`: it called an endpoint)."""
        if tid == self.task:
            self.take_answer()
            return None
        self.others[self.task] = {"fields": {f: getattr(self, f) for f in _TASK_FIELDS}}
        saved = self.others.pop(tid)
        self.task = tid
        if "raw" in saved:  # restored and not run since: decoded now
            saved = {"fields": self._restored["fields"](saved["raw"])}
        elif "lazy" in saved:  # stored in a part of its own: read now
            saved = self._load_task(tid)
        if "new" in saved:
            self.stack, self.mode_eval, self.expr, self.env, self.value = [], False, None, None, None
            self.depth, self.call_env, self.call_expr, self.fault_at = 0, None, None, None
            return self._settle(self._invoke(saved["new"], [], None, None))
        for f, v in saved["fields"].items():
            setattr(self, f, v)
        self.take_answer()
        return None

    def deliver(self, tid: int, value) -> None:
        """Make the parked task `tid` current and give it what it waited for."""
        self.switch_to(tid)
        self.resume(value)

    def finish_task(self, outcome: tuple) -> list[int]:
        """The current task (not the entry's) ended with `outcome` (see `results`); the tasks
        awaiting it that can now go on become ready. Returns them."""
        tid = self.task
        self.results[tid] = outcome
        self.__dict__.setdefault("_ended", set()).add(tid)
        return self._wake_awaiters()

    def await_tasks(self, mode: str, refs) -> tuple | None:
        """`await!` ("one"), `await-all!` ("all") or `await-any!` ("any") of the current task:
        ("ok", value) or ("fault", message) when it can be answered now, else None (the task
        is recorded as awaiting them, and the driver parks it)."""
        tids = []
        for ref in refs:
            if not isinstance(ref, TaskRef):
                raise Fault(f"expected a task, not {literal(ref)}")
            if ref.task == self.task:
                raise Fault("a task cannot await itself")
            if ref.task not in self.results and ref.task not in self.others:
                raise Fault(f"no task {ref.task} in this run")
            tids.append(ref.task)
        if mode == "any" and not tids:
            raise Fault("`await-any!` needs at least one task")
        answer = self._answer(mode, tids)
        if answer is None:
            self.awaiting[self.task] = (mode, tids)
        return answer

    def await_call(self, endpoint: str, args: dict) -> tuple | None:
        """The call `(await! t)`, `(await-all! ts)` or `(await-any! ts)` of the current task
        (`endpoint` its name in `flowmetal.task`), as `await_tasks` answers it. The executor
        and replay both make it here, so that they read the arguments the same way."""
        if endpoint == "await!":
            return self.await_tasks("one", [args["t"]])
        refs = args["ts"]
        if not isinstance(refs, (List, list, tuple)):
            raise Fault(f"`{endpoint}` needs a list of tasks, not {literal(refs)}")
        return self.await_tasks("all" if endpoint == "await-all!" else "any", list(refs))

    def task_to_cancel(self, ref) -> int:
        """The task `(cancel! ref)` of the current task names (checked: a task, not itself)."""
        if not isinstance(ref, TaskRef):
            raise Fault(f"`cancel!` needs a task, not {literal(ref)}")
        if ref.task == self.task:
            raise Fault("a task cannot cancel itself: return from it instead")
        return ref.task

    def _answer(self, mode: str, tids: list[int]) -> tuple | None:
        results = self.results
        if mode == "any":
            for tid in results:  # in the order they ended
                if tid in tids:
                    return self._outcome(tid)
            return None
        for tid in results:
            if tid in tids and results[tid][0] != "ok":
                return self._outcome(tid)  # the first to fail
        if all(t in results for t in tids):
            values = [results[t][1] for t in tids]
            return ("ok", values[0] if mode == "one" else List(values))
        return None

    def _outcome(self, tid: int) -> tuple:
        result = self.results[tid]
        if result[0] == "ok":
            return result
        if result[0] == "cancelled":
            return ("fault", f"task {tid} was cancelled")
        _, message, trace = result
        lines = "".join(f"\n    in {p}/{f}, line {line}" for p, f, line in trace)
        return ("fault", f"task {tid} failed: {message}{lines}")

    def _wake_awaiters(self) -> list[int]:
        woken = []
        for tid, (mode, tids) in list(self.awaiting.items()):
            answer = self._answer(mode, tids)
            if answer is not None:
                del self.awaiting[tid]
                self.answers[tid] = answer
                self.ready.append(tid)
                woken.append(tid)
        return woken

    def take_answer(self) -> None:
        """Give the current task the answer of the tasks it awaited, if they answered it: its
        value, or their fault raised where it waits."""
        answer = self.answers.pop(self.task, None)
        if answer is None:
            return
        if answer[0] == "ok":
            self.resume(answer[1])
            return
        self.fault_at = None
        raise Fault(answer[1])

    def cancel_task(self, tid: int) -> bool:
        """End task `tid` as cancelled (not the current one). False if it had ended already."""
        if tid in self.results:
            return False
        self.ready = [t for t in self.ready if t != tid]
        self.awaiting.pop(tid, None)
        self.others.pop(tid, None)
        self.results[tid] = ("cancelled",)
        self.__dict__.setdefault("_ended", set()).add(tid)
        self._wake_awaiters()
        return True

    def timeout_owner(self, step: int) -> int | None:
        """The task whose stack holds step `step`'s `with-timeout!` frame."""
        for tid in [self.task, *self.others]:
            saved = self.others.get(tid, {})
            if "lazy" in saved:
                saved = self.others[tid] = self._load_task(tid)
            if "raw" in saved:  # as stored: [tag, step] frames
                if any(f[0] == TIMEOUT and f[1] == step for f in saved["raw"]["frames"]):
                    return tid
                continue
            stack = self.stack if tid == self.task else saved.get("fields", {}).get("stack", ())
            if any(f[0] == TIMEOUT and f[1] == step for f in stack):
                return tid
        return None


    def snapshot(self, full: bool = False) -> dict:
        """The whole state as JSON-able data: frames by their schema, environments in a shared table.

        Tasks restored from a one-blob snapshot and not run since are written back as they were
        read (`raw`), with the table they refer to kept: resuming a run of a thousand waiting
        tasks to give one its result decodes and encodes that one, not all. The table then keeps
        entries nobody refers to any more; when it has grown past twice its size at the last
        full snapshot, or with `full`, every task is decoded and the table made afresh. A state
        restored from parts (`snapshot_parts`) is read whole first."""
        self._load_all_tasks()
        envs: dict[int, int] = {}
        table: list = []
        base = self.__dict__.get("_restored")
        old_refs: dict[int, int] = {}
        raw = [t for t, saved in self.others.items() if "raw" in saved]
        compacted = self.__dict__.get("_compacted", 0)
        if raw and base is not None and not full and len(base["table"]) <= 2 * compacted + 1024:
            table = list(base["table"])
            old_refs = {id(env): ref for ref, env in base["envs"].items()}
        else:
            for t in raw:
                self.others[t] = {"fields": base["fields"](self.others[t]["raw"])}

        def env_ref(env):
            if env is None:
                return None
            key = id(env)
            if key not in envs:
                ref = old_refs.get(key)
                if ref is None:
                    ref = len(table)
                    table.append(None)
                envs[key] = ref
                table[ref] = [env_ref(env.parent), {k: enc(v) for k, v in env.vars.items()}]
            return envs[key]

        enc, task_state = _encoding(self.program, env_ref)
        out = task_state(self.stack, self.mode_eval, self.expr, self.env, self.value, self.call_env)
        if self.next_task > 1:  # tasks were spawned: theirs too (a run without keeps the plain form)
            others = {}
            for tid, saved in self.others.items():
                if "new" in saved:
                    others[str(tid)] = {"new": enc(saved["new"])}
                elif "raw" in saved:
                    others[str(tid)] = saved["raw"]
                else:
                    f = saved["fields"]
                    others[str(tid)] = task_state(f["stack"], f["mode_eval"], f["expr"], f["env"], f["value"],
                                                  f["call_env"])
            out["tasks"] = {"task": self.task, "next": self.next_task, "ready": list(self.ready), "others": others,
                            **self._task_tables(enc)}
        out["envs"] = table
        out["steps"], out["program"] = self.steps, self.program.hash
        if self.next_task > 1:
            if not old_refs:  # a table made afresh: the size the next ones are measured against
                self._compacted = len(table)
            out["tasks"]["compacted"] = self.__dict__.get("_compacted", 0)
        return out

    def _task_tables(self, enc) -> dict:
        results = {str(t): ([r[0], enc(r[1])] if r[0] == "ok" else list(r)) for t, r in self.results.items()}
        answers = {str(t): ([a[0], enc(a[1])] if a[0] == "ok" else list(a)) for t, a in self.answers.items()}
        return {"results": results, "awaiting": {str(t): [m, ts] for t, (m, ts) in self.awaiting.items()},
                "answers": answers}

    # -- a state in parts ---------------------------------------------------------------------------
    #
    # A run with tasks is stored in parts, so that a resume reads and writes what it touches:
    #   the head      the current task's fields (as the plain form), which tasks are live, ready,
    #                 awaiting, their results and answers, counters; `snapshot_parts`' first value
    #   "t<tid>"      another task: its frames (or {"new": fn}, not started yet)
    #   "e<ref>"      an environment: [parent ref, its names' values, the refs it holds]
    # Every part names the environments it refers to (`refs`), so that restoring one reads those
    # it lacks a level at a time, not one by one. An environment has one ref for the run's life:
    # tasks restored in one process share the same `Env` objects, however many parts name it.
    # Another task is read when it is switched to; a part is written when it is new or changed
    # (an environment whose text differs from what was read: a `let` bound a name), and deleted
    # when its task ends. Environments nobody refers to any more are left until the refs handed
    # out since the last full rewrite pass twice the number that rewrite kept (plus 1,024): then
    # every task is read, the live environments numbered afresh and the old range deleted.

    def snapshot_parts(self, full: bool = False) -> tuple[dict, dict[str, str | None]]:
        """The head and the parts to write (a text, or None to delete it) of a run with tasks:
        what changed, or with `full` (and when the refs handed out have grown past the bound)
        everything, the environments numbered afresh."""
        st = self.__dict__.get("_parts")
        parts: dict[str, str | None] = {}
        if st is None:  # started here, or restored from one blob: every part is written
            st = self._parts = _parts_state(None, 0, 0, 0)
            full = True
        if full:
            self._load_all_tasks()
            for t, saved in list(self.others.items()):
                if "raw" in saved:
                    self.others[t] = {"fields": self._restored["fields"](saved["raw"])}
            parts.update((f"e{r}", None) for r in range(st["base"], st["next"]))
            st.update(base=st["next"], envs={}, refs={}, texts={}, data={})
        seen: dict[int, int] = {}
        collect: list[set] = [set()]

        def env_ref(env):
            if env is None:
                return None
            key = id(env)
            ref = seen.get(key)
            if ref is None:
                ref = st["refs"].get(key)
                if ref is None:
                    ref = st["next"]
                    st["next"] += 1
                    st["refs"][key] = ref
                    st["envs"][ref] = env
                seen[key] = ref
                collect.append(set())
                parent = env_ref(env.parent)
                vars_ = {k: enc(v) for k, v in env.vars.items()}
                mine = collect.pop()
                text = json.dumps([parent, vars_, sorted(mine)], separators=(",", ":"))
                if st["texts"].get(ref) != text:
                    st["texts"][ref] = text
                    parts[f"e{ref}"] = text
            collect[-1].add(ref)
            return ref

        enc, task_state = _encoding(self.program, env_ref)
        head = task_state(self.stack, self.mode_eval, self.expr, self.env, self.value, self.call_env)
        tables = self._task_tables(enc)
        head["refs"] = sorted(collect[0])
        for tid, saved in self.others.items():
            if tid in self.results or "lazy" in saved or (saved.get("clean") and not full):
                continue
            collect.append(set())
            if "new" in saved:
                data = {"new": enc(saved["new"])}
            else:
                f = saved["fields"]
                data = task_state(f["stack"], f["mode_eval"], f["expr"], f["env"], f["value"], f["call_env"])
            data["refs"] = sorted(collect.pop())
            parts[f"t{tid}"] = json.dumps(data, separators=(",", ":"))
            saved["clean"] = True
        for ref, env in list(st["envs"].items()):  # a name bound in a scope only other parts see
            if id(env) not in seen:
                env_ref(env)
        ended = self.__dict__.get("_ended", set())
        parts.update((f"t{t}", None) for t in ended)
        ended.clear()
        parts[f"t{self.task}"] = None  # the current task is in the head
        if full:
            st["compacted"] = len(seen)
        live = sorted(t for t in self.others if t not in self.results)
        head["tasks"] = {"task": self.task, "next": self.next_task, "ready": list(self.ready), "live": _ranges(live),
                         **tables, "parts": {"next": st["next"], "base": st["base"], "compacted": st["compacted"]}}
        head["steps"], head["program"] = self.steps, self.program.hash
        if not full and st["next"] - st["base"] > 2 * st["compacted"] + COMPACT_SLACK:
            # Past the bound: rewritten whole now, by the commit that grew it, not a later resume.
            head, more = self.snapshot_parts(full=True)
            parts.update(more)
        return head, parts

    def _env_of(self, ref):
        if ref is None:
            return None
        st = self._parts
        env = st["envs"].get(ref)
        if env is None:
            data = st["data"].pop(ref, None)
            if data is None:
                self._prefetch([ref])
                data = st["data"].pop(ref)
            env = st["envs"][ref] = Env({}, None)
            st["refs"][id(env)] = ref
            env.parent = self._env_of(data[0])
            env.vars = {k: decode(v, self._env_of) for k, v in data[1].items()}
        return env

    def _prefetch(self, refs) -> None:
        """Read the environments `refs` lead to that are not here yet, a level at a time."""
        st = self._parts
        todo = [r for r in dict.fromkeys(refs) if r not in st["envs"] and r not in st["data"]]
        while todo:
            texts = st["load"]([f"e{r}" for r in todo])
            found = []
            for r in todo:
                text = texts.get(f"e{r}")
                if text is None:
                    raise Fault(f"the run's stored state lacks its environment {r}")
                data = st["data"][r] = json.loads(text)
                st["texts"][r] = text
                found += data[2]
            todo = [r for r in dict.fromkeys(found) if r not in st["envs"] and r not in st["data"]]

    def _load_task(self, tid: int, text: str | None = None) -> dict:
        """Another task's stored part, decoded (it is about to run, or be read whole)."""
        if text is None:
            text = self._parts["load"]([f"t{tid}"]).get(f"t{tid}")
        if text is None:
            raise Fault(f"the run's stored state lacks task {tid}")
        data = json.loads(text)
        self._prefetch(data.get("refs", ()))
        if "new" in data:
            return {"new": decode(data["new"], self._env_of)}
        return {"fields": _decoding(self.program, self._env_of)(data)}

    def _load_all_tasks(self) -> None:
        lazy = [t for t, saved in self.others.items() if "lazy" in saved]
        if not lazy:
            return
        texts = self._parts["load"]([f"t{t}" for t in lazy])
        self._prefetch([r for text in texts.values() for r in json.loads(text).get("refs", ())])
        for t in lazy:
            self.others[t] = self._load_task(t, texts.get(f"t{t}"))

    @classmethod
    def restore(cls, program: Program, data: dict, load=None) -> "Machine":
        """The machine of a snapshot: the plain form, or the head of one in parts, whose other
        parts `load(keys) -> {key: text}` reads when they are needed."""
        if "envs" not in data:
            return cls._restore_parts(program, data, load)
        machine = cls(program)
        table = data["envs"]
        envs: dict[int, Env] = {}

        def env_of(ref):
            if ref is None:
                return None
            if ref not in envs:
                env = envs[ref] = Env({}, None)
                parent_ref, vars_ = table[ref]
                env.parent = env_of(parent_ref)
                env.vars = {k: decode(v, env_of) for k, v in vars_.items()}
            return envs[ref]

        task_fields = _decoding(program, env_of)
        for f, v in task_fields(data).items():
            setattr(machine, f, v)
        machine.steps = data["steps"]
        tasks = data.get("tasks")
        if tasks is not None:
            machine.task, machine.next_task, machine.ready = tasks["task"], tasks["next"], list(tasks["ready"])
            for t, saved in tasks["others"].items():
                # Another task's stack is decoded when it runs again (`switch_to`), not here.
                machine.others[int(t)] = ({"new": decode(saved["new"], env_of)} if "new" in saved
                                          else {"raw": saved})
            machine._restored = {"table": table, "envs": envs, "fields": task_fields}
            machine._compacted = tasks.get("compacted", 0)
            machine._restore_tables(tasks, env_of)
        return machine

    @classmethod
    def _restore_parts(cls, program: Program, data: dict, load) -> "Machine":
        if load is None:
            raise ValueError("a state stored in parts needs its parts to be restored")
        machine = cls(program)
        tasks = data["tasks"]
        counts = tasks["parts"]
        machine._parts = _parts_state(load, counts["next"], counts["base"], counts["compacted"])
        machine._prefetch(data.get("refs", ()))
        for f, v in _decoding(program, machine._env_of)(data).items():
            setattr(machine, f, v)
        machine.steps = data["steps"]
        machine.task, machine.next_task, machine.ready = tasks["task"], tasks["next"], list(tasks["ready"])
        for start, end in tasks["live"]:
            for t in range(start, end + 1):
                machine.others[t] = {"lazy": True}  # read when it runs again (`switch_to`)
        machine._restore_tables(tasks, machine._env_of)
        return machine

    def _restore_tables(self, tasks: dict, env_of) -> None:
        self.results = {int(t): ((r[0], decode(r[1], env_of)) if r[0] == "ok" else
                                 (r[0], r[1], [tuple(x) for x in r[2]]) if r[0] == "fault" else tuple(r))
                        for t, r in tasks["results"].items()}
        self.awaiting = {int(t): (m, list(ts)) for t, (m, ts) in tasks["awaiting"].items()}
        self.answers = {int(t): ((a[0], decode(a[1], env_of)) if a[0] == "ok" else tuple(a))
                        for t, a in tasks["answers"].items()}


def _parts_state(load, next_ref: int, base: int, compacted: int) -> dict:
    """What a machine stored in parts keeps: how to read parts, the environments read or written
    and their refs (`envs`, `refs` by object id), their texts as stored (`texts`), those read and
    not decoded yet (`data`), and the refs' counters."""
    return {"load": load, "envs": {}, "refs": {}, "texts": {}, "data": {}, "next": next_ref, "base": base,
            "compacted": compacted}


def _ranges(tids: list[int]) -> list[list[int]]:
    """Sorted task ids as [first, last] runs: a thousand tasks spawned together are one pair."""
    out: list[list[int]] = []
    for t in tids:
        if out and out[-1][1] == t - 1:
            out[-1][1] = t
        else:
            out.append([t, t])
    return out


def _encoding(program: Program, env_ref):
    """`enc(value)` and `task_state(...)`: a task's fields as JSON-able data, environments
    named by `env_ref(env) -> int`."""
    ids = program.ids

    def enc(value):
        return encode(value, env_ref)

    def part(kind, value):
        if kind == "n":
            return value
        if kind == "X":
            return ids[id(value)]
        if kind == "E":
            return env_ref(value)
        if kind == "v":
            return enc(value)
        if kind == "L":
            return [enc(v) for v in value]
        if kind == "D":
            return {k: enc(v) for k, v in value.items()}
        if kind == "B":
            return [ids[id(x)] for x in value]
        if kind == "P":
            return [[name, ids[id(x)]] for name, x in value]
        if kind == "O":
            return ["fn", enc(value[1])] if value[0] == "fn" else list(value)
        if kind == "Q":
            return None  # parameters: found again from the frame's owner
        raise AssertionError(kind)

    def task_state(stack, mode_eval, expr, env, value, call_env) -> dict:
        return {
            "frames": [[f[0], *(part(k, v) for k, v in zip(SCHEMA[f[0]], f[1:]))] for f in stack],
            "mode_eval": mode_eval,
            "expr": ids[id(expr)] if mode_eval else None,
            "env": env_ref(env) if mode_eval else None,
            "value": None if mode_eval else enc(value),
            **({"call_env": env_ref(call_env)} if call_env is not None else {}),
        }

    return enc, task_state


def _decoding(program: Program, env_of):
    """`task_fields(data)`: a task's fields from `_encoding`'s data."""
    exprs = program.exprs

    def part(kind, value, owner=None):
        if kind == "n":
            return value
        if kind == "X":
            return exprs[value]
        if kind == "E":
            return env_of(value)
        if kind == "v":
            return decode(value, env_of)
        if kind == "L":
            return [decode(v, env_of) for v in value]
        if kind == "D":
            return {k: decode(v, env_of) for k, v in value.items()}
        if kind == "B":
            return [exprs[x] for x in value]
        if kind == "P":
            return [(name, exprs[x]) for name, x in value]
        if kind == "O":
            return ("fn", decode(value[1], env_of)) if value[0] == "fn" else tuple(value)
        if kind == "Q":
            if owner[0] == "fn":
                return exprs[owner[1].fn_id].params
            return program.functions[(owner[1], owner[2])].params
        raise AssertionError(kind)

    def task_fields(data: dict) -> dict:
        stack, depth = [], 0
        for frame in data["frames"]:
            tag, rest = frame[0], frame[1:]
            schema = SCHEMA[tag]
            owner = part("O", rest[0]) if schema[0] == "O" else None
            parts = [owner if k == "O" else part(k, v, owner) for k, v in zip(schema, rest)]
            stack.append((tag, *parts))
            if tag == RET:
                depth += 1
        mode_eval = data["mode_eval"]
        return {
            "stack": stack, "depth": depth, "mode_eval": mode_eval,
            "expr": exprs[data["expr"]] if mode_eval else None,
            "env": env_of(data["env"]) if mode_eval else None,
            "value": None if mode_eval else decode(data["value"], env_of),
            "call_env": env_of(data.get("call_env")), "call_expr": None, "fault_at": None,
        }

    return task_fields


# What each frame holds, for snapshots: n plain, X expression, E environment,
# v value, L list of values, D map of values, B body (expressions), P call plan,
# O owner of parameters (a closure, or a definition), Q its parameters.
SCHEMA = {
    CALL: "XE", ARGS: "XEvPLn", BIND: "OQnEDn", RET: "nnnn", BODY: "BEn", IF: "XE", WHEN: "XE",
    LET: "XEn", COND: "XEn", LOGIC: "XEn", MATCH: "XE", VEC: "XEL", MAP: "XEL",
    HMAP: "vvnL", HFILTER: "vvnL", HREDUCE: "vvn", TIMEOUT: "n",
}


def _fast(program: Program, key: tuple[str, str]):
    """The compiler holding `key`'s fast path, or None when it has none (see `fast`). One
    compiler per program and thread: a compiler holds the budget of the call it makes."""
    states = program.__dict__.get("_fast")
    if states is None:
        states = program.__dict__.setdefault("_fast", {})
    thread = threading.get_ident()
    state = states.get(thread)
    if state is None:
        state = states[thread] = (pure_functions(program), Compiler(program, set()), {})
    pure, compiler, usable = state
    if key not in pure:
        return None
    ok = usable.get(key)
    if ok is None:
        try:
            compiler.function(key)
            ok = True
        except (NotPure, RecursionError):  # nested deeper than Python's stack: the machine runs it
            ok = False
        usable[key] = ok
    return compiler if ok else None



__all__ = ["Machine", "Env", "Fault", "Wait", "Done", "Slice", "Record", "Enum", "Invalid"]


def _count(n: int, noun: str) -> str:
    """`1 argument`, `2 arguments`: for messages."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
