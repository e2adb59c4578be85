"""Per-method gRPC and per-route HTTP metrics, built from the codecs' Exchanges.

Why Exchanges and not frames: the HTTP/2 codec already pairs every stream's
request with its response and counts gRPC messages while framing, so one
Exchange per call carries everything the metrics need. Counting here costs a
handful of dict operations per *call*, never per frame. The only per-frame
work is `CallStartFilter`, which counts a gRPC call the moment its request
headers pass (so in-flight calls show up before they finish).

Label tuples are cached per (listener, path) and per (listener, host, method)
so that the hot path builds no tuples and parses no paths for known routes.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction, Exchange, Message
from protoproxy_codecs.grpc.call import split_path
from protoproxy_codecs.http2.message import FrameMessage

from ..observe.stats import Counter, Histogram, Stats
from .inventory import GrpcInventory, MethodEntry

if TYPE_CHECKING:
    from ..connection import Connection

_METHOD_LABELS = ("listener", "service", "method")
_HTTP_LABELS = ("listener", "host", "method", "status_class")
#: Distinct routes kept in the label caches; past this, keys are built per call.
_CACHE_MAX = 4096
#: Longer raw values are not cached (a cache of 4096 32 KiB Hosts would be 128 MiB):
#: they pay the key building each time, and stats.py cuts them.
_CACHE_VALUE_MAX = 256


class _MethodKeys:
    """Pre-built label tuples for one (listener, gRPC path)."""

    __slots__ = ("base", "by_status", "entry", "generation", "method", "recv", "sent", "service")

    def __init__(self, listener: str, service: str, method: str) -> None:
        #: The inventory entry, kept while the inventory's generation is unchanged.
        self.entry: MethodEntry | None = None
        self.generation = -1
        self.service = service
        self.method = method
        self.base = (listener, service, method)
        self.sent = (listener, service, method, "upstream")
        self.recv = (listener, service, method, "downstream")
        self.by_status: dict[str, tuple[str, str, str, str]] = {}

    def status(self, status: str) -> tuple[str, str, str, str]:
        key = self.by_status.get(status)
        if key is None:
            key = (*self.base, status)
            if len(self.by_status) < 32:  # 17 gRPC codes; anything else is junk
                self.by_status[status] = key
        return key


def status_class(status: str) -> str:
    """``"204"`` -> ``"2xx"``; non-numeric outcomes (``reset``, ``aborted``) stay as they are."""
    if len(status) == 3 and status.isdigit():
        return status[0] + "xx"
    return status


class HttpMetrics:
    """The metric families of HTTP/1.1, HTTP/2 and gRPC traffic, fed per Exchange."""

    def __init__(self, stats: Stats, inventory: GrpcInventory | None = None) -> None:
        self.inventory = inventory
        self.grpc_started: Counter = stats.counter(
            "protoproxy_grpc_calls_started_total",
            "gRPC calls whose request headers were relayed",
            _METHOD_LABELS,
        )
        self.grpc_finished: Counter = stats.counter(
            "protoproxy_grpc_calls_total",
            "gRPC calls finished, by final status name",
            (*_METHOD_LABELS, "status"),
        )
        self.grpc_messages: Counter = stats.counter(
            "protoproxy_grpc_messages_total",
            "gRPC length-prefixed messages relayed; direction upstream = requests",
            (*_METHOD_LABELS, "direction"),
        )
        self.grpc_message_bytes: Counter = stats.counter(
            "protoproxy_grpc_message_bytes_total",
            "gRPC message payload bytes (5-byte prefixes excluded), by direction",
            (*_METHOD_LABELS, "direction"),
        )
        self.grpc_latency: Histogram = stats.latency_histogram(
            "protoproxy_grpc_call_duration_seconds",
            "gRPC call time from request headers read to end of response written",
            _METHOD_LABELS,
        )
        self.http_requests: Counter = stats.counter(
            "protoproxy_http_requests_total",
            "HTTP/1.1 and non-gRPC HTTP/2 requests answered (or ended), by status class",
            _HTTP_LABELS,
        )
        self.http_latency: Histogram = stats.latency_histogram(
            "protoproxy_http_request_duration_seconds",
            "HTTP request time from request head read to end of response written",
            _HTTP_LABELS,
        )
        self._methods: dict[tuple[str, str], _MethodKeys] = {}
        self._http: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}

    # -- keys -------------------------------------------------------------------------

    def method_keys(self, listener: str, path: str) -> _MethodKeys:
        keys = self._methods.get((listener, path))
        if keys is None:
            service, method = split_path(path)
            keys = _MethodKeys(listener, service, method)
            if len(self._methods) < _CACHE_MAX and len(path) <= _CACHE_VALUE_MAX:
                self._methods[(listener, path)] = keys
        return keys

    # -- feeding ----------------------------------------------------------------------

    def call_started(self, listener: str, path: str) -> None:
        self.grpc_started.inc(self.method_keys(listener, path).base)

    def observe(self, conn: Connection, exchanges: list[Exchange]) -> None:
        """The proxy's exchange observer: one call or request per Exchange."""
        listener = conn.listener.name
        counted_start = conn.protocol == "http2"  # else (h2c upgrade) count it here
        for ex in exchanges:
            protocol = ex.protocol
            if protocol == "grpc":
                self._grpc(listener, ex, counted_start)
            elif protocol == "http" or protocol == "http2":
                self._http_request(listener, ex)

    def _grpc(self, listener: str, ex: Exchange, counted_start: bool) -> None:
        keys = self.method_keys(listener, ex.operation)
        attrs = ex.attrs
        if not counted_start:
            self.grpc_started.inc(keys.base)
        status = ex.status
        # Counter.inc / Histogram.observe inlined for series that exist (the
        # steady state); new series go through the methods, where caps apply.
        key = keys.by_status.get(status)
        if key is None:
            key = keys.status(status)
        values = self.grpc_finished.values
        if key in values:
            values[key] += 1
        else:
            self.grpc_finished.inc(key)
        n_req = attrs["request_messages"]
        n_resp = attrs["response_messages"]
        if n_req:
            _add(self.grpc_messages, keys.sent, n_req)
            _add(self.grpc_message_bytes, keys.sent, attrs["request_message_bytes"])
        if n_resp:
            _add(self.grpc_messages, keys.recv, n_resp)
            _add(self.grpc_message_bytes, keys.recv, attrs["response_message_bytes"])
        duration = ex.finished - ex.started  # int ns, as the histogram's bounds
        series = self.grpc_latency.series.get(keys.base)
        if series is None:
            self.grpc_latency.observe(keys.base, duration)
        else:
            series.buckets[bisect_left(self.grpc_latency.bounds, duration)] += 1
            series.sum += duration
        inventory = self.inventory
        if inventory is not None:
            entry = keys.entry
            if entry is None or keys.generation != inventory.generation:
                entry = keys.entry = inventory.entry(keys.service, keys.method)
                keys.generation = inventory.generation
            if entry is None:
                inventory.dropped += 1
            else:
                entry.add(listener, status, n_req, n_resp, inventory.clock())

    def _http_request(self, listener: str, ex: Exchange) -> None:
        attrs = ex.attrs
        if ex.protocol == "http":
            host = attrs.get("host") or ""
            method = attrs.get("method") or ""
        else:
            host = attrs.get("authority") or ""
            method = ex.operation.partition(" ")[0]
        status = ex.status
        raw = (listener, host, method, status)
        key = self._http.get(raw)
        if key is None:
            key = (listener, host, method, status_class(status))
            if len(self._http) < _CACHE_MAX and len(host) + len(method) <= _CACHE_VALUE_MAX:
                self._http[raw] = key
        self.http_requests.inc(key)
        self.http_latency.observe(key, ex.finished - ex.started)


