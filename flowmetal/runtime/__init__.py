"""The durable runtime: the evaluator, its store, and the executors that drive runs.

    program.py     a checked program, indexed so a run's state can name its code
    values.py      runtime values, their literals and their stored form
    machine.py     the evaluator: a CEK machine whose state is plain data
    primitives.py  the built-in functions at run time
    faults.py      the fault a run fails with, and its stack trace
    driving.py     starting runs and driving them (one run, or a worker's loop)

`evaluate` runs a function to its value in memory, with the standard endpoints
answered at once (`now!` a fixed clock, `sleep!` and `log!` nil, `jitter!` as for a run
whose id is `memory`): for tests and
for pure computation. Durable runs go through the store and an executor.
"""

from __future__ import annotations

from functools import lru_cache

from flowmetal.runtime.jitter import ENDPOINT as JITTER, jitter
from flowmetal.runtime.machine import Done, Fault, Machine, Wait
from flowmetal.runtime.program import Program, ProgramError, load
from flowmetal.runtime.values import Keyword, Member, RecordValue, literal

FIXED_NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in milliseconds


@lru_cache(maxsize=32)
def _program(text: str, name: str) -> Program:
    return load({name: text})


def evaluate(text: str, entry: str, args: list | tuple = (), name: str = "<input>.flow"):
    """The value of `entry` applied to `args`, evaluated in memory."""
    program = _program(text, name)
    machine = Machine(program)
    machine.start(entry, list(args))
    logs: list[str] = []
    callbacks = 0
    while True:
        outcome = machine.run()
        if isinstance(outcome, Done):
            return outcome.value
        endpoint = outcome.name
        if endpoint == "flowmetal.time/now!":
            machine.resume(FIXED_NOW + outcome.step)
        elif endpoint in ("flowmetal.time/sleep!",):
            machine.resume(None)
        elif endpoint == JITTER:
            machine.resume(jitter("memory", outcome.step, outcome.args.get("n")))
        elif endpoint == "flowmetal.log/log!":
            logs.append(outcome.args.get("message"))
            machine.resume(None)
        elif endpoint == "flowmetal.time/with-timeout!":
            result = machine.enter_timeout(outcome.step, outcome.args["f"])
            if result is not None:  # the function itself waits at once
                raise Fault(f"`{result.name}` cannot be answered in memory")
        elif endpoint == "http.callback/make-callback!":
            callbacks += 1
            machine.resume(RecordValue("http.callback", "callback", ("url",),
                                       (f"http://127.0.0.1/callback/memory-{callbacks}",)))
        else:
            raise Fault(f"`{endpoint}` cannot be answered in memory: it needs a durable run")


__all__ = ["evaluate", "literal", "Fault", "Machine", "Wait", "Done", "Program", "ProgramError", "load",
           "Keyword", "Member", "RecordValue"]
