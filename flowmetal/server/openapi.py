"""The OpenAPI 3 description of `flowmetal serve`'s HTTP API, built in code.

`document()` is what `GET /api/openapi.json` answers. The same document is kept
in the repository as `docs/openapi.json` for readers and client generators;
it is written by `python -m flowmetal.server.openapi > docs/openapi.json`, and
a test checks that the file equals `document()`, so there is one source and
no copy that can drift. (Built in code rather than read from a file so that
an installed package needs no data file to serve it.)

docs/http-api.md tells the same story in prose; a test checks that every
route of the application is in both.
"""

from __future__ import annotations

import json
import sys

from flowmetal import __version__


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict | str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema) if isinstance(schema, str) else schema}}}


def _errors(*codes: int) -> dict:
    why = {
        400: "Malformed JSON, or a field missing or of the wrong kind",
        401: "FLOWMETAL_TOKEN is set and the request lacks `Authorization: Bearer <token>`",
        404: "No such run, step or callback",
        409: "Already done: a second result for one step, a second delivery of one callback, a run that has "
             "ended; or a run whose stored program cannot be read (a bad file name)",
        413: "The body is over 1 MiB",
        415: "The body's charset is unknown",
        422: "Well-formed, but refused: a program with errors, a bad entry or argument, a result of the wrong type",
    }
    return {str(code): _json("Error", why[code]) for code in codes}


def _run_id() -> dict:
    return {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The run's id"}


def _step() -> dict:
    return {"name": "step", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0},
            "description": "The step's number in the run"}


def _after() -> dict:
    return {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
            "description": "Only events with a greater `seq` (also taken from a `Last-Event-ID` header)"}


SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong, naming the field, run or step"},
            "diagnostics": {"type": "array", "items": {"type": "string"},
                            "description": "For a program with errors: each as `file:line:col: code: message`"},
        },
    },
    "NewRun": {
        "type": "object", "required": ["sources", "entry"], "additionalProperties": False,
        "properties": {
            "sources": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1,
                        "description": "The program: file names to their text. A name is relative: `a.flow` "
                                       "or `dir/a.flow`, without `.` or `..` parts, `\\`, `:` or control "
                                       "characters"},
            "entry": {"type": "string", "description": "`package/name` of a `defn`, or `name` when the "
                                                       "program has one package"},
            "args": {"type": "array", "items": {"type": "string"}, "default": [],
                     "description": "The arguments, each a Flowmetal literal (`42`, `\"host-1\"`, `[+reboot+]`)"},
        },
    },
    "Created": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    "Run": {
        "type": "object", "required": ["id", "entry", "status", "result", "error"],
        "properties": {
            "id": {"type": "string"},
            "entry": {"type": "string"},
            "status": {"type": "string",
                       "enum": ["pending", "running", "waiting", "completed", "failed", "cancelled"]},
            "result": {"type": ["string", "null"], "description": "The value, as a Flowmetal literal"},
            "error": {"type": ["string", "null"], "description": "Why the run failed, with its stack trace"},
            "args": {"type": "array", "items": {"type": "string"}, "description": "Flowmetal literals"},
            "code_hash": {"type": "string"},
            "created": {"type": "number", "description": "Unix time"},
            "updated": {"type": "number", "description": "Unix time of its latest change"},
            "last_seq": {"type": "integer", "description": "The `seq` of its latest event"},
        },
    },
    "Event": {
        "type": "object", "required": ["seq", "time", "kind", "step", "line"], "additionalProperties": True,
        "description": "One event of a run's log; its kind's own fields (`endpoint`, `args`, `result`, "
                       "`message`, `error`, `due`, ...) stand beside these",
        "properties": {
            "seq": {"type": "integer"},
            "time": {"type": "number", "description": "Unix time"},
            "kind": {"type": "string", "description": "run-started, step-requested, step-completed, timer-set, "
                                                      "timer-fired, timer-cancelled, log, run-completed, "
                                                      "run-failed, run-cancelled"},
            "step": {"type": ["integer", "null"]},
            "line": {"type": ["integer", "null"], "description": "The source line that caused it"},
        },
    },
    "Cancelled": {
        "type": "object", "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": {"type": "string", "enum": ["cancelled", "cancelling"]}},
    },
    "Claim": {
        "type": "object", "required": ["endpoints"], "additionalProperties": False,
        "properties": {
            "endpoints": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100,
                          "description": "Endpoint names, as `package/name!`"},
            "lease": {"type": "number", "minimum": 1, "maximum": 3600, "default": 30,
                      "description": "Seconds the claim holds; after that the step may be claimed again"},
            "wait": {"type": "number", "minimum": 0, "maximum": 60, "default": 0,
                     "description": "Seconds to wait for a step when none is pending (long poll)"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "worker": {"type": "string", "description": "The claimant's name, recorded with the claim"},
        },
    },
    "Step": {
        "type": "object", "required": ["run_id", "step", "endpoint", "key", "args", "literals"],
        "properties": {
            "run_id": {"type": "string"},
            "step": {"type": "integer"},
            "endpoint": {"type": "string"},
            "key": {"type": "string", "description": "The idempotency key: the same on every claim of this step"},
            "args": {"type": "object", "description": "Parameter names to their values as plain JSON"},
            "literals": {"type": "object", "additionalProperties": {"type": ["string", "null"]},
                         "description": "Parameter names to their values as exact Flowmetal literals"},
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
        },
    },
    "Fail": {"type": "object", "required": ["error"], "additionalProperties": False,
             "properties": {"error": {"type": "string", "minLength": 1}}},
    "StepDone": {
        "type": "object", "required": ["run_id", "step", "status"],
        "properties": {"run_id": {"type": "string"}, "step": {"type": "integer"},
                       "status": {"type": "string", "enum": ["completed", "failed"]}},
    },
    "Delivered": {"type": "object", "required": ["status"],
                  "properties": {"status": {"type": "string", "enum": ["delivered"]}}},
}


