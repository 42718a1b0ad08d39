"""The HTTP request connector in a thread of `flowmetal worker`, beside its executor.

Why a module of its own: the worker loop (`flowmetal.runtime.driving.work`) sits a
layer below the connectors and takes this from the command line; and the connector's
module (httpx, asyncio) is imported on the connector's own thread, so that a worker
starts its first run without waiting for it.
"""

from __future__ import annotations

from flowmetal.connectors import ConnectorThread


class RequestsInThread(ConnectorThread):
    """The HTTP request connector (`http_request`) in a thread of the worker
    (`ConnectorThread`). `log(line)` is told of each request performed. The connector's
    module (httpx, asyncio) is imported on that thread, so the worker starts its first run
    without waiting for it."""

    kind = "http"
    what = "the HTTP request connector"

    def __init__(self, location: str, stop, log) -> None:
        super().__init__(location, stop)
        self.log = log

    @property
    def endpoints(self) -> tuple[str, ...]:
        from flowmetal.connectors.http_request import ENDPOINTS
        return tuple(ENDPOINTS)

    def _report(self, step: dict, outcome: str) -> None:
        from flowmetal.connectors.http_request import describe
        target = describe(step)
        if len(target) > 200:
            target = target[:199] + "…"
        self.log(f"run {step['run_id']} step {step['step']}: {target} -> {outcome}")

    def serve(self, store) -> None:
        from flowmetal.connectors.http_request import RequestConnector
        with RequestConnector(store, worker=self.worker, kind="worker", report=self._report) as connector:
            connector.serve(stop=self.stop)
