"""Incremental analysis: after any edit, the diagnostics are exactly those of a check
from scratch, and an edit inside one definition re-checks only what it must."""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from flowmetal.lang.analysis import Workspace, check_sources

sys.path.insert(0, str(ROOT / "bench"))
import programs  # noqa: E402

WILSON = (ROOT / "examples" / "wilson.flow").read_text(encoding="utf-8")
GENERATED = programs.flowmetal(200)


def key(diagnostics):
    return sorted((d.span.line, d.span.column, d.span.end_line, d.span.end_column, d.code, d.message)
                  for d in diagnostics)


EDIT_TEXT = st.sampled_from(["", "x", "1", '"s"', " ", "\n", "(", ")", "]", "(f)", ":", "+", "y!", "nil",
                             "(+ a 1)", "int?", ":default 2", "\"", ";", "str?"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([WILSON, GENERATED]), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 6), EDIT_TEXT),
                                                      min_size=1, max_size=6))
def test_incremental_equals_from_scratch(text, edits):
    workspace = Workspace()
    workspace.set_file("p.flow", text)
    workspace.analyse()
    for where, length, new in edits:
        current = workspace.text("p.flow")
        start = int(where * len(current))
        end = min(len(current), start + length)
        workspace.edit("p.flow", start, end, new)
        expected = current[:start] + new + current[end:]
        assert workspace.text("p.flow") == expected
        assert key(workspace.diagnostics("p.flow")) == key(check_sources({"p.flow": expected}))


def test_an_edit_inside_a_body_rechecks_only_that_definition():
    workspace = Workspace()
    workspace.set_file("g.flow", GENERATED)
    workspace.analyse()
    at = GENERATED.index("(+ x 5)")
    workspace.edit("g.flow", at + 5, at + 6, '"five"')
    assert workspace.stats == {"full": 1, "incremental": 1, "rechecked": 1}
    (diag,) = workspace.diagnostics("g.flow")
    assert (diag.code, diag.message) == ("FM403", "expected number?, found str? (argument 2 of `+`)")
    # Positions after the edit moved with it: a later definition's name is where the text has it.
    later = workspace.definition_at("g.flow", workspace.text("g.flow").index("step-9 ["))
    assert later is not None and later.name == "step-9"
    assert later.node.start == workspace.text("g.flow").index("step-9 [")


def test_a_changed_signature_rechecks_its_callers():
    text = ("(defpackage p\n"
            "  (defn callee [x : int?] : str? (str x))\n"
            "  (defn caller [] : str? (callee 1))\n"
            "  (defn bystander [] : int? 2))\n")
    workspace = Workspace()
    workspace.set_file("p.flow", text)
    assert workspace.diagnostics("p.flow") == []
    at = text.index("[x : int?]") + len("[x : ")
    workspace.edit("p.flow", at, at + len("int?"), "str?")
    assert workspace.stats["incremental"] == 1 and workspace.stats["rechecked"] == 2
    (diag,) = workspace.diagnostics("p.flow")
    assert diag.message == "expected str?, found int? (argument `x` of `callee`)"
    assert diag.span.line == 3
