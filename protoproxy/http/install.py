"""Wire HTTP, HTTP/2 and gRPC support into an App.

What gets installed:
- `HttpMetrics` as an exchange observer: per-method gRPC and per-route HTTP
  families in `proxy.stats` (so `/metrics` and `/stats` export them);
- a `CallStartFilter` on every HTTP/2 connection, once its codec is chosen;
- the `GrpcInventory` at `app.components["grpc"]` and the metrics object at
  `app.components["http"]`, for the admin routes and tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .inventory import GrpcInventory
from .metrics import CallStartFilter, HttpMetrics

if TYPE_CHECKING:
    from ..app import App
    from ..connection import Connection


def install(app: App) -> None:
    """Install HTTP/gRPC filters, observers and admin routes into `app`."""
    proxy = app.proxy
    inventory = GrpcInventory()
    metrics = HttpMetrics(proxy.stats, inventory)
    app.components["grpc"] = inventory
    app.components["http"] = metrics
    proxy.exchange_observers.append(metrics.observe)

    def codec_chosen(conn: Connection) -> None:
        # Only HTTP/2 connections get a per-frame filter; HTTP/1 (and h2c
        # upgrades through it) are counted from Exchanges alone.
        if conn.protocol == "http2":
            conn.filters.append(CallStartFilter(metrics, conn.listener.name))

    proxy.codec_observers.append(codec_chosen)
