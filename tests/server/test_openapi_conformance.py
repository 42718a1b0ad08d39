"""The OpenAPI document against the server it describes: schemathesis, with all its checks,
against a real `flowmetal serve` (with a bearer token) whose store holds runs of the test
program in each state: completed, waiting on a connector's step, waiting on a callback.

Two tests: every operation on its own (schemathesis's examples, coverage and fuzzing
phases: values at and beyond each documented bound, missing and unknown fields, wrong
kinds, no token or a wrong one, methods a route does not take) and sequences of calls that
follow the document's links (a run's id from `POST /api/runs` or `GET /api/runs` into the
routes of that run, a claimed step's run and number into `complete` and `fail`). Every
answer must be documented and match its schema and content type; a request the schema
allows must not be refused with 400 (422 only where no schema can tell: a program with
errors, a result of the wrong type, a signal's key used for another signal), and one it
forbids must be refused. Any finding fails
the test, with a request that shows it.

Set for the run rather than drawn: the callback token and the run whose live stream is
read (the completed one: a waiting run's stream stays open), which no answer carries in a
form a link can take; half of the claims name the program's endpoint, so that they claim
its steps; a claim's `wait` is cut to 50 ms (a long poll on an empty queue shows nothing
more, slowly). Each sequence starts with a fresh step and callback waiting.
"""

from __future__ import annotations


import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition

from flowmetal.server.openapi import document
from server_kit import SOURCES, Serve
from tests.waits import until as _until

TOKEN = "conformance-token"
EXAMPLES = 25          # per operation and phase
SCENARIOS = 30         # sequences of linked calls
# Where a well-formed request can still be refused for what no schema can tell.
REFUSED_WHEN_VALID = ["2xx", "401", "403", "404", "409", "422"]


class Runs:
    """Runs of the test program on the serve, started through its API."""

    def __init__(self, serve: Serve) -> None:
        self.url = serve.url
        self.client = httpx.Client(base_url=serve.url, headers=serve.auth(), timeout=30)
        self.completed = self.start("shop/nap", ["1"], "completed")
        self.callback_token = ""
        self.refresh()

    def start(self, entry: str, args: list[str], status: str) -> str:
        response = self.client.post("/api/runs", json={"sources": SOURCES, "entry": entry, "args": args})
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]
        _until(lambda: self.client.get(f"/api/runs/{run_id}").json()["status"] == status)
        return run_id

    def refresh(self) -> None:
        """One more run waiting on a connector's step, and one waiting on a callback, whose
        token is the one callbacks are sent to from now on."""
        self.start("shop/buy", ['"tea"', "3"], "waiting")
        hook = self.start("shop/hook", [], "waiting")
        url = next(e["message"] for e in self.client.get(f"/api/runs/{hook}/trace").json()
                   if e["kind"] == "log" and "/callback/" in e["message"])
        self.callback_token = url.rsplit("/", 1)[1]

    def prepare(self, case) -> None:
        """Set what is not drawn (see the top of this file)."""
        if case.operation.path == "/api/runs/{run_id}/events":
            case.path_parameters["run_id"] = self.completed
        if case.operation.path == "/callback/{token}":
            case.path_parameters["token"] = self.callback_token
        if isinstance(case.body, dict):
            wait = case.body.get("wait")
            if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0.05 < wait <= 60:
                case.body["wait"] = 0.05


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with Serve(tmp_path_factory.mktemp("conformance") / "store.db", env={"FLOWMETAL_TOKEN": TOKEN}) as serve:
        runs = Runs(serve)
        yield runs
        runs.client.close()


def _config(**project) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
        "request-timeout": 30,
        "generation": {"max-examples": EXAMPLES, "deterministic": True},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   # The document's own links only: they are what is tested.
                   "stateful": {"enabled": True, "inference": {"algorithms": []}}},
        "dictionaries": {"endpoints": {"values": ["shop/price!"]}},
        "operations": [
            {"include-operation-id": "claimSteps",
             "parameters": {"body.endpoints[*]": {"dictionary": "endpoints", "probability": 0.5}}},
            {"include-operation-id": "createRun",
             "checks": {"positive_data_acceptance": {"expected-statuses": REFUSED_WHEN_VALID}}},
            {"include-operation-id": "completeStep",
             "checks": {"positive_data_acceptance": {"expected-statuses": REFUSED_WHEN_VALID}}},
            {"include-operation-id": "sendSignal",
             "checks": {"positive_data_acceptance": {"expected-statuses": REFUSED_WHEN_VALID}}},
        ],
        **project,
    })


# The document as built in code (the same as served: tests/server/test_http_api.py), so that
# its operations are known when the tests are collected, before the serve runs.
schema = schemathesis.openapi.from_dict(document(), config=_config())


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_each_operation_does_what_the_document_says(case, runs):
    runs.prepare(case)
    case.call_and_validate(base_url=runs.url)


def test_linked_calls_do_what_the_document_says(runs):
    """The document as served, in sequences of calls that follow its links."""
    served = schemathesis.openapi.from_url(f"{runs.url}/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"},
                                           config=_config(**{"base-url": runs.url}))
    found, done = [], []

    class Calls(served.as_state_machine()):
        def setup(self) -> None:
            done.append(1)
            runs.refresh()

        def before_call(self, case) -> None:
            runs.prepare(case)

        def validate_response(self, response, case, *args, **kwargs) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except Exception as failure:
                found.append(failure)
                raise

    # What a sequence draws depends on what the server answered before (the ids it gave), so
    # Hypothesis may find that the same choices drew differently and stop the run early
    # (FlakyStrategyDefinition): then the sequences go on in a new run. A failure is never
    # lost that way: each is kept as it is found.
    for _ in range(10):
        try:
            Calls.run(settings=settings(max_examples=SCENARIOS - len(done), stateful_step_count=6, deadline=None,
                                        phases=[Phase.generate], database=None,
                                        suppress_health_check=list(HealthCheck)))
        except FlakyStrategyDefinition:
            if found:
                raise found[0] from None
        if len(done) >= SCENARIOS:
            break
    assert not found and done
