"""The proxy's own metric families (connections, bytes, errors)."""

from __future__ import annotations

from .observe.stats import Stats

CONNECTION_BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0)


class ProxyMetrics:
    """Families every listener reports, whatever its protocol."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.connections = stats.counter(
            "protoproxy_connections_total", "Downstream connections accepted", ("listener",)
        )
        self.active = stats.gauge(
            "protoproxy_connections_active", "Downstream connections open now", ("listener",)
        )
        self.duration = stats.histogram(
            "protoproxy_connection_duration_seconds",
            "Lifetime of closed connections",
            ("listener",),
            CONNECTION_BUCKETS,
        )
        self.bytes = stats.counter(
            "protoproxy_bytes_total",
            "Bytes relayed, by direction (upstream = client to server)",
            ("listener", "direction"),
        )
        self.connection_errors = stats.counter(
            "protoproxy_connection_errors_total",
            "Connections that ended abnormally, by reason",
            ("listener", "reason"),
        )
        self.decode_errors = stats.counter(
            "protoproxy_decode_errors_total",
            "Connections closed because a codec could not parse the bytes",
            ("listener", "protocol", "reason"),
        )
        self.http2_flood_closed = stats.counter(
            "protoproxy_http2_flood_closed_total",
            "HTTP/2 connections closed for breaking a flood rule (GOAWAY ENHANCE_YOUR_CALM)",
            ("listener", "reason"),
        )
        self.tls_failures = stats.counter(
            "protoproxy_tls_handshake_failures_total",
            "TLS handshakes that failed, by side and reason",
            ("listener", "side", "reason"),
        )
        self.upstream_connections = stats.counter(
            "protoproxy_upstream_connections_total",
            "Upstream connections opened",
            ("upstream", "endpoint"),
        )
        self.upstream_failures = stats.counter(
            "protoproxy_upstream_connect_failures_total",
            "Upstream connect attempts that failed",
            ("upstream", "endpoint", "reason"),
        )
        self.rejected = stats.counter(
            "protoproxy_connections_rejected_total",
            "Connections refused at accept (limit reached, listener down)",
            ("listener", "reason"),
        )
        self.accept_errors = stats.counter(
            "protoproxy_accept_errors_total",
            "accept() failures on a listening socket (EMFILE, ENFILE...), by errno",
            ("listener", "errno"),
        )
