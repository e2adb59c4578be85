"""Run tests/node/grpc_client.js (@grpc/grpc-js) from a test and read its JSON lines.

The Node client runs as a child process while the Testbed serves on the test's
own event loop, so it is awaited with asyncio's subprocess API: a blocking
`subprocess.run` would stall the proxy it is calling through.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.tools import in_ci, require_tool

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "tests" / "node"
CLIENT = NODE_DIR / "grpc_client.js"
#: what `npm ci --prefix tests/node` (scripts/test) installs
MODULES = ("@grpc/grpc-js", "@grpc/proto-loader")
#: a plan's calls end well within this; past it the client is stuck, not slow
TIMEOUT_S = 60.0
#: bytes of client output read at most: a runaway fake cannot flood the test
MAX_OUTPUT = 4 * 1024 * 1024


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


async def run_plan(node: str, target: str, plan: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """Every call of `plan` made by grpc-js against `target`: one dict per call,
    in plan order (see grpc_client.js for the plan's and the lines' shape)."""
    plan_file = tmp / "plan.json"
    plan_file.write_text(json.dumps(plan))
    proc = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT),
        target,
        str(plan_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=MAX_OUTPUT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"grpc_client.js did not finish in {TIMEOUT_S} s") from None
    assert proc.returncode == 0, f"grpc_client.js exited {proc.returncode}: {err.decode()}"
    lines = [json.loads(line) for line in out[:MAX_OUTPUT].decode().splitlines()]
    assert len(lines) == len(plan["calls"]), (lines, err.decode())
    return lines
