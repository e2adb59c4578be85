"""The README's "Breaking things on purpose" Kafka block, run as written against
`protoproxy testbed` (a child process on ephemeral ports), with curl and kcat."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tools import require_tool

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_fault() -> str:
    """The fault body the README posts, read from the README itself so the two cannot drift."""
    text = README.read_text()
    start = text.index('-d \'{"name": "produce-errors"') + len("-d '")
    return text[start : text.index("'", start)]


_ADDRESS = re.compile(r"^\s+(\S+)\s+(\d+\.\d+\.\d+\.\d+:\d+)")


def _start_testbed(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`protoproxy testbed` on ephemeral ports; its printed addresses by name."""
    scenario = tmp_path / "scenario.yaml"
    ports = ", ".join(f"{n}: 0" for n in ("kafka", "grpc", "http", "echo", "admin"))
    scenario.write_text(f"ports: {{{ports}}}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "protoproxy", "testbed", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    addresses: dict[str, str] = {}
    for line in proc.stdout:
        found = _ADDRESS.match(line)
        if found:
            addresses[found[1]] = found[2]
        if line.startswith("Press Ctrl-C"):
            return proc, addresses
    proc.kill()
    raise AssertionError(f"testbed did not start: {proc.communicate()[1][-2000:]}")


def _sh(*argv: str, stdin: str | None = None, timeout: float = 60) -> str:
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{argv[0]} failed: {res.stderr[-2000:]}"
    return res.stdout


def _fault(faults: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [f for f in faults["faults"] if f["name"] == name]
    return found


def test_readme_produce_errors_inject_and_all_20_land(tmp_path: Path) -> None:
    curl, kcat = require_tool("curl"), require_tool("kcat")
    proc, addr = _start_testbed(tmp_path)
    try:
        admin, bootstrap = addr["admin"], addr["kafka"]
        json_type = ("-H", "Content-Type: application/json")  # as the README sends it
        created = json.loads(
            _sh(curl, "-s", "-XPOST", f"{admin}/faults", *json_type, "-d", _readme_fault())
        )
        assert created.get("name") == "produce-errors", created
        assert created["action"] == {"abort": "NOT_LEADER_OR_FOLLOWER"}
        values = "".join(f"{i}\n" for i in range(1, 21))
        _sh(kcat, "-b", bootstrap, "-P", "-t", "orders", stdin=values)
        faults = json.loads(_sh(curl, "-s", f"{admin}/faults"))
        stats = _fault(faults, "produce-errors")["stats"]
        assert stats["injected"] == 2, stats  # the README's schedule: the first two
        # librdkafka retried each aborted batch: every record landed, once.
        consumed = _sh(kcat, "-b", bootstrap, "-C", "-t", "orders", "-o", "beginning", "-e", "-q")
        assert sorted(int(v) for v in consumed.split()) == list(range(1, 21))
        metrics = _sh(curl, "-s", f"{admin}/metrics")
        assert re.search(
            r'protoproxy_faults_injected_total\{fault="produce-errors",kind="abort"\} [1-9]',
            metrics,
        )
        # The bare string was answered as that Kafka error, the client saw it.
        assert re.search(
            r'protoproxy_kafka_errors_total\{[^}]*error="NOT_LEADER_OR_FOLLOWER"[^}]*\} [1-9]',
            metrics,
        ), [line for line in metrics.splitlines() if "kafka_errors" in line]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("protoproxy testbed did not stop on SIGTERM")
