"""The house's shape, checked on every run: layers import one way, no cycles, small modules.

Layers, top to bottom (ARCHITECTURE.md): workers (entry points, jobs, the composition root) and
benchmarks > web > responder > collectors > otklik > nlp, config. A package imports only from
layers below it, or from itself; config imports nothing of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK = {
    "workers": 6,
    "benchmarks": 6,
    "web": 5,
    "responder": 4,
    "collectors": 3,
    "otklik": 2,
    "nlp": 1,
    "config": 0,
}
MAX_LINES = 400
SKIP = {"migrations", "translations", "__pycache__"}


def _modules() -> dict[str, Path]:
    found = {}
    for top in RANK:
        for path in (ROOT / top).rglob("*.py"):
            if SKIP.isdisjoint(path.relative_to(ROOT).parts):
                name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [node.module or ""])
            else:
                base = node.module or ""
            names.add(base.strip("."))
            names.update(f"{base}.{alias.name}".strip(".") for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _imports(path, module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def test_packages_import_only_from_the_layers_below() -> None:
    against = []
    for module, targets in _graph().items():
        top = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != top and RANK[other] >= RANK[top]:
                against.append(f"{module} -> {target}")
    assert against == []


def test_no_import_cycles_between_modules() -> None:
    graph, cycles = _graph(), []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_longer_than_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_core_never_imports_a_connector_package_statically() -> None:
    """Connectors are named by import path in otklik.connectors, never imported by the core."""
    offenders = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module.split(".")[0] in ("otklik", "config", "nlp")
        for target in targets
        if target.split(".")[0] == "collectors"
    ]
    assert offenders == []
