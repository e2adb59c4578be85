"""Per-Exchange metrics, whatever the protocol: counts, latency, messages, records.

Protocol components add their own richer families (per topic, per broker...);
these generic ones exist so that every listener gets request counts and a
latency histogram even before, or without, a protocol integration.

The hot path: one dict lookup for the connection's label state, two nested
dict lookups for the cached label tuple, then ``+=`` on plain numbers; the
counters' and histogram's methods run only for a series' first value (where
the series caps apply). Label tuples are built once per (connection,
operation, status) and reused.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Exchange

from .stats import Counter, Histogram, HistogramSeries, Stats

if TYPE_CHECKING:
    from ..connection import Connection

#: Label cache entries per connection before it is dropped and rebuilt.
_CACHE_LIMIT = 256


class _OpLabels:
    """Every label tuple one operation needs, built on its first exchange."""

    __slots__ = ("by_status", "down", "hist", "op", "up")

    def __init__(self, listener: str, protocol: str, op: str) -> None:
        self.op = (listener, protocol, op)
        #: The duration histogram's series for `op`, once it exists (series are
        #: never dropped, so holding it saves a tuple-keyed lookup per exchange).
        self.hist: HistogramSeries | None = None
        self.up = (listener, protocol, op, "upstream")
        self.down = (listener, protocol, op, "downstream")
        self.by_status: dict[str, tuple[str, ...]] = {}


class _ConnLabels:
    """Label tuples for one connection; dropped when the connection closes."""

    __slots__ = ("client", "listener", "ops", "protocol")

    def __init__(self, listener: str, protocol: str) -> None:
        self.listener = listener
        self.protocol = protocol
        self.ops: dict[str, _OpLabels] = {}
        self.client: dict[str, tuple[str, ...]] = {}  # client id -> key


class ExchangeMetrics:
    """An exchange observer feeding the generic exchange families in `stats`."""

    def __init__(self, stats: Stats) -> None:
        self.exchanges: Counter = stats.counter(
            "protoproxy_exchanges_total",
            "Exchanges (request and response; a gRPC call) by outcome",
            ("listener", "protocol", "operation", "status"),
        )
        self.duration: Histogram = stats.histogram(
            "protoproxy_exchange_duration_seconds",
            "Time from the request's first message to the response's last",
            ("listener", "protocol", "operation"),
        )
        self.messages: Counter = stats.counter(
            "protoproxy_exchange_messages_total",
            "gRPC messages inside calls, by direction",
            ("listener", "protocol", "operation", "direction"),
        )
        self.records: Counter = stats.counter(
            "protoproxy_exchange_records_total",
            "Kafka records carried (Produce requests upstream, Fetch responses downstream)",
            ("listener", "protocol", "operation", "direction"),
        )
        self.clients: Counter = stats.counter(
            "protoproxy_client_requests_total",
            "Exchanges by the client id the client announced (Kafka client_id)",
            ("listener", "protocol", "client_id"),
        )
        self._conns: dict[int, _ConnLabels] = {}

    def _labels(self, conn: Connection) -> _ConnLabels:
        state = self._conns[conn.id] = _ConnLabels(conn.listener.name, conn.protocol)
        return state

    def closed(self, conn: Connection) -> None:
        self._conns.pop(conn.id, None)

    def observe(self, conn: Connection, exchanges: list[Exchange]) -> None:
        state = self._conns.get(conn.id)
        if state is None or state.protocol != conn.protocol:
            state = self._labels(conn)
        ops = state.ops
        counts = self.exchanges.values
        series = self.duration.series
        bounds = self.duration.bounds
        messages = self.messages.values
        record_counts = self.records.values
        clients = self.clients.values
        for ex in exchanges:
            op = ex.operation
            labels = ops.get(op)
            if labels is None:
                if len(ops) >= _CACHE_LIMIT:
                    ops.clear()
                # The exchange's protocol, not the codec's: gRPC calls and plain
                # HTTP/2 requests share the http2 codec but are told apart here.
                labels = ops[op] = _OpLabels(state.listener, ex.protocol, op)
            status = ex.status
            key = labels.by_status.get(status)
            if key is None:
                key = labels.by_status[status] = (*labels.op, status)
            # Counter.inc and Histogram.observe, inlined for the common case of a
            # series that exists; new series go through the methods (caps apply).
            # EAFP: one tuple hash fewer per update than a membership test first.
            try:
                counts[key] += 1
            except KeyError:
                self.exchanges.inc(key)
            duration = ex.finished - ex.started
            s = labels.hist
            if s is None:
                self.duration.observe(labels.op, duration)
                # None while the series is folded into `other`: observe() again.
                labels.hist = series.get(labels.op)
            else:
                s.buckets[bisect_left(bounds, duration)] += 1
                s.sum += duration
                s.count += 1
            attrs = ex.attrs
            if not attrs:
                continue
            n_up = attrs.get("request_messages")
            if n_up is not None:
                n_down = attrs.get("response_messages", 0)
                try:
                    messages[labels.up] += n_up
                except KeyError:
                    self.messages.inc(labels.up, n_up)
                try:
                    messages[labels.down] += n_down
                except KeyError:
                    self.messages.inc(labels.down, n_down)
                continue  # a gRPC call: no records, no client id
            records = attrs.get("record_count")
            if records:
                # Produce requests carry records upstream; Fetch responses downstream.
                rkey = labels.up if "acks" in attrs else labels.down
                try:
                    record_counts[rkey] += records
                except KeyError:
                    self.records.inc(rkey, records)
            client = attrs.get("client_id")
            if client is not None:
                ckey = state.client.get(client)
                if ckey is None:
                    if len(state.client) >= _CACHE_LIMIT:
                        state.client.clear()
                    ckey = state.client[client] = (state.listener, ex.protocol, client)
                try:
                    clients[ckey] += 1
                except KeyError:
                    self.clients.inc(ckey)
