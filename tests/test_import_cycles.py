"""The import graph of our four packages, read from the source with `ast` (imports inside
functions included): no two modules import each other in a cycle, and the layering of DESIGN.md
holds (workloads imports none of ours, hwmodels only workloads, simulator not validation), as
does the one between validation's job packages (validation/README.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workloads", "hwmodels", "simulator", "validation")

# package -> the packages of ours it may import
LAYERS = {
    "workloads": set(),
    "hwmodels": {"workloads"},
    "simulator": {"workloads", "hwmodels"},
    "validation": {"workloads", "hwmodels", "simulator"},
}
# validation's job packages -> the other job packages each may import
JOBS = {
    "reproduce": set(),
    "calibrate": set(),
    "validate": {"calibrate"},
    "experiments": {"calibrate", "validate"},
}


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the packages under root."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict) -> str | None:
    """The module of ours that importing `name` runs last: itself, or its nearest package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(name: str, path: Path, modules: dict) -> set[str]:
    """Modules of ours that module `name` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {_known(alias.name, modules) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".")
                drop = node.level - 1 if is_package else node.level
                if drop >= len(base_parts):
                    raise ValueError(f"{path}: relative import beyond the top package")
                base = ".".join(base_parts[:len(base_parts) - drop])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else _known(base, modules))
    found.discard(None)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, packages=PACKAGES) -> nx.DiGraph:
    modules = module_files(root, packages)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target)
                             for target in sorted(imported_modules(name, path, modules)))
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One cycle of each group of modules that import each other, as a list of modules that
    starts at the first by name (the same cycle every run)."""
    out = []
    for group in nx.strongly_connected_components(graph):
        if len(group) > 1:
            cycle = [a for a, _ in nx.find_cycle(graph.subgraph(group), source=min(group))]
            first = cycle.index(min(cycle))
            out.append(cycle[first:] + cycle[:first])
    return sorted(out)


def violations(graph: nx.DiGraph, allowed: dict[str, set], prefix: str = "") -> list[str]:
    """Imports from one part to another that `allowed` does not list ('module -> module')."""
    def part(module: str) -> str | None:
        if not module.startswith(prefix):
            return None
        head = module[len(prefix):].split(".")[0]
        return head if head in allowed else None

    out = []
    for a, b in graph.edges:
        pa, pb = part(a), part(b)
        if pa and pb and pa != pb and pb not in allowed[pa]:
            out.append(f"{a} -> {b}")
    return sorted(out)


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_the_graph_sees_every_kind_of_import(graph):
    assert len(graph) > 100
    # top-level, relative (one and two levels up), and inside a function
    assert graph.has_edge("validation.experiments.grid_cv", "validation.calibrate.profile_build")
    assert graph.has_edge("validation.calibrate.profile_build",
                          "validation.calibrate.residency_fit")
    assert graph.has_edge("validation.reproduce.swap.figures", "validation.reproduce.plotting")
    assert graph.has_edge("validation.validate.compare", "validation.calibrate.heldout")


def test_no_module_imports_itself_through_others(graph):
    assert cycles(graph) == []


def test_packages_import_only_the_layers_below_them(graph):
    assert violations(graph, LAYERS) == []


def test_validation_job_packages_import_one_way(graph):
    assert violations(graph, JOBS, prefix="validation.") == []


def test_a_cycle_and_a_layer_violation_are_found(tmp_path):
    """The checks themselves: a cycle closed by a relative import inside a function, and a
    lower package importing a higher one."""
    files = {
        "workloads/__init__.py": "",
        "workloads/a.py": "from .b import f\n",
        "workloads/b.py": "def f():\n    from . import a\n    import simulator.c\n",
        "simulator/__init__.py": "",
        "simulator/c.py": "LIMIT = 1\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    g = import_graph(tmp_path, ("workloads", "simulator"))
    assert cycles(g) == [["workloads.a", "workloads.b"]]
    assert violations(g, {"workloads": set(), "simulator": {"workloads"}}) == [
        "workloads.b -> simulator.c"]