def document() -> dict:
    """The OpenAPI 3.1 document of the API."""
    paths = {
        "/callback/{token}": {"post": {
            "operationId": "deliverCallback", "summary": "Deliver a callback's body (once)",
            "description": "The body, as text, is what `get-callback!` returns. No API token is needed: the "
                           "callback's unguessable token authorises it.",
            "security": [],
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"content": {"*/*": {"schema": {"type": "string", "maxLength": 1048576}}}},
            "responses": {"200": _json("Delivered", "Delivered; the waiting run wakes"),
                          **_errors(400, 404, 409, 413, 415)},
        }},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document"), **_errors(401)},
        }},
        "/api/runs": {
            "post": {
                "operationId": "createRun", "summary": "Check a program and start a run of it",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewRun")}}},
                "responses": {"201": _json("Created", "The run is recorded; a worker will run it"),
                              **_errors(400, 401, 413, 422)},
            },
            "get": {
                "operationId": "listRuns", "summary": "List the runs",
                "parameters": [{"name": "since", "in": "query", "required": False, "schema": {"type": "number"},
                                "description": "Only the runs changed at or after this Unix time"}],
                "responses": {"200": _json({"type": "array", "items": _ref("Run")}, "The runs, oldest first"),
                              **_errors(400, 401)},
            },
        },
        "/api/runs/{run_id}": {"get": {
            "operationId": "getRun", "summary": "One run", "parameters": [_run_id()],
            "responses": {"200": _json("Run", "The run"), **_errors(401, 404)},
        }},
        "/api/runs/{run_id}/sources": {"get": {
            "operationId": "getSources", "summary": "The program a run runs, as stored with it",
            "parameters": [_run_id()],
            "responses": {"200": _json({"type": "object", "additionalProperties": {"type": "string"}},
                                       "Its files: each name to its text"), **_errors(401, 404, 409)},
        }},
        "/api/runs/{run_id}/trace": {"get": {
            "operationId": "getTrace", "summary": "A run's log", "parameters": [_run_id(), _after()],
            "responses": {"200": _json({"type": "array", "items": _ref("Event")}, "The events, in order"),
                          **_errors(400, 401, 404)},
        }},
        "/api/runs/{run_id}/events": {"get": {
            "operationId": "streamEvents", "summary": "A run's log as a live stream of server-sent events",
            "description": "Each event as `id: <seq>`, `event: <kind>`, `data: <Event as JSON>`: those logged "
                           "so far, then each as it is committed. When the run has ended, a last `end` event "
                           "(`data: {\"status\": ...}`) and the stream closes.",
            "parameters": [_run_id(), _after()],
            "responses": {"200": {"description": "The stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 404)},
        }},
        "/api/runs/{run_id}/cancel": {"post": {
            "operationId": "cancelRun", "summary": "Cancel a run", "parameters": [_run_id()],
            "responses": {"200": _json("Cancelled", "Cancelled"),
                          "202": _json("Cancelled", "Running now: it stops at its next checkpoint"),
                          **_errors(401, 404, 409)},
        }},
        "/api/steps/claim": {"post": {
            "operationId": "claimSteps", "summary": "Claim pending step requests of named endpoints (long poll)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Claim")}}},
            "responses": {"200": _json("Steps", "The steps claimed (none when `wait` passed first)"),
                          **_errors(400, 401, 413)},
        }},
        "/api/steps/{run_id}/{step}/complete": {"post": {
            "operationId": "completeStep", "summary": "Record a step's result (once)",
            "parameters": [_run_id(), _step()],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Complete")}}},
            "responses": {"200": _json("StepDone", "Recorded; the run wakes"),
                          **_errors(400, 401, 404, 409, 413, 422)},
        }},
        "/api/steps/{run_id}/{step}/fail": {"post": {
            "operationId": "failStep", "summary": "Record that a step could not be performed; its run fails",
            "parameters": [_run_id(), _step()],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Fail")}}},
            "responses": {"200": _json("StepDone", "Recorded; the run fails when it resumes"),
                          **_errors(400, 401, 404, 409, 413)},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Flowmetal", "version": __version__,
                 "description": "The HTTP API of `flowmetal serve`: start runs, read runs and traces, claim "
                                "and complete step requests from connectors in any language, cancel runs, "
                                "deliver callbacks. Errors are `{\"error\": \"...\"}` with a 4xx status and "
                                "change nothing. See docs/http-api.md."},
        "servers": [{"url": "http://127.0.0.1:8700"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Needed when FLOWMETAL_TOKEN is set"}},
        },
    }


def text() -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(text())
