"""Signals: named JSON messages sent to a run, received with `flowmetal.signal/receive!`.

A signal is sent from outside (`POST /api/runs/{id}/signals/{name}`, `flowmetal
signal RUN NAME JSON`; both call `check_name`, `check_body` and then the store's
`send_signal`) and queued in the store, per run, in arrival order. `(receive!
name)` takes the oldest queued signal of that name:

    one is queued       answered at once: the run goes on with its body
    none is queued      the run waits (a step `receive!` pending in the store, which
                        no connector claims); a signal of that name sent later wakes it

Consuming is part of the run's progress, never done apart from it: the driver
notes the signal it took (`extra["signals"]`, and skips it in later looks) and
the store marks it consumed in the very commit that records the events and the
snapshot that follow from it. A crash before that commit leaves the signal
queued and the run at its previous snapshot, where it takes the same signal
again; so none is lost and none is received twice. A wait and a send meet in
one transaction whichever comes first (`SQLiteStore._meet_signal`), so a
signal sent between the driver's look and its commit still wakes the run.

Under `with-timeout!`, a receive that times out consumes nothing: its step is
cancelled and the signal that comes later stays queued for the next receive.
When a signal is queued and the timeout is due at once, the signal wins.

The run's log records a received signal (`signal-received`: its name, body,
arrival number and the time it was sent) on the step that consumed it, then the
step's `step-completed` (its result, which replay reads). Nothing is logged when
a signal is sent: the log is written by the run's driver alone, in order.

This module depends on the driver only through the attributes it is given
(`store`, `run`, `event`, `extra`, `suspend`), so the executor imports it and
not the other way round.
"""

from __future__ import annotations

import json
import re

from flowmetal.runtime.faults import Fault
from flowmetal.runtime.primitives import read_json
from flowmetal.runtime.store import SIGNAL_WAIT
from flowmetal.runtime.values import List, Map, encode, literal

RECEIVE = SIGNAL_WAIT
# A signal's name: 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`; it
# stands in a URL's path as it is (no `/`, nothing to escape, never `.` or `..`).
NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
NAME_RULE = "1 to 128 letters, digits, `_`, `.` or `-`, starting with a letter, a digit or `_`"
MAX_BODY = 1024 * 1024   # bytes of a body's JSON text, as every API body
MAX_DEPTH = 100          # levels of nesting, as every API body


class SignalError(ValueError):
    """A name or a body no signal can have: the message says what is wrong."""


def check_name(name: str) -> str:
    if not re.fullmatch(NAME, name, flags=re.ASCII):
        shown = json.dumps(name[:80], ensure_ascii=True) + ("..." if len(name) > 80 else "")
        raise SignalError(f"{shown} is not a signal name: a name is {NAME_RULE}")
    return name


def check_key(key: str) -> str:
    """An Idempotency-Key as the API takes it: 1 to 255 printable ASCII characters, no blank at
    either end."""
    if not 1 <= len(key) <= 255 or not all(" " <= c <= "~" for c in key) or key != key.strip(" "):
        raise SignalError(f"an idempotency key is 1 to 255 printable ASCII characters without a blank at "
                          f"either end, not {json.dumps(key[:60])}")
    return key


def body_value(text: str):
    """The Flowmetal value of a body's JSON text, as `loads` reads it (maps with string keys)."""
    try:
        return read_json(text)
    except RecursionError:
        raise SignalError(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as error:
        raise SignalError(f"the body is not JSON: {error}") from None
    except ValueError as error:  # NaN, a number out of range, a lone surrogate
        raise SignalError(f"the body is not JSON a run can receive: {error}") from None


def check_body(text: str) -> str:
    """A body as it is stored: JSON text of at most MAX_BODY bytes and MAX_DEPTH levels, whose
    every number is in range (a value the run can receive). SignalError otherwise."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY:
        raise SignalError(f"the body is {size} bytes; the limit is {MAX_BODY} bytes (1 MiB)")
    value = body_value(text)
    level, deepest = [(value, 1)], 1
    while level:
        item, depth = level.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            raise SignalError(f"the body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, List):
            level.extend((v, depth + 1) for v in item)
        elif isinstance(item, Map):
            level.extend((v, depth + 1) for v in item.values())
    return text.strip()


# -- the driver's side ------------------------------------------------------------------------------------
# `queued` and `take` are the whole of receiving; `receive` parks the task when none is queued,
# and the executor's `wake` takes one for it when every task waits.

def _taken(driver) -> list[int]:
    """The signals this driver consumed since its last commit."""
    return [seq for seq, _ in driver.extra["signals"]]


def _name(value) -> str:
    if not isinstance(value, str):
        raise Fault(f"`receive!` takes a signal's name, a str?, not {literal(value)}")
    try:
        return check_name(value)
    except SignalError as error:
        raise Fault(f"`receive!`: no signal can be sent by the name {error}") from None


def queued(driver, name: str):
    """The oldest signal `name` of the driver's run that nobody took: a row (seq, name, body,
    sent), or None."""
    return driver.store.next_signal(driver.run.id, name, _taken(driver))


def take(driver, step: int, row, waited: bool = False):
    """Receive the signal `row` at `step`: logged, noted for the next commit; its value, for
    the machine. `waited`: the task had parked on it (given when every task waited, in the
    log's order; see the executor's `wake`), and the pending wait is recorded as answered."""
    try:
        value = body_value(row["body"])
    except SignalError as error:  # checked when sent: only a store edited by hand gets here
        raise Fault(f"signal {row['seq']} `{row['name']}` cannot be received: {error}") from None
    driver.extra["signals"].append((row["seq"], step))
    driver.event("signal-received", step=step, name=row["name"], body=json.loads(row["body"]),
                 signal=row["seq"], sent=row["sent"])
    driver.event("step-completed", step=step, result=literal(value), **({"waited": True} if waited else {}))
    if waited:
        driver.extra["completed_steps"].append((step, json.dumps(encode(value), separators=(",", ":"))))
    return value


def receive(driver, machine, step: int, name_arg):
    """`(receive! name)` at `step`: None when a queued signal answered it (the run goes on),
    else the Progress of the run now waiting."""
    name = _name(name_arg)
    row = queued(driver, name)
    if row is not None:
        machine.resume(take(driver, step, row))
        return None
    driver.extra["steps"].append((step, RECEIVE, json.dumps({"name": name}), f"{driver.run.id}:{step}"))
    return driver.park(machine, {"step": step, "kind": "signal", "name": name})
