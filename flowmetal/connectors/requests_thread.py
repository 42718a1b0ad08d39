"""The HTTP request connector in a thread of `flowmetal worker`, beside its executor.

Why a module of its own: the worker loop (`flowmetal.runtime.driving.work`) sits a
layer below the connectors and takes this from the command line; and the connector's
module (httpx, asyncio) is imported on the connector's own thread, so that a worker
starts its first run without waiting for it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading


class RequestsInThread:
    """The HTTP request connector (`http_request`) in a thread of its own, on its own
    connection to the store at `location`, until `stop` is set: what `flowmetal worker` runs
    beside its executor. `log(line)` is told of each request performed. The connector's
    module (httpx, asyncio) is imported on that thread, so the worker starts its first run
    without waiting for it."""

    def __init__(self, location: str, stop, log) -> None:
        self.location = location
        self.stop = stop
        self.log = log
        self.worker = f"worker:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}:http"
        self.thread = threading.Thread(target=self._main, name="flowmetal-http-requests", daemon=True)

    @property
    def endpoints(self) -> tuple[str, ...]:
        from flowmetal.connectors.http_request import ENDPOINTS
        return tuple(ENDPOINTS)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float = 30) -> None:
        self.thread.join(timeout)

    def busy(self, store) -> bool:
        """Whether a request is still to be sent, or is in flight here (its run waits on it)."""
        return self.thread.is_alive() and store.open_steps(self.endpoints, self.worker) > 0

    def _report(self, step: dict, outcome: str) -> None:
        from flowmetal.connectors.http_request import describe
        target = describe(step)
        if len(target) > 200:
            target = target[:199] + "…"
        self.log(f"run {step['run_id']} step {step['step']}: {target} -> {outcome}")

    def _main(self) -> None:
        log = logging.getLogger("flowmetal.connectors")
        try:
            from flowmetal.connectors.http_request import RequestConnector
            from flowmetal.runtime.store import open_store
            store = open_store(self.location)
        except Exception:  # noqa: BLE001
            log.exception("the HTTP request connector cannot start")
            return
        try:
            with RequestConnector(store, worker=self.worker, kind="worker", report=self._report) as connector:
                connector.serve(stop=self.stop)
        except Exception:  # noqa: BLE001
            log.exception("the HTTP request connector stopped")
        finally:
            store.close()
