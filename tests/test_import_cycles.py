"""The manager's side of the package has no import cycle, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sequential_learning"

#: Modules that must be on no cycle (the refactoring of issue 17 removed
#: `plugins.reference -> tasks -> training -> plugins`).
ACYCLIC = (
    "sequential_learning.manager", "sequential_learning.tasks", "sequential_learning.training",
    "sequential_learning.evaluation", "sequential_learning.pipeline",
    "sequential_learning.rundir",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports anywhere (inside functions too)."""
    found = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "sequential_learning":
                found.add(name)
                # Importing a module runs its package's __init__ first.
                parent = name.rpartition(".")[0]
                if parent != "sequential_learning" and parent in modules:
                    found.add(parent)
    return found


def _node(module: str) -> str:
    """A module of a sub-package counts as its package (`plugins.reference` is `plugins`): a
    cycle through two modules of one package is a cycle between layers all the same."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = graph.setdefault(_node(name), set())
        edges |= {_node(m) for m in _imports(path, set(files))}
    return {name: edges - {name} for name, edges in graph.items()}


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), list(graph.get(start, ()))
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return False


@pytest.mark.parametrize("module", ACYCLIC)
def test_module_is_on_no_import_cycle(module):
    graph = _graph()
    assert module in graph
    back = sorted(m for m in graph[module] if _reaches(graph, m, module))
    assert not back, f"{module} imports {back}, which import it back"


def test_the_whole_package_has_no_import_cycle():
    graph = _graph()
    cycles = sorted({" -> ".join([m, n]) for m in graph for n in graph[m]
                     if _reaches(graph, n, m)})
    assert not cycles, f"modules that import each other, directly or not: {cycles}"


#: The layers, top to bottom (a module may import only modules of its own layer or below).
#: The trainer runs the plugins' in-graph hooks, so `training` sits above `plugins`; plugins
#: never import the trainer or the manager. `graph` (the layer-by-layer walker that both
#: `importance` and `interpret` use) imports nothing of the package.
LAYERS = (
    ("cli", "commands"),
    ("experiment", "sweep"),
    ("config",),
    ("manager", "method", "trainers", "services", "clock", "divergence", "progress",
     "recorder", "writer", "tensorboard"),
    ("tasks", "training", "evaluation"),
    ("plugins",),
    ("importance",),
    ("graph",),
)
#: Never importing the manager's side (the issue's contract), whatever else they use.
OUTSIDE = ("data", "interpret", "ablation", "augment", "report", "plots")
MANAGER_SIDE = {name for layer in LAYERS[:5] for name in layer}


def _short(module: str) -> str:
    return module.split(".")[1] if "." in module else module


@pytest.mark.parametrize("upper, lower", [
    (LAYERS[i], LAYERS[j]) for i in range(len(LAYERS)) for j in range(i + 1, len(LAYERS))])
def test_lower_layers_never_import_upper_ones(upper, lower):
    graph = _graph()
    wrong = sorted(f"{m} -> {n}" for m, edges in graph.items() if _short(m) in lower
                   for n in edges if _short(n) in upper)
    assert not wrong, f"imports against the layers: {wrong}"


def test_data_interpret_ablation_report_never_import_the_manager_side():
    graph = _graph()
    wrong = sorted(f"{m} -> {n}" for m, edges in graph.items() if _short(m) in OUTSIDE
                   for n in edges if _short(n) in MANAGER_SIDE)
    assert not wrong, f"imports of the manager's side: {wrong}"
