"""A workspace told which files are open keeps the others as an index, and answers as if it did not.

The same generated workspace analysed twice: whole (no `focus`, as the command line does) and with
one file open; every answer is compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flowmetal.ide import features
from flowmetal.lang.analysis import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parent / "lsp"))
from test_big_workspace import package  # noqa: E402  (the LSP tests' generated packages)

FILES = 7
OPEN = f"p{FILES - 1}.flow"


def workspaces(units: int = 12) -> tuple[Workspace, Workspace]:
    texts = {f"p{k}.flow": package(k, units) for k in range(FILES)}
    plain, focused = Workspace(), Workspace()
    focused.focus = {OPEN}
    for name, text in texts.items():
        plain.set_file(name, text)
        focused.set_file(name, text)
    return plain, focused


def references(ws: Workspace, package_name: str, name: str) -> list[tuple[str, int]]:
    symbol = ws.program.packages[package_name].decls[name]
    return sorted((token.source.name, token.start) for token in ws.references(symbol))


def answers(ws: Workspace) -> tuple:
    ws.analyse()  # as each project-wide query does
    target = ws.program.packages["ws.p0"].decls["item-cents"]
    incoming = sorted((caller.package, caller.name, len(spans)) for caller, spans in features.incoming_calls(ws, target))
    symbols = sorted((s.package, s.name) for s in features.workspace_symbols(ws, "step-1"))
    return (references(ws, "ws.p0", "item-cents"), references(ws, "ws.p1", "step-3"), incoming, symbols,
            [d.message for d in ws.diagnostics(OPEN)])


def test_the_open_file_is_answered_first_from_its_requires_declarations():
    plain, focused = workspaces()
    assert [d.message for d in focused.diagnostics(OPEN)] == [d.message for d in plain.diagnostics(OPEN)]
    assert not focused.complete  # the files it does not require are not read yet
    # Its requires (p2, p0) are there for their declarations only: no tree, no bodies.
    assert set(focused.files) == {OPEN, "p2.flow", "p0.flow"}
    assert focused.files["p2.flow"].module.tree.items == [] and not focused.files["p2.flow"].kept


def test_after_the_whole_pass_the_answers_are_those_of_the_whole_workspace_from_an_index():
    plain, focused = workspaces()
    focused.ready()
    work = focused.start_pass()
    steps = 1
    while work.step():
        steps += 1
    assert focused.complete and steps > FILES * 2  # a step at a time: each file read, then checked
    assert answers(focused) == answers(plain)
    for name, analysis in focused.files.items():
        if name != OPEN:  # an index: no tree, no bodies, no types of expressions
            assert not analysis.kept and analysis.module.tree.items == []
            assert all(d.body == [] for p in analysis.module.packages for d in p.definitions)
            assert all(not facts.types for facts in analysis.facts.values())
    assert focused.files[OPEN].kept and any(facts.types for facts in focused.files[OPEN].facts.values())


def test_the_index_holds_while_the_program_declares_the_same_names():
    plain, focused = workspaces()
    focused.analyse()
    passes = focused.stats["full"]
    # A change needing more than an edit in place, declaring the same names: no new pass.
    focused.set_file(OPEN, focused.texts[OPEN] + ";; a comment\n")
    plain.set_file(OPEN, plain.texts[OPEN] + ";; a comment\n")
    focused.ready()
    assert focused.complete and focused.stats["full"] == passes
    assert answers(focused) == answers(plain)
    # Closing the file: it joins the index as it is.
    focused.focus = set()
    focused.set_file(OPEN, focused.texts[OPEN])
    focused.ready()
    assert focused.complete and focused.stats["full"] == passes and not focused.files[OPEN].kept
    assert answers(focused) == answers(plain)


def test_a_new_definition_or_a_file_changed_elsewhere_needs_a_new_pass():
    plain, focused = workspaces()
    focused.analyse()
    for ws in (plain, focused):
        ws.set_file(OPEN, ws.texts[OPEN].replace("  (defn mistake", "  (defn step-1b [] : int? (up/step-1 1))\n"
                                                                      "  (defn mistake"))
    focused.ready()
    assert not focused.complete
    focused.analyse()
    assert answers(focused) == answers(plain)
    for ws in (plain, focused):  # a file nobody has open, changed on disk
        ws.set_file("p3.flow", ws.texts["p3.flow"].replace("(defn step-5 ", "(defn step-5-renamed "))
    focused.ready()
    assert not focused.complete
    assert answers(focused) == answers(plain)
    assert ("ws.p3", "step-5-renamed") not in {(s.package, s.name) for s in features.workspace_symbols(plain, "step-1")}
    assert [s.name for s in features.workspace_symbols(focused, "renamed")] == ["step-5-renamed"]
