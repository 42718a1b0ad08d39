"""The OpenAPI description of `flowmetal serve`'s HTTP API, built in code.

`document()` is what `GET /api/openapi.json` answers. The same document is kept
in the repository as `docs/openapi.json` for readers and client generators;
it is written by `python -m flowmetal.server.openapi > docs/openapi.json`, and
a test checks that the file equals `document()`, so there is one source and
no copy that can drift. (Built in code rather than read from a file so that
an installed package needs no data file to serve it.)

The document claims exactly what the handlers in `flowmetal.server.app`
enforce: every field's kind, range, length and pattern, which fields are
required, that unknown fields are refused (`additionalProperties: false`),
and every 4xx answer each route can give, with the JSON error shape. A
request the schema allows is accepted (or refused only for what a schema
cannot say: an unknown run, a program with errors, a step already done),
and a request it forbids is refused. tests/server/test_openapi_conformance.py
keeps it so: it runs schemathesis, with all its checks, against a real
`flowmetal serve`.

It is OpenAPI 3.2 for one reason: `itemSchema`, which describes each event
of the `text/event-stream` answer (3.1 can only call the stream a string).

Links (`links` on the answers) say where ids come from: a run's id from
`POST /api/runs` or `GET /api/runs` into the routes of one run, a claimed
step's run and number into `complete` and `fail`. They document the API and
let a stateful tester follow a run from its creation on.

docs/http-api.md tells the same story in prose; a test checks that every
route of the application is in both.
"""

from __future__ import annotations

import json
import sys

from flowmetal import __version__
from flowmetal.lang import filenames
from flowmetal.runtime import signals
from flowmetal.runtime.program import STANDARD_FOLDER
from flowmetal.server.bounds import (CURSOR_HEADER, ENDPOINT_NAME, MAX_CURSOR, MAX_EPOCH, MAX_LAST, MAX_LEASE,
                                     MAX_LIMIT, MAX_WAIT, NOT_BLANK)
from flowmetal.statuses import ENTRY_PATTERN, RUN_STATUSES

# An Idempotency-Key of `POST /api/runs`: 1 to 255 printable ASCII characters, no blank at either
# end (HTTP drops those).
IDEMPOTENCY_KEY = r"[!-~](?:[ -~]{0,253}[!-~])?"
MAX_SEQ = 10 ** 18 - 1           # event numbers and step numbers are at most 18 digits


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict | str, description: str, **extra) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema) if isinstance(schema, str) else schema}},
            **extra}


# Why each error status is given, unless a route says it more precisely.
WHY = {
    400: "Malformed JSON (not UTF-8, `NaN`, lone surrogates, nested over 100 levels), not an object, an unknown "
         "field, or a field missing, of the wrong kind or out of range",
    401: "FLOWMETAL_TOKEN is set and the request lacks `Authorization: Bearer <token>`, or has a wrong one",
    403: "The request's `Origin` header names another site than this server",
    404: "No such run",
    409: "Already done",
    413: "The body is over 1 MiB",
    415: "The body is not `Content-Type: application/json`",
    421: "The request's `Host` header is not an address this server answers to",
    422: "Well-formed, but refused",
}


def _errors(*codes: int, **why: str) -> dict:
    """Error answers (the `Error` object) for these statuses; `why` gives a route's own
    reason for a status, as `e404="..."`."""
    return {str(code): _json("Error", why.get(f"e{code}") or WHY[code]) for code in codes}


def _api_errors(*codes: int, **why: str) -> dict:
    """The errors of a route under /api/: the request's own, and 401, 403 and 421, which any
    of them can give."""
    return _errors(*sorted({*codes, 401, 403, 421}), **why)


def _body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _run_id() -> dict:
    return {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
            "description": "The run's id (as `flowmetal runs` prints it; whole, not a prefix)"}


def _step() -> dict:
    return {"name": "step", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
            "description": "The step's number in the run (the `step` of its events)"}


def _after() -> list[dict]:
    return [
        {"name": "after", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
         "description": "Only events with a greater `seq` (digits only)"},
        {"name": "Last-Event-ID", "in": "header", "required": False,
         "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
         "description": "As `after`, and it takes precedence (both are checked): what an EventSource "
                        "sends when it reconnects"},
    ]


