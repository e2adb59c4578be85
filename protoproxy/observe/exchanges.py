"""Per-Exchange metrics, whatever the protocol: counts, latency, messages, records.

Protocol components add their own richer families (per topic, per broker...);
these generic ones exist so that every listener gets request counts and a
latency histogram even before, or without, a protocol integration.

The hot path: one dict lookup for the connection's label state, two nested
dict lookups for the cached label tuple, then ``+=`` on plain numbers; the
counters' and histogram's methods run only for a series' first value (where
the series caps apply). Label tuples are built once per (connection,
operation, status) and reused.

Timings are the Exchange's int nanoseconds, observed as they are into
histograms whose bounds are nanoseconds too (exported in seconds), so there is
no float conversion per exchange. The timing families follow the series cap of
protoproxy_exchange_duration_seconds and share its labels.
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
DURATION = "protoproxy_exchange_duration_seconds"


class _OpLabels:
    """Every label tuple one operation needs, built on its first exchange."""

    __slots__ = ("by_status", "down", "hist", "op", "timings", "up")

    def __init__(self, listener: str, protocol: str, op: str) -> None:
        self.op = (listener, protocol, op)
        #: The duration histogram's series for `op`, once it exists (series are
        #: never dropped, so holding it saves a tuple-keyed lookup per exchange).
        self.hist: HistogramSeries | None = None
        #: request_duration, upstream_service_time, response_duration and
        #: proxy_time series for `op`, once all four exist
        self.timings: tuple[HistogramSeries, ...] | None = None
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
        labels = ("listener", "protocol", "operation")
        self.duration: Histogram = stats.latency_histogram(
            DURATION,
            "Time from the request's first byte read to the response's last byte written",
            labels,
        )
        self.request_duration = stats.latency_histogram(
            "protoproxy_exchange_request_duration_seconds",
            "Time from the request's first byte read to its last byte written upstream",
            labels,
            DURATION,
        )
        self.upstream_service_time = stats.latency_histogram(
            "protoproxy_exchange_upstream_service_time_seconds",
            "Time from the request's last byte written to the response's first byte read",
            labels,
            DURATION,
        )
        self.response_duration = stats.latency_histogram(
            "protoproxy_exchange_response_duration_seconds",
            "Time from the response's first byte read to its last byte written downstream",
            labels,
            DURATION,
        )
        self.proxy_time = stats.latency_histogram(
            "protoproxy_exchange_proxy_time_seconds",
            "Time the exchange's bytes spent inside the proxy, fault delays left out",
            labels,
            DURATION,
        )
        self.fault_delay = stats.latency_histogram(
            "protoproxy_exchange_fault_delay_seconds",
            "Time fault delays held the exchange's bytes (exchanges that were held)",
            labels,
            DURATION,
        )
        self.upstream_connect = stats.latency_histogram(
            "protoproxy_exchange_upstream_connect_seconds",
            "Upstream connect (and TLS) time, on each connection's first exchange",
            labels,
            DURATION,
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

    def _timings(self, labels: _OpLabels, ex: Exchange) -> None:
        """The timing histograms through their methods (a first series, caps, no response)."""
        op = labels.op
        self.request_duration.observe(op, ex.request_duration)
        self.proxy_time.observe(op, ex.proxy_time)
        if ex.response_started:
            self.upstream_service_time.observe(op, ex.upstream_service_time)  # type: ignore[arg-type]
            self.response_duration.observe(op, ex.response_duration)  # type: ignore[arg-type]
        got = tuple(
            f.series.get(op)
            for f in (
                self.request_duration,
                self.upstream_service_time,
                self.response_duration,
                self.proxy_time,
            )
        )
        if None not in got:  # all four exist (not folded into `other`): inline from now on
            labels.timings = got  # type: ignore[assignment]

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
        first = bounds[0]
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
            started = ex.started
            written = ex.request_written
            duration = ex.finished - started
            s = labels.hist
            if s is None:
                self.duration.observe(labels.op, duration)
                # None while the series is folded into `other`: observe() again.
                labels.hist = series.get(labels.op)
            else:
                s.buckets[bisect_left(bounds, duration)] += 1
                s.sum += duration
            timings = labels.timings
            resp = ex.response_started
            if timings is None or not resp:
                self._timings(labels, ex)
            else:
                # Same bounds as the duration's; inlined like it. The request's
                # and response's passage and the proxy time are the proxy's own
                # work, nearly always under the first bound (25 µs): a compare
                # finds that bucket in a fraction of bisect_left's time (which
                # gives 0 exactly when v <= bounds[0], so the counts are the
                # same). The upstream's time is the network's: bisect.
                req_s, up_s, resp_s, proxy_s = timings
                v = written - started if written > started else 0
                req_s.buckets[0 if v <= first else bisect_left(bounds, v)] += 1
                req_s.sum += v
                v = resp - written if resp > written else 0
                up_s.buckets[bisect_left(bounds, v)] += 1
                up_s.sum += v
                v = ex.finished - resp if ex.finished > resp else 0
                resp_s.buckets[0 if v <= first else bisect_left(bounds, v)] += 1
                resp_s.sum += v
                v = ex.proxy_time
                proxy_s.buckets[0 if v <= first else bisect_left(bounds, v)] += 1
                proxy_s.sum += v
            if ex.fault_delay:
                self.fault_delay.observe(labels.op, ex.fault_delay)
            if ex.upstream_connect is not None:
                self.upstream_connect.observe(labels.op, ex.upstream_connect)
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
