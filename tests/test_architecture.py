"""The architecture's invariants (docs/architecture.md), checked on the code itself.

Imports are read from the source with `ast`, so a violation fails here before
anyone has to notice it in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

# Layers, lowest first. A module may import modules of its own layer and of the
# layers below it, never above. Every module of the package must be listed.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["flowmetal", "flowmetal.source", "flowmetal.diagnostics", "flowmetal.terminal", "flowmetal.filenames",
              "flowmetal.deep"]),
    ("syntax", ["flowmetal.syntax"]),
    ("forms", ["flowmetal.forms"]),
    ("types", ["flowmetal.types", "flowmetal.builtins"]),
    ("resolve", ["flowmetal.resolve"]),
    ("check", ["flowmetal.check"]),
    ("analysis", ["flowmetal.analysis"]),
    ("ide", ["flowmetal.ide", "flowmetal.format"]),
    ("runtime", ["flowmetal.runtime"]),
    ("connectors", ["flowmetal.connectors"]),
    ("server", ["flowmetal.server"]),
    ("tools", ["flowmetal.checking", "flowmetal.render", "flowmetal.workbench"]),
    ("cli", ["flowmetal.cli", "flowmetal.__main__"]),
]
PROTOCOL = ("pygls", "lsprotocol", "flowmetal_lsp", "lsp")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def layer_of(module: str) -> int | None:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + ".") and prefix != "flowmetal":
                best = rank
    return best


PACKAGE_MODULES = sorted((ROOT / "flowmetal").rglob("*.py"))


# The command line is above every layer: `flowmetal lsp` starts the server, which
# it imports only when that command runs. It is the one module that may.
ABOVE_LSP = {"flowmetal.cli"}


@pytest.mark.parametrize("path", PACKAGE_MODULES, ids=[module_name(p) for p in PACKAGE_MODULES])
def test_nothing_below_lsp_speaks_the_protocol(path):
    if module_name(path) in ABOVE_LSP:
        assert {m for m in imports(path) if m.split(".")[0] in ("pygls", "lsprotocol")} == set()
        return
    bad = {m for m in imports(path) if m.split(".")[0] in PROTOCOL}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}: only lsp/ may"


@pytest.mark.parametrize("path", PACKAGE_MODULES, ids=[module_name(p) for p in PACKAGE_MODULES])
def test_dependencies_point_down(path):
    me = module_name(path)
    mine = layer_of(me)
    assert mine is not None, f"{me} is in no layer: add it to LAYERS and to docs/architecture.md"
    for imported in imports(path):
        if not imported.startswith("flowmetal.") or imported == me:
            continue
        theirs = layer_of(imported)
        if theirs is None:  # `from flowmetal.x import name`: judge by the module
            continue
        assert theirs <= mine, (f"{me} ({LAYERS[mine][0]}) imports {imported} "
                                f"({LAYERS[theirs][0]}), a layer above it")


def test_the_syntax_layer_knows_nothing_of_checking_or_output():
    for path in (ROOT / "flowmetal" / "syntax").rglob("*.py"):
        for imported in imports(path):
            assert not imported.startswith(("flowmetal.checking", "flowmetal.render", "flowmetal.cli")), (
                f"{module_name(path)} imports {imported}")


def test_editors_hold_no_language_logic():
    """Editors are configuration and a client for `flowmetal lsp`: no parser, no checker."""
    allowed = {".json", ".js", ".el", ".md", ".lua", ".vim", ".txt", ".svg", ".gitignore", ".vscodeignore", ""}
    for path in (ROOT / "editors").rglob("*"):
        if any(part in {"node_modules", ".test-cache"} for part in path.parts) or path.is_dir():
            continue
        assert path.suffix in allowed or path.name in allowed, f"{path} does not belong in editors/"
        if path.suffix in {".js", ".el"}:
            text = path.read_text(encoding="utf-8")
            assert "flowmetal.peg" not in text and "parsimonious" not in text


def test_the_code_map_names_every_top_level_folder_and_module():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for folder in ["grammar/", "flowmetal/", "lsp/", "editors/", "tests/", "docs/", "examples/", "bench/"]:
        assert f"`{folder}" in doc, f"docs/architecture.md does not describe {folder}"
    for path in PACKAGE_MODULES:
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py":
            rel = rel.removesuffix("__init__.py")
        assert f"`{rel}" in doc or path.name == "__main__.py", f"docs/architecture.md does not map {rel}"
    assert doc.count("Architecture invariant:") >= 4


def test_every_module_says_what_it_is_for():
    for path in [*PACKAGE_MODULES, *sorted((ROOT / "lsp").rglob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"
