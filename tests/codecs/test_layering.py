"""protoproxy_codecs is sans-IO: it never imports asyncio, sockets, or the runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import protoproxy_codecs

FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "protoproxy", "testbed"}
PACKAGE = Path(protoproxy_codecs.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_imports_io_or_the_runtime():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 4
    bad = {str(f.relative_to(PACKAGE)): _imports(f) & FORBIDDEN for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def _loaded_after(modules: list[str], preload: str = "") -> str:
    """Forbidden modules that importing `modules` loads, beyond what `preload` loaded."""
    code = (
        "import importlib, sys\n"
        f"{preload}\n"
        "before = set(sys.modules)\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m.removesuffix('.__init__'))\n"
        "bad = sorted(m for m in set(sys.modules) - before\n"
        "             if m.split('.')[0] in ('asyncio', 'protoproxy', 'testbed'))\n"
        "bad += sorted(m for m in sys.modules if m.split('.')[0] in ('protoproxy', 'testbed'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _modules(strategies: bool) -> list[str]:
    return sorted(
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__main__.py" and (p.parent.name == "strategies") == strategies
    )


def test_importing_every_codec_loads_no_event_loop_or_runtime():
    assert _loaded_after(_modules(strategies=False)) == ""


def test_the_strategies_load_no_event_loop_or_runtime_of_their_own():
    """hypothesis itself imports asyncio (through unittest.mock): that much is its
    business. The strategies add nothing on top, and no runtime at all."""
    modules = _modules(strategies=True)
    assert len(modules) >= 5
    assert _loaded_after(modules, preload="import hypothesis") == ""
