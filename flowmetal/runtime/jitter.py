"""`flowmetal.retry/jitter!`: a number that looks random, derived from a run and a step.

`retry!` spreads its waits so that runs failing together do not all try again
at the same moment. A run may not read a clock or a random source between
durable steps (replay must reproduce it), so the spread comes from an endpoint
the executor answers at once, like `now!`, and its result is recorded in the
log like every step's. Unlike `now!`, the answer is not even read from the
world: it is the SHA-256 of the run's id and the step's number, reduced to
`0 <= j < n`. The same step of the same run always gets the same number (a
step answered again after a crash, before its commit, gets it again too), and
different runs, and different attempts of one run, get different ones.
"""

from __future__ import annotations

import hashlib

ENDPOINT = "flowmetal.retry/jitter!"


def jitter(run_id: str, step: int, n) -> int:
    """A whole number from 0 to n - 1 (0 when n is 1 or less, or not an integer)."""
    if not isinstance(n, int) or isinstance(n, bool) or n <= 1:
        return 0
    digest = hashlib.sha256(f"{run_id}:{step}".encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % n
