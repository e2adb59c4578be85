"""The gRPC inventory and the metric helpers, on their own (no network)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from protoproxy.http.inventory import GrpcInventory
from protoproxy.http.metrics import HttpMetrics, status_class
from protoproxy.observe.stats import Stats
from protoproxy_codecs.base import Exchange


def test_inventory_counts_kinds_and_bounds() -> None:
    inv = GrpcInventory(max_methods=2, clock=lambda: 5.0)
    inv.record("a", "pkg.S", "Unary", "OK", 1, 1)
    inv.record("b", "pkg.S", "Unary", "NOT_FOUND", 1, 0)
    inv.record("a", "pkg.S", "Up", "OK", 3, 1)
    inv.record("a", "pkg.T", "Late", "OK", 1, 1)  # past max_methods
    snap = inv.snapshot()
    json.dumps(snap)  # JSON-able as served at /grpc/methods
    assert snap["methods"] == 2 and snap["dropped"] == 1
    unary = snap["services"]["pkg.S"]["Unary"]
    assert unary["calls"] == 2 and unary["kind"] == "unary"
    assert unary["statuses"] == {"OK": 1, "NOT_FOUND": 1}
    assert unary["listeners"] == ["a", "b"]
    assert snap["services"]["pkg.S"]["Up"]["kind"] == "client_streaming"
    inv.reset()
    assert inv.snapshot() == {"services": {}, "methods": 0, "dropped": 0}


def test_status_class() -> None:
    assert [status_class(s) for s in ("101", "204", "304", "404", "503")] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
    ]
    assert status_class("reset") == "reset" and status_class("aborted") == "aborted"


def _call(path: str, status: str = "OK") -> Exchange:
    attrs = {
        "request_messages": 1,
        "response_messages": 2,
        "request_message_bytes": 10,
        "response_message_bytes": 20,
    }
    return Exchange(
        protocol="grpc",
        operation=path,
        started=10**9,
        finished=15 * 10**8,
        status=status,
        request_bytes=15,
        response_bytes=30,
        key=1,
        attrs=attrs,
    )


def test_metrics_keep_inventory_entries_across_a_reset_correctly() -> None:
    """HttpMetrics keeps each method's inventory entry; after `reset` it must
    not keep counting into the dropped one, and the bound still applies."""
    stats = Stats()
    inv = GrpcInventory(max_methods=1, clock=lambda: 5.0)
    metrics = HttpMetrics(stats, inv)
    conn = SimpleNamespace(listener=SimpleNamespace(name="g"), protocol="http2")
    metrics.observe(conn, [_call("/pkg.S/A"), _call("/pkg.S/A", "NOT_FOUND")])  # type: ignore[arg-type]
    assert inv.snapshot()["services"]["pkg.S"]["A"]["calls"] == 2
    inv.reset()
    metrics.observe(conn, [_call("/pkg.S/A")])  # type: ignore[arg-type]
    assert inv.snapshot()["services"]["pkg.S"]["A"]["calls"] == 1
    metrics.observe(conn, [_call("/pkg.S/B")])  # type: ignore[arg-type]
    assert inv.dropped == 1
    assert metrics.grpc_finished.get(("g", "pkg.S", "A", "OK")) == 2
    assert metrics.grpc_messages.get(("g", "pkg.S", "A", "downstream")) == 6
    assert metrics.grpc_latency.count(("g", "pkg.S", "A")) == 3
