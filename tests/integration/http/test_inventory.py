"""The gRPC inventory and the metric helpers, on their own (no network)."""

from __future__ import annotations

import json

from protoproxy.http.inventory import GrpcInventory
from protoproxy.http.metrics import status_class


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
