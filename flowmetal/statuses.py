"""The states of a run, and how a run's entry function is named when runs are narrowed to it.

A module of its own, importing nothing, so that the command line (its options' help, at
start-up), the language server, the HTTP API and its OpenAPI document, and the store all
read the same words and the same rule without loading the store.
"""

from __future__ import annotations

import re

RUN_STATUSES = ("pending", "running", "waiting", "completed", "failed", "cancelled")

# An entry to narrow runs to (`flowmetal runs --entry`, `GET /api/runs?entry=`, the language
# server's `flowmetal/runs`): `package/name`, or a function's name alone (that function of any
# package); no part empty. A regex both Python and JSON Schema read alike.
ENTRY_PATTERN = r"(?:[^/]+/)*[^/]+"


def is_entry(text: str) -> bool:
    """Whether `text` names an entry as `ENTRY_PATTERN` says."""
    return re.fullmatch(ENTRY_PATTERN, text) is not None


__all__ = ["RUN_STATUSES", "ENTRY_PATTERN", "is_entry"]
