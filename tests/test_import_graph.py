"""The import rules of docs/architecture.md, checked from the source.

A cycle means two modules can only be understood (and changed) together, and
an import that only works in one order. Edges inside `if TYPE_CHECKING:` do not
run, so they do not count; function-local imports run, so they do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "protoproxy": ROOT / "protoproxy",
    "protoproxy_codecs": ROOT / "codecs" / "protoproxy_codecs",
}


def module_sources(package: str, root: Path) -> dict[str, str]:
    """Module name -> source text, for every .py file under `root`."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path.read_text()
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph(sources: dict[str, str], packages: set[str]) -> dict[str, set[str]]:
    """Runtime import edges between the given modules."""
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, text in sources.items():
        tree = ast.parse(text)
        is_package = any(other.startswith(module + ".") for other in sources)
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, is_package, node.level, node.module)
                # `from . import sibling` needs the sibling, not the package's own body
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base
                    for a in node.names
                ]
            for target in targets:
                while target and target not in sources:
                    target = target.rpartition(".")[0]
                if target and target != module and target.split(".")[0] in packages:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycles(package: str) -> None:
    graph = import_graph(module_sources(package, PACKAGES[package]), set(PACKAGES))
    assert cycles(graph) == []


def test_codecs_import_no_runtime() -> None:
    """The sans-IO codecs never import the runtime (docs/architecture.md#import-rules)."""
    graph = import_graph(
        module_sources("protoproxy_codecs", PACKAGES["protoproxy_codecs"]), {"protoproxy"}
    )
    sources = module_sources("protoproxy_codecs", PACKAGES["protoproxy_codecs"])
    for module, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for name in names:
                    root = name.split(".")[0]
                    assert root not in {"protoproxy", "asyncio", "socket"}, (module, name)
    assert graph  # the scan saw the package


def test_the_check_finds_a_planted_cycle() -> None:
    sources = {
        "pkg": "",
        "pkg.a": "from . import b\n",
        "pkg.b": "def f():\n    from .c import g\n",
        "pkg.c": "from typing import TYPE_CHECKING\nfrom .a import x\n",
        "pkg.d": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n",
        "pkg.e": "from .d import y\n",
    }
    graph = import_graph(sources, {"pkg"})
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "pkg.a" not in graph["pkg.d"]  # TYPE_CHECKING-only edges do not count


#: modules that must load without any component (docs/architecture.md#import-rules),
#: with the protoproxy modules each may import
LEAVES = {
    "protoproxy.faults.actions": {"protoproxy.units"},
    "protoproxy.faults.handler": {"protoproxy.faults.actions"},
    "protoproxy.config_errors": set(),
    "protoproxy.addresses": set(),
    "protoproxy.pipeline": set(),
    "protoproxy.connection_state": set(),
}


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaves_import_no_component(leaf: str) -> None:
    graph = import_graph(module_sources("protoproxy", PACKAGES["protoproxy"]), {"protoproxy"})
    assert graph[leaf] - {"protoproxy", "protoproxy.faults"} <= LEAVES[leaf]