def _run_links(pointer: str) -> dict:
    """Links from an answer holding a run's id at `pointer` to the routes of that run. (None to
    the live stream: it stays open while the run waits.)"""
    return {name: {"operationId": op, "parameters": {"run_id": f"$response.body#{pointer}"},
                   "description": description}
            for name, op, description in (
                ("GetRun", "getRun", "The run"),
                ("GetSources", "getSources", "Its program"),
                ("GetTrace", "getTrace", "Its log"),
                ("SendSignal", "sendSignal", "Send it a signal"),
                ("CancelRun", "cancelRun", "Cancel it"))}


def _step_links() -> dict:
    params = {"run_id": "$response.body#/steps/0/run_id", "step": "$response.body#/steps/0/step"}
    return {"CompleteStep": {"operationId": "completeStep", "parameters": params,
                             "description": "Record the first claimed step's result"},
            "FailStep": {"operationId": "failStep", "parameters": params,
                         "description": "Record that the first claimed step failed"},
            "GetStepRun": {"operationId": "getRun", "parameters": {"run_id": params["run_id"]},
                           "description": "The run of the first claimed step"}}


# What a step's result may say of its claim (`complete` and `fail` alike): the server records it
# only while that claim still holds.
_CLAIM_FENCE = {
    "worker": {"type": ["string", "null"], "minLength": 1, "maxLength": 200,
               "description": "The name the step was claimed under: recorded only while the claim is "
                              "still that worker's (409 with `reason` `lost` otherwise); null or absent: "
                              "recorded whoever claimed it"},
    "epoch": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_EPOCH,
              "description": "The claim's `epoch` from the claim: recorded only while that claim is the "
                             "step's latest (409 with `reason` `lost` once the step was claimed again)"},
}


SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"],
        "description": "Every 4xx answer; it changed nothing",
        "properties": {
            "error": {"type": "string", "minLength": 1, "description": "What is wrong, naming the field, run or step"},
            "diagnostics": {"type": "array", "items": {"type": "string"},
                            "description": "For a program with errors: each as `file:line:col: code: message`"},
            "reason": {"type": "string", "enum": ["unknown", "done", "cancelled", "lost"],
                       "description": "For a step's result or failure the store refused: why (no such step; "
                                      "it has its outcome already; it was cancelled; the claim is no longer "
                                      "the `worker`'s)"},
        },
    },
    "NewRun": {
        "type": "object", "required": ["sources", "entry"], "additionalProperties": False,
        "properties": {
            "sources": {"type": "object", "minProperties": 1,
                        "propertyNames": {"pattern": filenames.NAME_PATTERN, "maxLength": filenames.MAX_NAME,
                                          "not": {"pattern": f"^{STANDARD_FOLDER}"}},
                        "additionalProperties": {"type": "string"},
                        "description": "The program: file names to their text. A name is relative, `a.flow` or "
                                       "`dir/a.flow`, without `.` or `..` parts, `\\`, `:` or control characters "
                                       "(docs/language.md section 4), and not under `@stdlib/`. Every package the "
                                       "program requires must be among them (the standard ones are built in, and "
                                       "stored with the run as `@stdlib/PACKAGE.flow`)"},
            "entry": {"type": "string", "pattern": NOT_BLANK,
                      "description": "`package/name` of a `defn`, or `name` when the program has one package"},
            "args": {"type": ["array", "null"], "items": {"type": "string"}, "default": [],
                     "description": "The arguments, each a Flowmetal literal read in the entry's package "
                                    "(`42`, `\"host-1\"`, `[+reboot+]`); null is none"},
        },
        "examples": [{"sources": {"deploy.flow": "(defpackage deploy (defn main [host : str?] : str? host))"},
                      "entry": "deploy/main", "args": ["\"host-1\""]}],
    },
    "Created": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "minLength": 1}}},
    "Run": {
        "type": "object",
        "required": ["id", "entry", "status", "result", "error", "args", "code_hash", "created", "updated",
                     "last_seq", "parent"],
        "properties": {
            "id": {"type": "string"},
            "entry": {"type": "string"},
            "status": {"type": "string",
                       "enum": list(RUN_STATUSES)},
            "result": {"type": ["string", "null"], "description": "The value, as a Flowmetal literal (completed)"},
            "error": {"type": ["string", "null"], "description": "Why the run failed, with its stack trace"},
            "args": {"type": "array", "items": {"type": "string"}, "description": "Flowmetal literals"},
            "code_hash": {"type": "string", "description": "The hash of its program"},
            "created": {"type": "number", "description": "Unix time"},
            "updated": {"type": "number", "description": "Unix time of its latest change"},
            "last_seq": {"type": "integer", "minimum": 0, "description": "The `seq` of its latest event"},
            "parent": {"type": ["string", "null"],
                       "description": "The id of the run that started it with `flowmetal.run/start-run!` (a child "
                                      "run), null for a top-level run"},
        },
    },
    "Sources": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "A program's files: each name to its text"},
    "Event": {
        "type": "object", "required": ["seq", "time", "kind", "step", "line"],
        "description": "One event of a run's log; its kind's own fields (`endpoint`, `args`, `key`, `span`, "
                       "`result`, `message`, `error`, `trace`, `due`, ...) stand beside these",
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "time": {"type": "number", "description": "Unix time"},
            "kind": {"type": "string", "description": "run-started, step-requested, step-completed, timer-set, "
                                                      "timer-fired, timer-cancelled, log, signal-received, task-spawned, "
                                                      "task-completed, task-failed, task-cancelled, "
                                                      "child-started, run-completed, run-failed, run-cancelled"},
            "step": {"type": ["integer", "null"]},
            "line": {"type": ["integer", "null"], "description": "The source line that caused it"},
        },
    },
    "End": {
        "type": "object", "required": ["status"], "additionalProperties": False,
        "description": "The last event of a stream: how the run ended",
        "properties": {"status": {"type": "string", "enum": ["completed", "failed", "cancelled"]}},
    },
    "StreamEvent": {
        "description": "One server-sent event: `id: <seq>`, `event: <kind>`, `data: <Event as JSON>`; "
                       "the last is `event: end` with `data: <End as JSON>`",
        "oneOf": [
            {"type": "object", "required": ["event", "data", "id"],
             "properties": {"event": {"type": "string", "not": {"const": "end"}},
                            "id": {"type": "string", "pattern": "^[0-9]+$"},
                            "data": {"type": "string", "contentMediaType": "application/json",
                                     "contentSchema": _ref("Event")}}},
            {"type": "object", "required": ["event", "data"],
             "properties": {"event": {"const": "end"},
                            "data": {"type": "string", "contentMediaType": "application/json",
                                     "contentSchema": _ref("End")}}},
        ],
    },
    "Cancelled": {
        "type": "object", "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": {"type": "string", "enum": ["cancelled", "cancelling"]}},
    },
    "Claim": {
        "type": "object", "required": ["endpoints"], "additionalProperties": False,
        "properties": {
            "endpoints": {"type": "array", "minItems": 1, "maxItems": 100,
                          "items": {"type": "string", "pattern": f"^{ENDPOINT_NAME}$"},
                          "description": "Endpoint names, as `package/name!`"},
            "lease": {"type": ["number", "null"], "minimum": 1, "maximum": int(MAX_LEASE), "default": 30,
                      "description": "Seconds the claim holds; after that the step may be claimed again"},
            "wait": {"type": ["number", "null"], "minimum": 0, "maximum": int(MAX_WAIT), "default": 0,
                     "description": "Seconds to wait for a step when none is pending (long poll)"},
            "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT, "default": 10,
                      "description": "At most this many steps"},
            "worker": {"type": ["string", "null"], "minLength": 1, "maxLength": 200,
                       "description": "The claimant's name, recorded with the claim (default: its address)"},
        },
        "examples": [{"endpoints": ["shop/price!"], "lease": 30, "limit": 10, "worker": "billing-1"}],
    },
    "Step": {
        "type": "object", "required": ["run_id", "step", "endpoint", "key", "args", "literals"],
        "properties": {
            "run_id": {"type": "string"},
            "step": {"type": "integer", "minimum": 0},
            "endpoint": {"type": "string"},
            "key": {"type": "string", "description": "The idempotency key: the same on every claim of this step"},
            "args": {"type": "object", "description": "Parameter names to their values as plain JSON"},
            "literals": {"type": "object", "additionalProperties": {"type": ["string", "null"]},
                         "description": "Parameter names to their values as exact Flowmetal literals"},
            "epoch": {"type": "integer", "minimum": 1, "maximum": MAX_EPOCH,
                      "description": "This claim's number: each claim of the step has a greater one. Given "
                                     "back with the result, it is recorded only while this claim is the latest"},
        },
    },
    "Steps": {"type": "object", "required": ["steps"],
              "properties": {"steps": {"type": "array", "items": _ref("Step")}}},
    "Complete": {
        "type": "object", "additionalProperties": False,
        "description": "Exactly one of `result` and `literal`",
        "properties": {
            "result": {"description": "The value as JSON, converted to the endpoint's declared return type"},
            "literal": {"type": "string", "description": "The value as a Flowmetal literal"},
            **_CLAIM_FENCE,
        },
        "oneOf": [{"required": ["result"]}, {"required": ["literal"]}],
        "examples": [{"result": {"price": 12, "size": "large", "note": "in stock"}}, {"literal": "42"}],
    },
    "Fail": {"type": "object", "required": ["error"], "additionalProperties": False,
             "properties": {"error": {"type": "string", "pattern": NOT_BLANK,
                                      "description": "Why the endpoint failed (not blank)"},
                            **_CLAIM_FENCE}},
    "StepDone": {
        "type": "object", "required": ["run_id", "step", "status"],
        "properties": {"run_id": {"type": "string"}, "step": {"type": "integer"},
                       "status": {"type": "string", "enum": ["completed", "failed"]}},
    },
    "SignalQueued": {
        "type": "object", "required": ["run", "name", "seq"],
        "properties": {"run": {"type": "string", "description": "The run's id"},
                       "name": {"type": "string", "description": "The signal's name"},
                       "seq": {"type": "integer", "minimum": 1,
                               "description": "The signal's number among the run's signals, in arrival order"}},
    },
    "Delivered": {"type": "object", "required": ["status"],
                  "properties": {"status": {"type": "string", "const": "delivered"}}},
    "Kept": {"type": "object", "required": ["status"],
             "properties": {"status": {"type": "string", "const": "kept"}, "note": {"type": "string"}}},
}


