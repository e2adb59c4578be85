"""Wire HTTP, HTTP/2 and gRPC support into a Proxy.

What gets installed:
- `HttpMetrics` as an exchange observer: per-method gRPC and per-route HTTP
  families in `proxy.stats` (so `/metrics` and `/stats` export them);
- a `CallStartFilter` on every HTTP/2 connection (FilterSlot.CALL_START);
- the `GrpcInventory` (`app.grpc`) and the metrics object (`app.http`),
  for the admin routes and tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..pipeline import ExchangeSlot, FilterSlot
from .inventory import GrpcInventory
from .metrics import CallStartFilter, HttpMetrics

if TYPE_CHECKING:
    from ..connection import Connection
    from ..hooks import Hooks
    from ..proxy import Proxy


class Installed(NamedTuple):
    inventory: GrpcInventory
    metrics: HttpMetrics


def install(proxy: Proxy, hooks: Hooks) -> Installed:
    """Install HTTP/gRPC filters and observers."""
    inventory = GrpcInventory()
    metrics = HttpMetrics(proxy.stats, inventory)
    hooks.exchanges(ExchangeSlot.HTTP, metrics.observe)

    def call_start(conn: Connection) -> CallStartFilter | None:
        # Only HTTP/2 connections get a per-frame filter; HTTP/1 (and h2c
        # upgrades through it) are counted from Exchanges alone.
        if conn.protocol == "http2":
            return CallStartFilter(metrics, conn.listener.name)
        return None

    hooks.filter(FilterSlot.CALL_START, call_start)
    return Installed(inventory, metrics)
