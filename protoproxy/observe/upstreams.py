"""Per-endpoint error counts: connections through an endpoint that ended abnormally.

Connect failures are counted by the upstream code itself; this adds what
happens after connecting (resets, decode errors, idle timeouts), so /upstreams
can show which endpoint is misbehaving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .stats import Counter, Stats

if TYPE_CHECKING:
    from ..connection import Connection

UPSTREAM_ERRORS = "protoproxy_upstream_connection_errors_total"
_CLEAN = frozenset({None, "done"})


class UpstreamErrors:
    def __init__(self, stats: Stats) -> None:
        self.counter: Counter = stats.counter(
            UPSTREAM_ERRORS,
            "Connections through an endpoint that ended abnormally, by reason",
            ("upstream", "endpoint", "reason"),
        )

    def closed(self, conn: Connection) -> None:
        reason = conn.end_reason
        if reason in _CLEAN or conn.endpoint is None or conn.cluster is None:
            return
        self.counter.inc((conn.cluster.name, conn.endpoint.name, reason))
