"""interp's layering (DESIGN.md): imports go one way, so no module of interp imports,
even inside a function, a module that imports it back; private names stay inside their
module; interp imports none of zoo, dashboard or reports (the CLI, the composition root,
may, lazily). Read from the source, so a cycle is caught before it bites at import time."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "interp"
COMPOSITION_ROOT = "interp.cli"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in ``name``, at any depth."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module
            out.append((target, [a.name for a in node.names], node.lineno))
    return out


def _known(target: str) -> str | None:
    """The interp module ``target`` names (a module, or the package holding a name)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    """Module -> interp modules it imports. Its own parent packages are left out (Python
    initialises them around it); another package counts (its ``__init__`` runs)."""
    graph = {}
    for name in MODULES:
        edges = set()
        for target, names, _ in _imports(name):
            for t in [target] + [f"{target}.{n}" for n in names]:
                module = _known(t)
                if module and module != name and not (module == "interp" or name.startswith(module + ".")):
                    edges.add(module)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_the_layers():
    graph = _graph()
    assert "interp.collect" in graph["interp.layer_projection"]
    assert "interp.projection" in graph["interp.layer_projection"]
    assert "interp.capture" in graph["interp.collect"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_interps_modules():
    assert _cycles(_graph()) == []


def test_results_and_projection_import_nothing_above_them():
    graph = _graph()
    assert not graph["interp.results"] & {"interp.store", "interp.collect", "interp.projection",
                                          "interp.sensitivity", "interp.layer_projection"}
    assert not graph["interp.projection"] & {"interp.collect", "interp.store", "interp.layer_projection"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(name):
    private = [(target, n, line) for target, names, line in _imports(name) if _known(target)
               for n in names if n.startswith("_") and not n.startswith("__")]
    assert private == [], f"{name} imports private names of other modules: {private}"


def _module_aliases(name: str) -> dict[str, str]:
    """Local names bound to other interp modules in ``name`` (``from . import rules as R``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    aliases = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            target = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module
            aliases.update({a.asname or a.name: f"{target}.{a.name}" for a in node.names
                            if f"{target}.{a.name}" in MODULES})
        elif isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in MODULES})
    return aliases


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_of_another_module_is_read_through_it(name):
    aliases = _module_aliases(name)
    reads = [(aliases[node.value.id], node.attr, node.lineno)
             for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8")))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
             and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert reads == [], f"{name} reads private names of other modules: {reads}"


@pytest.mark.parametrize("name", sorted(set(MODULES) - {COMPOSITION_ROOT}))
def test_interp_imports_none_of_the_faces_or_the_zoo(name):
    faces = [(target, line) for target, _, line in _imports(name)
             if target.split(".")[0] in ("zoo", "dashboard", "reports")]
    assert faces == [], f"{name} imports {faces}"
