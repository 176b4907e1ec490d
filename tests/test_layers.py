"""The folders follow the data flow: no import cycle, and no import from a lower layer upward.

kernel (smartgate) ← models, hardware ← edge, central ← tools; inside the edge, recognition ←
assembly ← runtime ← app; inside central, domain ← the service. Function-level imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("smartgate", "models", "hardware", "edge", "central", "tools")
# package (or sub-package) -> the packages it may import besides itself
ALLOWED = {
    "smartgate": {"smartgate"},
    "models": {"smartgate", "models"},
    "hardware": {"smartgate", "hardware"},
    "edge": {"smartgate", "models", "hardware", "edge"},
    "central": {"smartgate", "models", "central"},
    "tools": set(PACKAGES),
}
# inner layers, lowest first: a module may import its own layer and those before it
INNER = {
    "edge": ["edge.config", "edge.recognition", "edge.assembly", "edge.runtime", "edge.app",
             "edge.cli"],
    "central": ["central.domain", "central"],
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Project modules imported anywhere in the file (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                while name and name not in MODULES:
                    name = name.rpartition(".")[0]
                if name:
                    out.add(name)
    return out


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str, package: str) -> int:
    layers = INNER[package]
    best = -1
    for i, prefix in enumerate(layers):
        if module == prefix or module.startswith(prefix + "."):
            best = i if best < 0 or len(prefix) > len(layers[best]) else best
    return best


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_higher_layer(module: str) -> None:
    package = module.split(".")[0]
    bad = sorted(m for m in GRAPH[module] if m.split(".")[0] not in ALLOWED[package])
    if package in INNER and module != package:
        own = _layer(module, package)
        bad += sorted(m for m in GRAPH[module]
                      if m.split(".")[0] == package and m != package
                      and _layer(m, package) > own)
    assert not bad, f"{module} imports {bad}"


def test_no_import_cycle() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_lab_code_in_the_product() -> None:
    lab = ("bench", "eval", "synth", "simulate", "demo", "faults")
    bad = [m for m in MODULES if m.split(".")[0] in ("edge", "central")
           and any(word in m.split(".")[-1] for word in lab)]
    assert not bad, f"benchmark/evaluation/synthetic/demo code in the product: {bad}"
