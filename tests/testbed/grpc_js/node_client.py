"""Run tests/node/grpc_client.js (@grpc/grpc-js) from a test and read its JSON lines.

The client is a blocking child process, so the tests serve from a
`TestbedThread` (the testbed on its own loop): a Testbed on the test's loop
would stall while the test waits for the client that calls it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.tools import in_ci, require_tool

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "tests" / "node"
CLIENT = NODE_DIR / "grpc_client.js"
SHOP_CLIENT = NODE_DIR / "shop_client.js"
#: what `npm ci --prefix tests/node` (scripts/test) installs
MODULES = ("@grpc/grpc-js", "@grpc/proto-loader")
#: a plan's calls end well within this; past it the client is stuck, not slow
TIMEOUT_S = 60.0


def require_grpc_js() -> str:
    """The node executable, once node and the client's modules are installed;
    skip (fail under CI=true) otherwise."""
    node = require_tool("node")
    missing = [m for m in MODULES if not (NODE_DIR / "node_modules" / m / "package.json").exists()]
    if missing:
        reason = (
            f"node modules {', '.join(missing)} are not installed "
            f"(scripts/test runs `npm ci --prefix tests/node`)"
        )
        if in_ci():
            pytest.fail(reason + "; CI=true forbids skipping", pytrace=False)
        pytest.skip(reason)
    return node


def run_plan(node: str, target: str, plan: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """Every call of `plan` made by grpc-js against `target`: one dict per call,
    in plan order (see grpc_client.js for the plan's and the lines' shape)."""
    plan_file = tmp / "plan.json"
    plan_file.write_text(json.dumps(plan))
    return run_script(node, CLIENT, target, str(plan_file), calls=len(plan["calls"]))


def run_script(node: str, script: Path, *args: str, calls: int) -> list[dict[str, Any]]:
    """The JSON lines of `node script args...`, which must exit 0 after `calls` calls."""
    try:
        done = subprocess.run(
            [node, str(script), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{script.name} did not finish in {TIMEOUT_S} s") from None
    assert done.returncode == 0, f"{script.name} exited {done.returncode}: {done.stderr}"
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == calls, (lines, done.stderr)
    return lines
