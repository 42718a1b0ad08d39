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
# layers below it, never above. Every module of the package must be listed. An
# entry names a module and everything under it (the most specific entry wins),
# except the packages in `PACKAGES`, which stand for their `__init__` alone:
# their modules lie in different layers (`flowmetal.ide.workbench` is above the
# runtime, the rest of `flowmetal.ide` below it).
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["flowmetal", "flowmetal.lang", "flowmetal.lang.source", "flowmetal.lang.diagnostics",
              "flowmetal.lang.filenames", "flowmetal.lang.deep", "flowmetal.statuses"]),
    ("syntax", ["flowmetal.lang.syntax"]),
    ("forms", ["flowmetal.lang.forms"]),
    ("types", ["flowmetal.lang.types", "flowmetal.lang.signatures"]),
    ("resolve", ["flowmetal.lang.resolve"]),
    ("check", ["flowmetal.lang.check"]),
    ("analysis", ["flowmetal.lang.analysis"]),
    ("ide", ["flowmetal.ide", "flowmetal.ide.features", "flowmetal.ide.format"]),
    ("runtime", ["flowmetal.runtime"]),
    ("connectors", ["flowmetal.connectors"]),
    ("server", ["flowmetal.server"]),
    ("workbench", ["flowmetal.ide.workbench", "flowmetal.ide.arguments"]),
    ("dap", ["flowmetal.dap"]),
    ("cli", ["flowmetal.cli", "flowmetal.__main__"]),
]
PACKAGES = {"flowmetal", "flowmetal.lang", "flowmetal.ide"}
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
    """The layer of the most specific entry naming `module`."""
    best, length = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".") and prefix not in PACKAGES) and len(prefix) > length:
                best, length = rank, len(prefix)
    return best


PACKAGE_MODULES = sorted((ROOT / "flowmetal").rglob("*.py"))


# The command line is above every layer: `flowmetal lsp` starts the server, which
# it imports only when that command runs. It is the one module that may.
ABOVE_LSP = {"flowmetal.cli.commands"}


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


# Every module of `flowmetal/` and `lsp/` (installed as `flowmetal_lsp`), by its
# importable name.
GRAPH_MODULES = {
    **{module_name(p): p for p in PACKAGE_MODULES},
    **{"flowmetal_lsp" + module_name(p).removeprefix("lsp"): p for p in sorted((ROOT / "lsp").rglob("*.py"))},
}


def import_edges(name: str, path: Path, modules) -> dict[str, int]:
    """The modules of `modules` that `name` (at `path`) imports, each with the line of its first
    import. Imports at every level count (inside functions too, however late they run),
    relative ones as well; `from package import module` is an import of the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [known(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else known(base)
                       for alias in node.names]
        for target in targets:
            if target is not None and target != name:
                found.setdefault(target, node.lineno)
    return found


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle of each strongly connected component of more than one module (Tarjan's
    algorithm, without recursion), as a path that ends where it starts."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next((e for e in edges if e in graph), None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    found = []
    for component in components:  # a shortest way back to the component's first module
        start, inside = component[0], set(component)
        paths = {start: [start]}
        frontier = [start]
        while frontier and start not in [e for n in frontier for e in graph[n]]:
            following = []
            for node in frontier:
                for edge in sorted(graph[node]):
                    if edge in inside and edge not in paths:
                        paths[edge] = paths[node] + [edge]
                        following.append(edge)
            frontier = following
        last = next(n for n in frontier if start in graph[n])
        found.append(paths[last] + [start])
    return found


def test_the_cycle_finder_names_each_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"f": 5}, "f": {"e": 6},
             "g": {"a": 7}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_module_imports_itself_through_others():
    """No import cycle in flowmetal/ or lsp/: each names its modules, and where each imports the next."""
    graph = {name: import_edges(name, path, GRAPH_MODULES) for name, path in GRAPH_MODULES.items()}
    assert "flowmetal.runtime.machine" in graph["flowmetal.runtime.executor"]  # the graph is read
    found = cycles(graph)
    described = [" -> ".join(cycle) + "  (" + ", ".join(
        f"{GRAPH_MODULES[a].relative_to(ROOT)}:{graph[a][b]}" for a, b in zip(cycle, cycle[1:])) + ")"
        for cycle in found]
    assert not found, "import cycles:\n" + "\n".join(described)


def test_the_syntax_layer_knows_nothing_of_checking_or_output():
    for path in (ROOT / "flowmetal" / "lang" / "syntax").rglob("*.py"):
        for imported in imports(path):
            assert not imported.startswith(("flowmetal.lang.check", "flowmetal.cli")), (
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