def _add(counter: Counter, key: tuple[str, ...], amount: float) -> None:
    values = counter.values
    if key in values:
        values[key] += amount
    else:
        counter.inc(key, amount)


class CallStartFilter:
    """Counts gRPC calls as their request headers pass (one instance per connection).

    A new client stream is one whose id is above every id seen so far (client
    stream ids only grow), so request trailers and later frames of a stream are
    never counted twice. Every other frame costs one integer compare: HTTP/2
    messages carry their stream id as `key`.
    """

    __slots__ = ("last_headers", "last_path", "listener", "max_sid", "metrics")

    def __init__(self, metrics: HttpMetrics, listener: str) -> None:
        self.metrics = metrics
        self.listener = listener
        self.max_sid = 0
        #: the last request head scanned, and the gRPC path it started (or None)
        self.last_headers: object = None
        self.last_path: str | None = None

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if direction:  # DOWNSTREAM: responses start nothing
            return messages
        max_sid = self.max_sid
        for m in messages:
            sid = m.key
            if not sid or sid <= max_sid:  # stream 0 (or no id), or a stream already seen
                continue
            # A relayed frame keeps its decoded headers in `extra`; its full
            # `info` is built lazily and need not be built for this.
            info = m.extra if type(m) is FrameMessage else m.info
            headers = info.get("headers") if info is not None else None
            if headers is None:  # HEADERS still waiting for its CONTINUATION
                continue
            max_sid = sid
            if headers is self.last_headers:
                # The HPACK block cache hands back the same tuple for the same
                # block: a client repeating one request is scanned once.
                path = self.last_path
            else:
                path = None
                for name, value in headers:
                    if name == ":path":
                        path = value
                    elif name == "content-type":
                        if path is None or not value.startswith("application/grpc"):
                            path = None
                        break
                else:
                    path = None
                self.last_headers = headers
                self.last_path = path
            if path is not None:
                self.metrics.call_started(self.listener, path)
        self.max_sid = max_sid
        return messages
