"""Child runs (`flowmetal.run`): `start-run!`, `await-run!` and `cancel-run!`, answered by the
executor and computed again by replay, the same way.

A child run is a run of its own, in the store's `runs` with its `parent`, pinned to its
parent's program. Its id is derived from the parent's id and the step that started it
(`store.child_id`), so the step's result, `#<run ID>`, which has no literal to read back,
is recomputed by replay rather than read from the log, and a step made again after a crash
names the same child. What happens in the store (the child created with the parent's
commit of the step, a cancel applied with the next commit, the parent woken by the child's
end) is `SQLiteStore.commit`'s; here is what the run sees:

    start-run!    the child's entry (`package/name` of the `defn` named) and its arguments as
                  literals, refused with a fault when one has none (a function, a task)
    await-run!    the child's outcome when it has ended: its value, read back from its
                  result's literal, or a fault (`child run ID failed: MESSAGE` with its
                  stack trace, `child run ID was cancelled`); else the task waits (a wait of
                  kind "child") until the child's end wakes the run
    cancel-run!   recorded for the next commit, which cancels the child and its children

An outcome given to an awaiting task is recorded in its `step-completed` (`result`, or
`error` for a fault), which replay gives back in the log's order.
"""

from __future__ import annotations

from flowmetal.lang import deep
from flowmetal.runtime.faults import Fault
from flowmetal.runtime.literals import read_literal
from flowmetal.runtime.store import ENDED, Run, child_id
from flowmetal.runtime.values import ChildRef, GlobalFn, List, literal

PACKAGE = "flowmetal.run"


def _text(value) -> str:
    try:
        return deep.call(literal, value)
    except RecursionError:
        raise Fault("a value is nested too deep to be printed") from None


def start_request(program, args: dict) -> tuple[str, list[str]]:
    """`start-run!`'s arguments as a run to create: its entry, `package/name`, and its arguments'
    literals. A fault when `f` is not a `defn` of the program, the count is wrong, or an
    argument has no literal a run can be started with."""
    f, given = args["f"], args.get("args")
    given = list(given) if isinstance(given, (List, list, tuple)) else []
    definition = program.functions.get((f.package, f.name)) if isinstance(f, GlobalFn) else None
    if definition is None or definition.form != "defn":
        raise Fault(f"`start-run!` needs the name of a function defined with `defn`, not {_text(f)}")
    params = definition.params
    required = sum(1 for p in params if p.default is None)
    if not required <= len(given) <= len(params):
        takes = f"{required}" if required == len(params) else f"{required} to {len(params)}"
        raise Fault(f"`{f.name}` takes {takes} argument{'' if len(params) == 1 else 's'}, {len(given)} given "
                    f"to `start-run!`")
    texts = []
    for i, value in enumerate(given, 1):
        text = _text(value)
        try:
            read_literal(text, program, f.package)
        except ValueError:
            raise Fault(f"argument {i} of `{f.name}`, {text}, cannot be passed to a child run: it has no "
                        f"literal (a run's arguments are plain values)") from None
        texts.append(text)
    return f"{f.package}/{f.name}", texts


def read_value(text: str, program, package: str):
    """A value from its literal: names as in `package`, else in the package that defines them."""
    try:
        return read_literal(text, program, package)
    except ValueError:
        for scope in program.scopes.values():
            try:
                return read_literal(text, program, scope.name)
            except ValueError:
                continue
        raise


def outcome(child: Run, program, package: str) -> tuple:
    """An ended child's outcome for its awaiter: ("ok", value, literal) or ("fault", message)."""
    if child.status == "completed":
        try:
            return ("ok", read_value(child.result, program, package), child.result)
        except ValueError:
            return ("fault", f"child run {child.id} returned {child.result}, which cannot be passed back to "
                             f"its parent: it has no literal")
    if child.status == "failed":
        error = (child.error or "").removeprefix("fault: ").replace("\n", "\n  ")
        return ("fault", f"child run {child.id} failed: {error}")
    return ("fault", f"child run {child.id} was cancelled")


def child_of(value, name: str) -> ChildRef:
    if not isinstance(value, ChildRef):
        raise Fault(f"`{name}` needs a child run, not {_text(value)}")
    return value


# -- the executor's side ---------------------------------------------------------------------------

def endpoint(driver, machine, wait):
    """Answer one of `flowmetal.run`'s endpoints for the executor's driver: None to run on, or
    the driver's `park` when the task now waits for a child."""
    step, name = wait.step, wait.endpoint
    if name == "start-run!":
        entry, texts = start_request(driver.program, wait.args)
        ref = ChildRef(child_id(driver.run.id, step))
        driver.extra["children"].append((ref.run, entry, texts))
        driver.event("child-started", step=step, child=ref.run, entry=entry, args=texts)
        driver.event("step-completed", step=step, result=literal(ref))
        machine.resume(ref)
        return None
    ref = child_of(wait.args["c"], name)
    if name == "cancel-run!":
        own(driver, ref.run)
        driver.extra["cancel_children"].append(ref.run)
        driver.event("step-completed", step=step, result="nil")
        machine.resume(None)
        return None
    answer = ended(driver, ref.run)
    if answer is None:
        return driver.park(machine, {"step": step, "kind": "child", "child": ref.run, "expr": wait.expr_id})
    give(driver, machine, step, answer)
    return None


def own(driver, run_id: str) -> Run | None:
    """A child of the driver's run (None: created with its next commit)."""
    if any(c[0] == run_id for c in driver.extra["children"]):
        return None
    child = driver.store.get_run(run_id)
    if child is None or child.parent != driver.run.id:
        raise Fault(f"no child run `{run_id}` of this run")
    return child


def ended(driver, run_id: str) -> tuple | None:
    """The outcome of a child that has ended, else None."""
    child = own(driver, run_id)
    if child is None or child.status not in ENDED:
        return None
    return outcome(child, driver.program, driver.program.package_of(driver.run.entry)[0])


def came(driver) -> list[tuple]:
    """The ended children that parked tasks await: (when it ended, step, task, outcome)."""
    out = []
    for tid, wait in driver.waits.head.items():  # a wait for a child is kept in the head
        if wait["kind"] == "child":
            answer = ended(driver, wait["child"])
            if answer is not None:
                out.append((driver.store.get_run(wait["child"]).updated, wait["step"], tid, (*answer, wait.get("expr"))))
    return out


def give(driver, machine, step: int, answer: tuple, task: int | None = None) -> None:
    """Give the current task (or, when `task` is given, that parked task) a child's outcome,
    recorded: its value, or its fault raised where the task waits."""
    waited = {} if task is None else {"waited": True}
    if task is not None:
        machine.switch_to(task)
    if answer[0] == "ok":
        driver.event("step-completed", step=step, result=answer[2], **waited)
        machine.resume(answer[1])
        return
    driver.event("step-completed", step=step, error=answer[1], **waited)
    raise_at(machine, answer[1], answer[2] if len(answer) > 2 else None)


def raise_at(machine, message: str, expr_id: int | None) -> None:
    """Raise a child's fault in the current task, where it awaits the child (`expr_id`, the
    `await-run!` call: a run resumed from its snapshot no longer knows where it stopped)."""
    if expr_id is not None and expr_id >= 0:
        machine.fault_at = machine.program.exprs[expr_id]
    raise Fault(message)


def awaited(waits: dict) -> list[str]:
    """The children that parked tasks await."""
    return [w["child"] for w in waits.values() if w["kind"] == "child"]
