"""`task?` and `child?` at run time: true of a task (`TaskRef`) and a child run (`ChildRef`) alone.

A program cannot make either value without the runtime's `spawn!` and `start-run!`,
so the built-in predicates are called here as compiled code calls them, and
`is_instance` (which `match`, arguments and results also go through) is asked
of the constructed types too: what a task yields is not known until it has, so
`(task? int?)` tests the outer shape, as `(list? int?)` does.
"""

from __future__ import annotations

import pytest

from flowmetal.lang.types import INT, STR, Handle, ListOf, union
from flowmetal.runtime.primitives import implementation, is_instance
from flowmetal.runtime.values import EMPTY_LIST, ChildRef, TaskRef

TASK, CHILD = TaskRef(3), ChildRef("run-1")
OTHERS = [None, 1, "t", EMPTY_LIST]


def test_the_predicates_tell_tasks_and_child_runs_apart() -> None:
    task_p, child_p = implementation("task?"), implementation("child?")
    assert task_p([TASK]) is True and child_p([CHILD]) is True
    assert task_p([CHILD]) is False and child_p([TASK]) is False
    for value in OTHERS:
        assert task_p([value]) is False and child_p([value]) is False


@pytest.mark.parametrize("t, value, expected", [
    (Handle("task?", INT), TASK, True),
    (Handle("task?", STR), TASK, True),
    (Handle("child?", INT), TASK, False),
    (Handle("child?", INT), CHILD, True),
    (union([INT, Handle("task?", INT)]), TASK, True),
    (union([INT, Handle("task?", INT)]), CHILD, False),
    (ListOf(Handle("task?", INT)), TASK, False),
])
def test_is_instance_of_task_and_child_types(t, value, expected) -> None:
    assert is_instance(value, t) is expected
