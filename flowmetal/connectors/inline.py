"""Python endpoints hosted by a worker: `flowmetal worker --connector MODULE`.

A worker given `--connector MODULE` (repeatable; the modules `flowmetal connector`
serves, their `@endpoint` functions) does two things with them:

- it serves them as a connector for any run (`EndpointsInThread`: an `sdk.Connector`
  in a thread of its own, on its own store connection: claims, leases, renewals,
  fencing and give-back on stop are the connector's);
- it performs the steps of the runs *it* executes itself, in the run's own process
  (`InlineSteps`, handed to the executor: `Executor(inline=...)`), as a durable
  workflow performs its steps: under the run's lease alone. The transaction that
  commits the run's request (its events, and its snapshot waiting on the step) writes
  no row for the step (`Store.commit`'s `inline_steps`); the function runs on a thread
  of this worker (the executor renews the run's lease while it runs), its result goes
  to the run at once, in memory, and is recorded with the run's next commit (the next
  request, the wait, the end), the step's row written then, once: one commit a step,
  where the connector path makes two (the request, the result), with the same checks of
  the result (`sdk.perform`: declared type, `--max-result`).

Nothing that depends on a result leaves the process before it is committed: every
way out (a request, a wait, the end) is a commit that carries it. A crash between
performing a step and committing its result leaves the run's snapshot waiting on the
step: once the run's lease lapses, the worker that resumes it asks a connector (any
`worker --connector` of the fleet) for the step, with the same idempotency key, as
after a connector's crash. A worker paused past the run's lease cannot record its
result: the run's epoch fences the commit.

Why a module of its own: the worker loop (`runtime.driving.work`) and the executor
sit a layer below the connectors and are handed these objects by the command line.
"""

from __future__ import annotations

from concurrent.futures import Future
from types import ModuleType
from typing import Callable

from flowmetal.connectors import ConnectorThread
from flowmetal.connectors.sdk import (
    MAX_RESULT, Connector, ConnectorError, Step, _Pool, declared_in, endpoints_of, load_module, perform,
)



def load_endpoints(targets: list[str | ModuleType]) -> dict[str, Callable]:
    """The `@endpoint` functions of modules (dotted names or .py paths), all together;
    `ConnectorError` (one line) for a module that cannot be imported, has none, or
    implements an endpoint another of them implements too."""
    found: dict[str, Callable] = {}
    where: dict[str, str] = {}
    for target in targets:
        shown = target if isinstance(target, str) else target.__name__
        try:
            module = load_module(target)
        except ConnectorError:
            raise
        except Exception as error:  # noqa: BLE001 - its import failed: say which and why, in one line
            message = str(error).splitlines()[0] if str(error) else ""
            raise ConnectorError(f"{shown}: importing it failed: {type(error).__name__}: {message}") from error
        endpoints = endpoints_of(module)
        if not endpoints:
            raise ConnectorError(f"{shown}: no @endpoint functions")
        for name, fn in endpoints.items():
            if name in found and found[name] is not fn:
                raise ConnectorError(f"`{name}` is implemented by both {where[name]} and {shown}")
            found[name], where[name] = fn, shown
    return found


class InlineSteps:
    """The endpoints a worker performs in the run's own process: what the executor asks
    (`endpoints`, `start`). The functions run on this object's threads (one at a time for an
    executor; more only when one outlived a give-back), never on the executor's, so that it
    can renew leases while a slow one runs."""

    def __init__(self, endpoints: dict[str, Callable], max_result: int = MAX_RESULT,
                 grace: float = 5.0) -> None:
        if max_result < 1:
            raise ConnectorError(f"the largest result must be at least 1 byte, not {max_result}")
        self.functions = dict(endpoints)
        self.endpoints = frozenset(endpoints)
        self.max_result = max_result
        self.grace = grace  # seconds a stopping executor waits for a function before giving its step back
        self.pool = _Pool(4)
        self._declared: dict[tuple[int, str], object] = {}

    def start(self, run_id: str, step: int, endpoint: str, key: str, args: dict, program) -> Future:
        """Perform a step on a thread: a future of ("complete", stored value) or ("fail", message)."""
        try:
            cache = (id(program), endpoint)
            declared = self._declared.get(cache)
            if declared is None:
                declared = self._declared[cache] = declared_in(program, endpoint)
        except ConnectorError as error:
            done: Future = Future()
            done.set_result(("fail", f"`{endpoint}` cannot be performed by this connector: {error}"))
            return done
        return self.pool.submit(perform, self.functions[endpoint], Step(run_id, step, endpoint, key), args,
                                declared, self.max_result)

    def close(self) -> None:
        self.pool.close()


class EndpointsInThread(ConnectorThread):
    """The endpoints served as a connector (`sdk.Connector`) for any run, in a thread of the
    worker (`ConnectorThread`): what `flowmetal worker --connector` runs beside its executor."""

    kind = "python"
    what = "the Python endpoints' connector"

    def __init__(self, location: str, endpoints: dict[str, Callable], stop, max_result: int = MAX_RESULT,
                 lease: float = 30.0) -> None:
        super().__init__(location, stop)
        self.functions = dict(endpoints)
        self.max_result = max_result
        self.lease = lease

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(sorted(self.functions))

    def serve(self, store) -> None:
        connector = Connector(self.functions, store, worker=self.worker, lease=self.lease,
                              max_result=self.max_result)
        connector.serve(stop=self.stop)


class Together:
    """Connectors run beside one executor, seen as one by the worker loop (`driving.work`)."""

    def __init__(self, parts: list) -> None:
        self.parts = parts

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(name for part in self.parts for name in part.endpoints)

    def start(self) -> None:
        for part in self.parts:
            part.start()

    def join(self, timeout: float = 30) -> None:
        for part in self.parts:
            part.join(timeout)

    def busy(self, store) -> bool:
        return any(part.busy(store) for part in self.parts)


__all__ = ["load_endpoints", "InlineSteps", "EndpointsInThread", "Together"]
