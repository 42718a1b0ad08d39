"""Connectors: endpoints implemented outside the interpreter (SPEC section 7).

A run that calls an endpoint the executor cannot answer itself leaves a
*pending step* in the store and waits. A connector is any process sharing the
store that claims pending steps for the endpoint names it serves (with a lease,
so a connector that dies mid-request gives its steps back), performs them, and
records each result with `complete_step` (or `fail_step`); the store wakes the
run and whichever worker claims it next resumes it with the result. The result
is applied exactly once; the request may be performed more than once (after a
crash, or a lease that ran out), which is why every step carries a stable
idempotency key, `RUN:STEP`.

    http_request.py  the HTTP request connector: `http.request/get! post! put! delete!`
    sdk.py           Python connectors: `@endpoint("pkg/name!")` functions, run by
                     `flowmetal connector MODULE`, their results checked against the
                     endpoint's declared return type
    requests_thread.py  the HTTP request connector in a thread of `flowmetal worker`

Both are loops over the store's narrow step interface: `claim_steps`, then,
while a request or function is in flight, `renew_step_leases`, so a slow one is
not performed again by another connector meanwhile; results are recorded only
under the claim (`complete_claimed_step`, `fail_claimed_step`), and steps left
unfinished when a connector stops are given back (`release_steps`). They hold
no state of their own that a restart would lose: everything a connector knows
is in the store.

Each also says it is alive (`Presence`): a row of the store's `presence` table
naming it, its process and host and the endpoints it serves, refreshed every
`PRESENCE_EVERY` seconds while it runs and taken away when it stops, so that a
run waiting on an endpoint that no live process serves can say so (`runs`,
`trace`, the editors).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from flowmetal.runtime.storeerrors import StoreError


def stopped(stop) -> bool:
    """Whether a loop's `stop` says to end: None (never), a `threading.Event`, or a callable."""
    if stop is None:
        return False
    is_set = getattr(stop, "is_set", None)
    if is_set is not None:
        return bool(is_set())
    return bool(stop())


def pause(stop, seconds: float) -> None:
    """Sleep between looks for work, waking early when `stop` is an event that gets set."""
    wait = getattr(stop, "wait", None)
    if wait is not None:
        wait(seconds)
    else:
        time.sleep(seconds)


class Presence:
    """A connector's row in the store's presence table: `beat()` in its loop refreshes it when
    `PRESENCE_EVERY` seconds have passed, `close()` takes it away. A store without presence
    (a view narrowed to some runs' steps, which serves no endpoint for everyone) is left alone,
    and a failure to write it never stops the connector: it only makes the row age."""

    def __init__(self, store, name: str, kind: str, endpoints) -> None:
        from flowmetal.runtime.store import PRESENCE_EVERY
        self.store = store
        self.name = name
        self.kind = kind
        self.endpoints = sorted(endpoints)
        self.every = PRESENCE_EVERY
        self.last: float | None = None
        self.enabled = callable(getattr(store, "announce", None))

    def beat(self) -> None:
        if not self.enabled or (self.last is not None and time.monotonic() - self.last < self.every):
            return
        self.last = time.monotonic()
        try:
            self.store.announce(self.name, self.kind, self.endpoints, pid=os.getpid(), host=socket.gethostname())
        except Exception as error:  # noqa: BLE001 - a busy store: the next beat tries again
            logging.getLogger("flowmetal.connectors").warning("could not refresh this connector's presence: %s", error,
                                                             exc_info=not isinstance(error, StoreError))

    def close(self) -> None:
        if not self.enabled or self.last is None:
            return
        try:
            self.store.withdraw(self.name)
        except Exception:  # noqa: BLE001 - the row ages out instead
            pass




class ConnectorThread:
    """A connector run in a thread of `flowmetal worker`, beside its executor, on a store
    connection of its own at `location`, until `stop` is set: what the worker loop
    (`runtime.driving.work`) is handed. Subclasses name their `endpoints` and `serve(store)`
    until `stop`; `kind` ends the claimant's name, `what` names it in the log."""

    kind = "connector"
    what = "the connector"

    def __init__(self, location: str, stop) -> None:
        self.location = location
        self.stop = stop
        self.worker = f"worker:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}:{self.kind}"
        self.thread = threading.Thread(target=self._main, name=f"flowmetal-{self.kind}", daemon=True)

    @property
    def endpoints(self) -> tuple[str, ...]:
        raise NotImplementedError

    def serve(self, store) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float = 30) -> None:
        self.thread.join(timeout)

    def busy(self, store) -> bool:
        """Whether a step of its endpoints is still to be performed, or is in flight here."""
        return self.thread.is_alive() and store.open_steps(self.endpoints, self.worker) > 0

    def _main(self) -> None:
        log = logging.getLogger("flowmetal.connectors")
        try:
            from flowmetal.runtime.store import open_store
            store = open_store(self.location)
        except Exception:  # noqa: BLE001
            log.exception("%s cannot start", self.what)
            return
        try:
            self.serve(store)
        except Exception:  # noqa: BLE001
            log.exception("%s stopped", self.what)
        finally:
            store.close()


__all__ = ["stopped", "pause", "Presence", "ConnectorThread"]