def document() -> dict:
    """The OpenAPI 3.2 document of the API."""
    paths = {
        "/callback/{token}": {"post": {
            "operationId": "deliverCallback", "summary": "Deliver a callback's body (once)",
            "description": "The body, as text (UTF-8 unless `Content-Type` names another charset), is what "
                           "`get-callback!` returns. No API token is needed: the callback's unguessable token "
                           "authorises it.",
            "security": [],
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "The last part of the callback's URL"}],
            "requestBody": {"required": False,
                            "description": "Any media type, at most 1 MiB, read as text in its charset",
                            "content": {"*/*": {"schema": {}}}},
            "responses": {
                "200": _json("Delivered", "Delivered; the waiting run wakes"),
                "202": _json("Kept", "The run is not waiting for it now; the body is kept for its next "
                                     "`get-callback!` on it"),
                **_errors(400, 403, 404, 409, 410, 413, 415, 421,
                          e400="The body is not text in its charset", e404="No callback has this token",
                          e409="The callback was delivered already; this delivery changed nothing",
                          e410="The run has ended; the body was not used and nothing was recorded",
                          e415="The body's charset is unknown"),
            },
        }},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object", "required": ["openapi", "info", "paths"]},
                                       "The OpenAPI document"),
                          **_api_errors()},
        }},
        "/api/runs": {
            "post": {
                "operationId": "createRun", "summary": "Check a program and start a run of it",
                "parameters": [{
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                               "pattern": f"^{IDEMPOTENCY_KEY}$"},
                    "description": "Makes a retried request safe: a request with a key already used for the "
                                   "same request answers 200 with the run it started, and starts none"}],
                "requestBody": _body("NewRun"),
                "responses": {
                    "201": _json("Created", "The run is recorded; the executor starts it at once",
                                 headers={"Location": {"required": True, "description": "The run's URL",
                                                       "schema": {"type": "string"}}},
                                 links=_run_links("/id")),
                    "200": _json("Created", "The same request was made before with this Idempotency-Key: "
                                            "the run it started (no other is started)", links=_run_links("/id")),
                    **_api_errors(400, 413, 415, 422,
                                  e422="The program has errors (`diagnostics` lists them), or no such entry, "
                                       "the wrong number of arguments, an argument that is not a literal or "
                                       "not of the parameter's type; or the Idempotency-Key was used before "
                                       "for another request"),
                },
            },
            "get": {
                "operationId": "listRuns", "summary": "List the runs",
                "parameters": [{"name": "since", "in": "query", "required": False,
                                "schema": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
                                                     {"type": "number"}]},
                                "description": f"A change cursor (digits, from the `{CURSOR_HEADER}` header of "
                                               "an earlier answer): only the runs changed after it, in the order "
                                               "of their latest changes, each change once. A number with a "
                                               "decimal point is the older form, a Unix time: the runs updated "
                                               "at or after it by the clocks of the processes that changed "
                                               "them (deprecated: it can miss changes)"},
                               {"name": "status", "in": "query", "required": False,
                                "schema": {"type": "string", "pattern": f"^({'|'.join(RUN_STATUSES)})"
                                                                        f"(,({'|'.join(RUN_STATUSES)}))*$"},
                                "description": "Only the runs in these states (separated by commas)"},
                               {"name": "entry", "in": "query", "required": False,
                                "schema": {"type": "string", "maxLength": 1024, "pattern": f"^{ENTRY_PATTERN}$"},
                                "description": "Only the runs of this function: `package/name`, or a name alone "
                                               "for that function of any package"},
                               {"name": "last", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LAST},
                                "description": "Only the `last` of those the other parameters keep: started last "
                                               "(the listing) or changed last (with `since`), still in their "
                                               "order"}],
                "responses": {"200": _json({"type": "array", "items": _ref("Run")},
                                           "The runs, oldest first; with a cursor, those changed after it",
                                           headers={CURSOR_HEADER: {
                                               "required": True,
                                               "description": "The cursor to ask with next (`?since=`): every "
                                                              "change not in this answer is after it",
                                               "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}}},
                                           links=_run_links("/0/id")),
                              **_api_errors(400, e400="`since` is neither a change cursor nor a number; a "
                                                      "`status`, `entry` or `last` that is not one")},
            },
        },
        "/api/runs/{run_id}": {"get": {
            "operationId": "getRun", "summary": "One run", "parameters": [_run_id()],
            "responses": {"200": _json("Run", "The run", links=_run_links("/id")), **_api_errors(404)},
        }},
        "/api/runs/{run_id}/sources": {"get": {
            "operationId": "getSources", "summary": "The program a run runs, as stored with it",
            "parameters": [_run_id()],
            "responses": {"200": _json("Sources", "Its files: each name to its text; then the standard "
                                                  "packages it uses, as `@stdlib/PACKAGE.flow`"),
                          **_api_errors(404, 409, e409="The run's stored program cannot be read (a bad file name)")},
        }},
        "/api/runs/{run_id}/trace": {"get": {
            "operationId": "getTrace", "summary": "A run's log", "parameters": [_run_id(), *_after()],
            "responses": {"200": _json({"type": "array", "items": _ref("Event")}, "The events, in order"),
                          **_api_errors(400, 404, e400="`after` (or `Last-Event-ID`) is not an event number")},
        }},
        "/api/runs/{run_id}/events": {"get": {
            "operationId": "streamEvents", "summary": "A run's log as a live stream of server-sent events",
            "description": "Each event as `id: <seq>`, `event: <kind>`, `data: <Event as JSON>`: those logged "
                           "so far, then each as it is committed. When the run has ended, a last `end` event "
                           "(`data: {\"status\": ...}`) and the stream closes. An idle stream carries a "
                           "comment every 15 seconds.",
            "parameters": [_run_id(), *_after()],
            "responses": {"200": {"description": "The stream",
                                  "content": {"text/event-stream": {"itemSchema": _ref("StreamEvent")}}},
                          **_api_errors(400, 404, e400="`after` (or `Last-Event-ID`) is not an event number")},
        }},
        "/api/runs/{run_id}/cancel": {"post": {
            "operationId": "cancelRun", "summary": "Cancel a run (no body)", "parameters": [_run_id()],
            "responses": {"200": _json("Cancelled", "Cancelled: it was pending or waiting"),
                          "202": _json("Cancelled", "Running now: it stops at its next checkpoint"),
                          **_api_errors(404, 409, e409="The run has ended already: nothing to cancel")},
        }},
        "/api/runs/{run_id}/signals/{name}": {"post": {
            "operationId": "sendSignal", "summary": "Send a run a named signal (queued for its `receive!`)",
            "description": "The body, any JSON value, is what `(receive! name)` returns (objects as maps with "
                           "string keys). Signals are queued per run in arrival order; each `receive!` takes "
                           "the oldest of its name, and a run waiting for one wakes.",
            "parameters": [
                _run_id(),
                {"name": "name", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": f"^{signals.NAME}$", "minLength": 1, "maxLength": 128},
                 "description": f"The signal's name: {signals.NAME_RULE}"},
                {"name": "Idempotency-Key", "in": "header", "required": False,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": f"^{IDEMPOTENCY_KEY}$"},
                 "description": "Makes a retried request safe: a request with a key already used for this run "
                                "with the same name and body answers as the first did, and queues nothing"}],
            "requestBody": {"required": True, "description": "The signal's body: any JSON value",
                            "content": {"application/json": {"schema": {}, "examples": {
                                "object": {"value": {"approved": True, "by": "ann"}}}}}},
            "responses": {
                "202": _json("SignalQueued", "Queued (or queued before, with this Idempotency-Key)"),
                **_api_errors(400, 404, 409, 413, 415, 422,
                              e400="Malformed JSON (not UTF-8, empty, `NaN`, lone surrogates, nested over 100 "
                                   "levels, a number out of range: integers below 2^4096, finite floats), "
                                   "a name that is not a signal name, or a malformed Idempotency-Key",
                              e409="The run has ended (completed, failed or cancelled): nothing was queued",
                              e422="The Idempotency-Key was used for another signal to this run"),
            },
        }},
        "/api/steps/claim": {"post": {
            "operationId": "claimSteps", "summary": "Claim pending step requests of named endpoints (long poll)",
            "requestBody": _body("Claim"),
            "responses": {"200": _json("Steps", "The steps claimed (none when `wait` passed first)",
                                       links=_step_links()),
                          **_api_errors(400, 413, 415)},
        }},
        "/api/steps/{run_id}/{step}/complete": {"post": {
            "operationId": "completeStep", "summary": "Record a step's result (once)",
            "parameters": [_run_id(), _step()],
            "requestBody": _body("Complete"),
            "responses": {"200": _json("StepDone", "Recorded; the run wakes"),
                          **_api_errors(400, 404, 409, 413, 415, 422,
                                        e404="No such run, or the run has no such step",
                                        e409="The step has its result already, failed, or was cancelled, or "
                                             "its claim is no longer the `worker`'s or the `epoch`'s (`reason` says "
                                             "which; or its run's program cannot be loaded, or it is a `receive!`, "
                                             "which a signal answers): this one changed nothing",
                                        e422="The value is not of the endpoint's declared return type (the "
                                             "error names the place); a corrected result may follow")},
        }},
        "/api/steps/{run_id}/{step}/fail": {"post": {
            "operationId": "failStep", "summary": "Record that a step could not be performed; its run fails",
            "parameters": [_run_id(), _step()],
            "requestBody": _body("Fail"),
            "responses": {"200": _json("StepDone", "Recorded; the run fails when it resumes"),
                          **_api_errors(400, 404, 409, 413, 415,
                                        e404="No such run, or the run has no such step",
                                        e409="The step has its result already, failed, or was cancelled, or "
                                             "its claim is no longer the `worker`'s or the `epoch`'s (`reason` says "
                                             "which; or it is a `receive!`): this failure changed nothing")},
        }},
    }
    return {
        "openapi": "3.2.0",
        "info": {"title": "Flowmetal", "version": __version__,
                 "description": "The HTTP API of `flowmetal serve`: start runs, read runs and traces, claim "
                                "and complete step requests from connectors in any language, cancel runs, "
                                "send runs signals, deliver callbacks. Errors are `{\"error\": \"...\"}` with a 4xx status and "
                                "change nothing. Bodies of /api/ requests are JSON, at most 1 MiB. See "
                                "docs/http-api.md."},
        "servers": [{"url": "http://127.0.0.1:8700"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "`FLOWMETAL_TOKEN`: when it is set, every /api/ "
                                                          "route needs it; callbacks never do"}},
        },
    }


def text() -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(text())
