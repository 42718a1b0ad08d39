"""Python connectors: endpoints implemented as decorated Python functions (SPEC section 7).

How a connector is written:

    from flowmetal.connectors.sdk import endpoint

    @endpoint("acme.billing/charge!")
    def charge(amount, currency="EUR"):
        return payments.charge(amount, currency)   # must fit the endpoint's declared type

and run against a store with `flowmetal connector billing.py --store S` (a
dotted module name works too). The program declares the endpoint, with its
types, in a `defendpoint`:

    (defendpoint charge! [amount : int? currency : str? :default "EUR"] : int?)

How a step is handled: `run_connector` claims pending steps for the registered
names (with a lease), calls the function with the step's arguments as keyword
arguments (a parameter `card-number` arrives as `card_number`), and checks the
value it returns against the endpoint's declared return type, read from the
run's own program (loaded from its stored sources once per code hash, so a
connector always checks against the version of the program the run is on):

    a value of the declared type           complete_claimed_step: the run resumes with it
    a value of another type                fail_claimed_step: the run fails, naming the
                                           endpoint, the declared type and the value
    a value stored in more than max_result  fail_claimed_step, naming its size and the limit
      bytes (1 MiB, `--max-result`)          (never a giant row in the store)
    an exception raised by the function    fail_claimed_step, likewise, with the exception

Why check here: the type checker trusts a `defendpoint`'s declared type
everywhere the result flows, so a connector returning something else would
break the program's reasoning far from its cause. Refusing it at the boundary
fails the run at the step that went wrong, with a message that names it.

Values, both ways: nil/bool/int/float/str are Python's None/bool/int/float/str;
lists and vectors arrive as tuples (return lists or tuples); maps are dicts,
keyed by their Flowmetal keys (`Keyword` objects for `:kw`); records and enum
members are the runtime's `RecordValue` and `Member` (re-exported here).

How functions run: up to `concurrency` (16) at once, each on a thread of the
connector's pool (an `async def` function runs its own event loop there), so a
slow function holds its own thread and never the others'. The connector claims
no more steps than it has threads, so a claimed step is always being performed.
Its own thread alone uses the store (an SQLite connection serves one thread at
a time): it claims, renews every lease/3 seconds the leases of the steps whose
functions are running (`renew_step_leases`; the lease is 30 s by default), and
records results under the claim (`complete_claimed_step`, `fail_claimed_step`).
So a function slower than the lease is not called again by another connector
meanwhile, and a step that is no longer ours when its function returns (its run
was cancelled, or our lease lapsed, say while the store was locked, and another
connector claimed it) has its result dropped, with a log line. (A running Python
function cannot be stopped from outside: it runs on until it returns or its
process exits.)

Delivery is at least once: a connector that dies while a function runs leaves
the step claimed until its lease runs out, and the function is called again
for it (by this connector restarted, or another). Stopping (SIGINT or SIGTERM
for `flowmetal connector`, `stop` for `serve`), the connector waits up to
`grace` seconds (5) for the functions running, records what they return, and
gives the other steps back (`release_steps`), so the next connector performs
them at once rather than when their leases run out. The step's idempotency key
(`RUN:STEP`, the same on every retry) is available to a function that asks for
a `step` parameter, or any function through `current_step()`; pass it on to the
service you call so it can refuse to act twice. The store applies one result.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.util
import inspect
import json
import logging
import os
import queue
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from flowmetal.connectors import Presence, pause, stopped
from flowmetal.lang.types import ListOf, MapOf, Record, Type, Union, show
from flowmetal.runtime.primitives import is_instance
from flowmetal.runtime.program import Program, ProgramError, load
from flowmetal.runtime.store import StoreError
from flowmetal.runtime.wakeups import Wakeup
from flowmetal.runtime.values import (
    FUNCTIONS, Keyword, List, Map, Member, RecordValue, decode, encode, key_value, literal, map_key,
)

log = logging.getLogger("flowmetal.connectors.sdk")

_NAME = re.compile(r"^[^\s/\[\]{}()\"]+/[^\s/\[\]{}()\"]+$")


class ConnectorError(Exception):
    """A connector cannot start as asked (no such module, no endpoints): a message for the user."""


@dataclass(frozen=True)
class Step:
    """The step a function is called for: its run, number, endpoint and idempotency key."""
    run_id: str
    step: int
    endpoint: str
    key: str


_current: contextvars.ContextVar[Step | None] = contextvars.ContextVar("flowmetal_step", default=None)


def current_step() -> Step | None:
    """The step being handled, inside an endpoint function (None elsewhere)."""
    return _current.get()


# -- registering ------------------------------------------------------------------------------------------

REGISTRY: dict[str, Callable] = {}


def endpoint(name: str) -> Callable[[Callable], Callable]:
    """Register a function as the implementation of the endpoint `package/name!`.
    The function is returned unchanged (it can still be called and tested directly)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"an endpoint name is `package/name!`, e.g. \"acme.billing/charge!\", not {name!r}")

    def register(fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(f"@endpoint({name!r}) decorates a function, not {fn!r}")
        previous = REGISTRY.get(name)
        if previous is not None and _where(previous) != _where(fn):
            raise ValueError(f"`{name}` is implemented twice: by {_where(previous)} and by {_where(fn)}")
        REGISTRY[name] = fn
        fn.__flowmetal_endpoint__ = name
        return fn
    return register


def _where(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def load_module(target: str | ModuleType) -> ModuleType:
    """A module by dotted name or by the path of a .py file (its folder joins `sys.path`,
    so it can import its neighbours)."""
    if isinstance(target, ModuleType):
        return target
    path = Path(target)
    if target.endswith(".py") or os.sep in target or (os.altsep and os.altsep in target):
        if not path.is_file():
            raise ConnectorError(f"{target}: no such file")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
        existing = sys.modules.get(name)
        if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path.resolve():
            return existing
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConnectorError(f"{target}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name and target.startswith(error.name):
            raise ConnectorError(f"no module named `{target}`") from error
        raise


def endpoints_of(module: ModuleType) -> dict[str, Callable]:
    """The endpoints a module implements: its decorated functions, and those registered
    while it was imported from modules it imports."""
    found: dict[str, Callable] = {}
    for value in vars(module).values():
        name = getattr(value, "__flowmetal_endpoint__", None)
        if isinstance(name, str) and callable(value):
            found[name] = value
    for name, fn in REGISTRY.items():
        if getattr(fn, "__module__", None) == module.__name__:
            found.setdefault(name, fn)
    return found


# -- values -----------------------------------------------------------------------------------------------

def to_python(value):
    """A Flowmetal value for a Python function: lists as tuples, maps as dicts with plain keys
    (true/false as bools)."""
    if isinstance(value, (List, tuple)):
        return tuple(to_python(v) for v in value)
    if isinstance(value, (Map, dict)):
        return {key_value(k): to_python(v) for k, v in value.items()}
    return value


def from_python(value):
    """A function's result as a Flowmetal value: lists and tuples become lists, dicts maps (with
    the runtime's keys)."""
    if isinstance(value, (list, tuple, List)):
        return List([from_python(v) for v in value])
    if isinstance(value, (dict, Map)):
        return Map([(map_key(from_python(key_value(k))), from_python(v)) for k, v in value.items()])
    if isinstance(value, RecordValue):
        return RecordValue(value.package, value.record, tuple(value.fields), tuple(from_python(v) for v in value.values))
    return value


def _flowmetal(value) -> bool:
    """Whether a value (deeply) is one the store can hold as a result."""
    if value is None or isinstance(value, (bool, int, float, str, Keyword, Member)):
        return True
    if isinstance(value, (List, tuple)):
        return all(_flowmetal(v) for v in value)
    if isinstance(value, (Map, dict)):
        return all(_flowmetal(key_value(k)) and _flowmetal(v) for k, v in value.items())
    if isinstance(value, RecordValue):
        return all(_flowmetal(v) for v in value.values)
    return False


def conforms(value, t: Type) -> bool:
    """`is_instance`, and the elements of lists, the keys and values of maps and the fields
    of records too: a result is checked all the way down, since the program trusts it so."""
    if isinstance(t, Union):
        return any(conforms(value, m) for m in t.members)
    if not is_instance(value, t):
        return False
    if isinstance(t, ListOf):
        return all(conforms(v, t.elem) for v in value)
    if isinstance(t, MapOf):
        return all(conforms(key_value(k), t.key) and conforms(v, t.val) for k, v in value.items())
    if isinstance(t, Record) and t.fields:
        if tuple(value.fields) != tuple(name for name, _ in t.fields):
            return False
        return all(conforms(v, ft) for v, (_, ft) in zip(value.values, t.fields))
    return True


def describe(value) -> str:
    """A value for a message: its Flowmetal literal, or Python's repr when it has none."""
    if _flowmetal(value) and not isinstance(value, FUNCTIONS):
        text = literal(value)
    else:
        text = f"{value!r} (a Python {type(value).__name__}, which has no Flowmetal form)"
    return text if len(text) <= 300 else text[:297] + "..."


def declared_in(program: Program, endpoint_name: str) -> Type:
    """The return type a program declares for an endpoint (raises `ConnectorError`)."""
    package, _, name = endpoint_name.rpartition("/")
    scope = program.scopes.get(package)
    symbol = scope.decls.get(name) if scope is not None else None
    if symbol is None or symbol.kind != "endpoint" or symbol.sig is None:
        raise ConnectorError(f"the run's program declares no endpoint `{endpoint_name}`")
    return symbol.sig.ret


def call(fn: Callable, step: Step, args: dict):
    """Call an endpoint function for a step: its arguments as keyword arguments (`card-number`
    as `card_number`), the step as `step` when it asks for it and as `current_step()`; an
    `async def` function's coroutine run to its end on an event loop of its own."""
    kwargs = {_keyword_name(name): to_python(value) for name, value in args.items()}
    try:
        accepts = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        accepts = {}
    if "step" in accepts and "step" not in kwargs:
        kwargs["step"] = step
    token = _current.set(step)
    try:
        result = fn(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return result
    finally:
        _current.reset(token)


def perform(fn: Callable, step: Step, args: dict, declared: Type, max_result: int | None = None) -> tuple[str, str]:
    """Call the function and judge its result: ("complete", stored value) or ("fail", message),
    as the module's docstring says. Touches no store (a connector's pool thread, or the
    executor's for a step performed in the run's own process)."""
    max_result = MAX_RESULT if max_result is None else max_result
    try:
        raw = call(fn, step, args)
    except BaseException as error:  # noqa: BLE001 - the function's failure fails the step, not the loop
        where = ""
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
        log.warning("`%s` raised for step %s of run %s", step.endpoint, step.step, step.run_id, exc_info=True)
        return "fail", f"`{step.endpoint}` raised {type(error).__name__}: {error}{where}"
    value = from_python(raw)
    if not _flowmetal(value) or not conforms(value, declared):
        return "fail", (f"`{step.endpoint}` returned {describe(value)}, which is not of its declared "
                        f"type {show(declared)}")
    stored = json.dumps(encode(value))
    size = len(stored.encode("utf-8", "surrogatepass"))
    if size > max_result:
        return "fail", (f"`{step.endpoint}` returned a value of {size} bytes (stored form), over this "
                        f"connector's limit of {max_result} bytes ({max_result / (1 << 20):g} MiB; "
                        f"`--max-result`): the value was not recorded")
    return "complete", stored


# -- the connector ----------------------------------------------------------------------------------------

DEFAULT_LEASE = 30.0        # seconds a claim lasts without renewal
DEFAULT_CONCURRENCY = 16    # endpoint functions running at once, each on a thread of its own
SHUTDOWN_GRACE = 5.0        # seconds to let running functions finish when stopping
MAX_RESULT = 1024 * 1024    # bytes of a result's stored form: a larger one fails the step


def default_worker() -> str:
    return f"connector:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _keyword_name(name: str) -> str:
    return name.replace("-", "_")


class _Pool:
    """Up to `size` threads calling endpoint functions, started as they are needed; `submit`
    gives a future. Daemon threads: a Python function cannot be stopped from outside, and one
    that never returns must not keep a stopping connector alive (its step is given back)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self.queue.put((future, fn, args))
        if len(self.threads) < self.size:
            thread = threading.Thread(target=self._work, name=f"flowmetal-endpoint-{len(self.threads) + 1}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the thread that records it
                future.set_exception(error)

    def close(self) -> None:
        """Let the idle threads end (busy ones end when their function returns)."""
        for _ in self.threads:
            self.queue.put(None)
        self.threads = []


@dataclass
class _Flight:
    """A claimed step whose function is running, under the claim `epoch` (`claim_steps`'s): `lost`
    once a renewal found the claim gone."""
    step: Step
    future: Future
    epoch: int | None = None
    lost: bool = False


class Connector:
    """Serves a set of `@endpoint` functions from a store: `run_once` for one batch, `serve` for a loop.

    The store is used from the calling thread only (claiming, renewing, recording); the
    functions run on up to `concurrency` threads of the connector's pool, so a slow one holds
    its own thread, never the others'. `close` (or leaving a `with`) gives back the steps
    still running and lets the pool's idle threads end.
    """

    def __init__(self, endpoints: dict[str, Callable], store, *, worker: str | None = None,
                 lease: float = DEFAULT_LEASE, concurrency: int = DEFAULT_CONCURRENCY,
                 grace: float = SHUTDOWN_GRACE, max_result: int = MAX_RESULT) -> None:
        if not endpoints:
            raise ConnectorError("no endpoints to serve: decorate functions with @endpoint(\"package/name!\")")
        if not lease > 0:
            raise ConnectorError(f"the lease must be a positive number of seconds, not {lease}")
        if concurrency < 1:
            raise ConnectorError(f"the concurrency must be at least 1, not {concurrency}")
        if max_result < 1:
            raise ConnectorError(f"the largest result must be at least 1 byte, not {max_result}")
        self.max_result = max_result
        self.endpoints = dict(endpoints)
        self.store = store
        self.worker = worker or default_worker()
        self.lease = lease
        self.renew_every = lease / 3  # two renewals can fail before the lease lapses
        self.concurrency = concurrency
        self.grace = grace
        self.pool = _Pool(concurrency)
        self.in_flight: dict[tuple[str, int], _Flight] = {}
        self.renewed = time.monotonic()
        self._programs: dict[str, Program] = {}
        self._failed_programs: dict[str, str] = {}
        self.handled = 0
        self.presence = Presence(store, self.worker, "connector", self.endpoints)

    def close(self) -> None:
        try:
            self.give_back()
        finally:
            try:
                self.pool.close()
            finally:
                self.presence.close()

    def __enter__(self) -> "Connector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the declared type --

    def declared(self, run_id: str, endpoint_name: str) -> Type:
        """The return type the run's program declares for an endpoint (raises `ConnectorError`)."""
        run = self.store.get_run(run_id)
        if run is None:
            raise ConnectorError(f"no run `{run_id}` in the store")
        if run.code_hash in self._failed_programs:
            raise ConnectorError(self._failed_programs[run.code_hash])
        program = self._programs.get(run.code_hash)
        if program is None:
            try:
                program = load(self.store.get_sources(run.program))
            except (ProgramError, StoreError) as error:
                why = "does not check" if isinstance(error, ProgramError) else "cannot be read"
                self._failed_programs[run.code_hash] = f"the run's program {why}: {error}"
                raise ConnectorError(self._failed_programs[run.code_hash]) from error
            self._programs[run.code_hash] = program
        return declared_in(program, endpoint_name)

    # -- one step, on a thread of the pool --

    def call(self, fn: Callable, step: Step, args: dict):
        return call(fn, step, args)

    def perform(self, fn: Callable, step: Step, args: dict, declared: Type) -> tuple[str, str]:
        """Call the function and judge its result (`perform`). Touches no store: it runs on a pool thread."""
        return perform(fn, step, args, declared, self.max_result)

    # -- claiming, renewing, recording: on the connector's thread --

    def capacity(self) -> int:
        return self.concurrency - len(self.in_flight)

    def claim(self, limit: int) -> int:
        """Claim up to `limit` pending steps and start their functions: how many were claimed."""
        if limit <= 0:
            return 0
        steps = self.store.claim_steps(sorted(self.endpoints), self.worker, self.lease, limit=limit)
        if steps and not self.in_flight:
            self.renewed = time.monotonic()  # the claim itself set the leases
        for claimed in steps:
            key = (claimed["run_id"], claimed["step"])
            flight = self.in_flight.get(key)
            if flight is not None:
                # Our lease lapsed (the store was locked past it) and this connector took the
                # step again: its function is still running, and its result is recorded under
                # the new claim (the store refuses it under the old one), not called twice.
                flight.lost, flight.epoch = False, claimed.get("epoch")
                continue
            self.start(claimed)
        return len(steps)

    def start(self, claimed: dict) -> None:
        name = claimed["endpoint"]
        step = Step(claimed["run_id"], claimed["step"], name, claimed["key"])
        try:
            args = {k: decode(v) for k, v in claimed["args"].items()}
            declared = self.declared(step.run_id, name)
        except (ConnectorError, ValueError, TypeError, KeyError) as error:
            self._record(step, "fail", f"`{name}` cannot be performed by this connector: {error}",
                         claimed.get("epoch"))
            return
        future = self.pool.submit(self.perform, self.endpoints[name], step, args, declared)
        self.in_flight[(step.run_id, step.step)] = _Flight(step, future, claimed.get("epoch"))

    def renew(self) -> None:
        """Extend the leases of the steps whose functions are running; note those no longer ours."""
        keys = [key for key, flight in self.in_flight.items() if not flight.lost]
        claims = {key: (*key, self.in_flight[key].epoch) for key in keys}
        held = self.store.renew_step_leases(self.worker, list(claims.values()), self.lease)
        self.renewed = time.monotonic()
        for key in keys:
            if claims[key] not in held:
                flight = self.in_flight[key]
                flight.lost = True
                log.warning("step %s of run %s (`%s`) is no longer this connector's (its run was cancelled, or "
                            "another connector claimed it after the lease ran out): the function's result will "
                            "be dropped", key[1], key[0], flight.step.endpoint)

    def record(self, key: tuple[str, int]) -> str:
        """Record the outcome of a step whose function returned: 'completed', 'failed' or 'dropped'.
        The step leaves `in_flight` only once recorded, so a store fault is retried."""
        flight = self.in_flight[key]
        try:
            outcome, text = flight.future.result()
        except BaseException as error:  # noqa: BLE001 - a fault of the connector itself still ends the step
            outcome, text = "fail", f"`{flight.step.endpoint}` could not be performed: {type(error).__name__}: {error}"
        result = self._record(flight.step, outcome, text, flight.epoch)
        del self.in_flight[key]
        return result

    def _record(self, step: Step, outcome: str, text: str, epoch: int | None) -> str:
        if outcome == "complete":
            recorded = self.store.complete_claimed_step(step.run_id, step.step, self.worker, text, epoch)
        else:
            recorded = self.store.fail_claimed_step(step.run_id, step.step, self.worker, text, epoch)
        self.handled += 1
        if not recorded:
            # Cancelled meanwhile, or claimed by another connector after our lease ran out: that
            # claim's result is the one recorded.
            log.warning("step %s of run %s (`%s`): the function's result is dropped: %s", step.step, step.run_id,
                        step.endpoint, recorded.reason)
            return "dropped"
        return "completed" if outcome == "complete" else "failed"

    def collect(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for functions to return, recording what they return;
        renew the leases when they are due."""
        if self.in_flight:
            due = self.renewed + self.renew_every - time.monotonic()
            futures = {flight.future: key for key, flight in self.in_flight.items()}
            done, _ = wait(futures, timeout=max(0.0, min(timeout, due)), return_when=FIRST_COMPLETED)
            for future in done:
                self.record(futures[future])
        if self.in_flight and time.monotonic() >= self.renewed + self.renew_every:
            self.renew()

    def give_back(self) -> int:
        """Release the steps whose functions have not returned, for another connector to
        perform at once (their functions go on; whatever they return is not recorded)."""
        if not self.in_flight:
            return 0
        keys = [(*key, flight.epoch) for key, flight in self.in_flight.items()]
        for flight in self.in_flight.values():
            flight.future.cancel()
        self.in_flight.clear()
        try:
            released = self.store.release_steps(self.worker, keys)
        except Exception:  # noqa: BLE001 - their leases run out instead, and they are performed again
            log.exception("the steps still running could not be given back; they are taken again when "
                          "their leases end")
            return 0
        if released:
            log.warning("gave back %d step(s) whose functions had not returned, for the next connector", released)
        return released

    # -- loops --

    def run_once(self) -> int:
        """Claim what is pending (up to `concurrency`), perform it, record it: how many steps."""
        before = self.handled
        self.claim(self.capacity())
        while self.in_flight:
            self.collect(self.renew_every)
        return self.handled - before

    def serve(self, poll: float = 0.1, stop=None) -> int:
        """Claim, perform and record until `stop` (a `threading.Event` or a callable) says to
        end, claiming more as functions return. Then waits up to `grace` seconds for the
        functions still running and gives the rest of their steps back. The steps handled."""
        try:
            wakeup = Wakeup(self.store, endpoints=self.endpoints)  # a step created wakes it (PostgreSQL)
            try:
                while not stopped(stop):
                    self.presence.beat()
                    try:
                        wakeup.clear()
                        claimed = self.claim(self.capacity())
                        if self.in_flight:
                            self.collect(poll)
                        elif not claimed:
                            wakeup.sleep(wakeup.interval(poll), stop)
                    except Exception:  # noqa: BLE001 - the store was busy or gone for a moment: try again
                        log.exception("the connector could not reach the store; retrying")
                        pause(stop, poll)
            finally:
                wakeup.close()
            deadline = time.monotonic() + self.grace
            while self.in_flight and time.monotonic() < deadline:
                try:
                    self.collect(deadline - time.monotonic())
                except Exception:  # noqa: BLE001 - what is left is given back below
                    log.exception("a step could not be recorded while stopping")
                    break
        finally:
            self.close()
        return self.handled


async def _awaited(awaitable):
    return await awaitable


def run_connector(module: str | ModuleType, store, *, worker: str | None = None, lease: float = DEFAULT_LEASE,
                  poll: float = 0.1, stop=None, concurrency: int = DEFAULT_CONCURRENCY,
                  grace: float = SHUTDOWN_GRACE, max_result: int = MAX_RESULT) -> int:
    """Serve the `@endpoint` functions of a module (a module, a dotted name or a .py path) from
    a store until `stop` says to end; returns the steps handled. `lease`, `concurrency`,
    `grace` and `max_result` are as in the module's docstring."""
    loaded = load_module(module)
    endpoints = endpoints_of(loaded)
    if not endpoints:
        raise ConnectorError(f"{getattr(loaded, '__file__', None) or loaded.__name__}: no @endpoint functions")
    connector = Connector(endpoints, store, worker=worker, lease=lease, concurrency=concurrency, grace=grace,
                          max_result=max_result)
    return connector.serve(poll=poll, stop=stop)


__all__ = ["endpoint", "run_connector", "Connector", "ConnectorError", "DEFAULT_LEASE", "DEFAULT_CONCURRENCY",
           "SHUTDOWN_GRACE", "MAX_RESULT", "Step", "current_step", "load_module",
           "endpoints_of", "conforms", "to_python", "from_python", "Keyword", "Member", "RecordValue", "REGISTRY"]
