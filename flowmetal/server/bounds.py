"""The bounds and patterns of the HTTP API that the handlers (`app`) enforce and
the OpenAPI document (`openapi`) states.

Kept apart from both so that the two read the same numbers and patterns, and
the document can be built without the application (and the application serve
the document) with imports in one direction only.
"""

from __future__ import annotations

MAX_WAIT = 60.0                 # seconds: the longest long poll of /api/steps/claim
MAX_LEASE = 3600.0              # seconds: the longest lease a connector may take on a step
MAX_LIMIT = 100                 # steps one claim may return
MAX_EPOCH = 2 ** 31 - 1         # the largest claim epoch of a step (a 32-bit integer in the store)
MAX_CURSOR = 2 ** 63 - 1        # the largest change cursor (`GET /api/runs?since=`): a 64-bit integer
CURSOR_HEADER = "Flowmetal-Cursor"   # the change cursor `GET /api/runs` answers with
MAX_LAST = 1_000_000_000        # `GET /api/runs?last=`: the most runs one may ask for
# Patterns: blanks are spelled out, not `\s`, which means other characters in Python than in JSON
# Schema's regexes.
NOT_BLANK = r"[^ \t\n\r\f\v]"                          # found in a text that is not all blanks
ENDPOINT_NAME = r"[^ \t\n\r\f\v]+/[^ \t\n\r\f\v/]+"     # a whole endpoint name: `package/name`
