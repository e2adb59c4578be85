"""The access log: one JSON line per Exchange, written in large chunks.

The per-line cost is paid on every exchange of a proxy that is usually CPU
bound, so the work is arranged to be small:

- a line is one bytes ``%`` appended to a bytearray as the exchange is
  observed: no str per line to keep and join, no encode, nothing held for the
  GC; the bytearray goes out as one write per `CHUNK`, on a once-a-second
  timer, and at close;
- everything fixed for a (connection, protocol, operation, status) - conn,
  listener, peers, protocol, operation, status - is JSON-encoded once;
- the wall-clock ``start`` reuses the text of its second and formats only the
  microseconds (``%.6f`` on a 10-digit float is the single most expensive
  step otherwise); it is derived from the Exchange's nanosecond monotonic
  stamp with one offset taken when the log opens, in int arithmetic, so
  ``time.time()`` stays off this path;
- ``duration`` and the six timings are int nanoseconds; below one second
  (nearly always) each is written as seconds by ``0.%09d``, an int format,
  where a float format would cost several times more per field;
- gRPC calls, the common tiny exchange, have a template with their two message
  counts built in; other attrs go through a loop with cached encodings.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from protoproxy_codecs.base import NS, Exchange, now_ns

if TYPE_CHECKING:
    from ..config import AccessLog as AccessLogConfig
    from ..connection import Connection

BUFFER = 256 * 1024
#: Lines gathered before a write. Small enough that the bytearray stays in the
#: heap: past 128 KiB malloc maps fresh pages for it after every write, and the
#: page faults cost more system time than the line formatting's user time.
CHUNK = 64 * 1024
FLUSH_INTERVAL = 1.0

# Exchange attrs copied into the line when present (small, bounded values only),
# by exchange protocol; "fault" is checked for every protocol.
_ALL_ATTRS = (
    "client_id",
    "record_count",
    "topics",
    "errors",
    "request_messages",
    "response_messages",
    "grpc_message",
)
_ATTRS: dict[str, tuple[str, ...]] = {
    "kafka": ("client_id", "record_count", "topics", "errors"),
    "grpc": ("request_messages", "response_messages", "grpc_message"),
    "http2": (),
    "http": (),
}
#: (attr name, its ',"name":' key), per protocol.
_KEYS: dict[str, tuple[tuple[str, bytes], ...]] = {
    proto: tuple((n, f',"{n}":'.encode()) for n in names)
    for proto, names in (*_ATTRS.items(), ("", _ALL_ATTRS))
}

# start's second (text up to the '.'), microseconds, duration and timings, the
# (connection, operation, status) fields, request_bytes, response_bytes.
_HEAD = b'%s%06d,"duration":%s%s%d,"response_bytes":%d'
#: The common line: a response, a reused upstream connection (upstream_connect
#: null), every timing under a second; its duration and timings are int
#: formats in the line's one template. Other lines take `_HEAD` (`_times`).
_FAST = (
    b'%s%06d,"duration":0.%09d,"upstream_connect":null,"request_duration":0.%09d,'
    b'"upstream_service_time":0.%09d,"response_duration":0.%09d,'
    b'"proxy_time":0.%09d,"fault_delay":0.%09d%s%d,"response_bytes":%d'
)
_TIME_NAMES = (
    "upstream_connect",
    "request_duration",
    "upstream_service_time",
    "response_duration",
    "proxy_time",
    "fault_delay",
)
_LINE = _HEAD + b"%s}\n"  # + the attrs' fields
_PLAIN_LINE = _HEAD + b"}\n"
_GRPC_LINE = _HEAD + b',"request_messages":%d,"response_messages":%d}\n'
_FAST_LINE = _FAST + b"%s}\n"
_FAST_PLAIN_LINE = _FAST + b"}\n"
_FAST_GRPC_LINE = _FAST + b',"request_messages":%d,"response_messages":%d}\n'
_US = 1_000_000

#: Bound on each cache (operations per connection, statuses per operation,
#: attr values); a full cache is emptied and refilled.
_CACHE = 4096
_STATUS_CACHE = 256
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _json(v: Any) -> bytes:
    return _encode(v).encode()


# Which template a line takes: no attrs to copy but a fault, a gRPC call, any other.
_PLAIN, _GRPC, _OTHER = "plain", "grpc", "other"
#: (protocol, the line's fields from conn to "request_bytes":, attr keys, template kind)
_Fixed = tuple[str, bytes, tuple[tuple[str, bytes], ...], str]


class _ConnLines:
    """One connection's pre-encoded line pieces; dropped when it closes."""

    __slots__ = ("fields", "ops")

    def __init__(self, fields: str) -> None:
        self.fields = fields  # ',"conn":..,"upstream":"..",'
        #: operation -> status -> the line's fixed fields
        self.ops: dict[str, dict[str, _Fixed]] = {}


class AccessLog:
    def __init__(self, config: AccessLogConfig) -> None:
        self.sample = config.sample
        self.path = config.path
        self._rng = random.Random()
        self._out: IO[bytes] | None = None
        self._owns = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._clock_offset = 0  # ns: wall clock minus the Exchange clock
        #: Lines not yet written: up to CHUNK bytes or FLUSH_INTERVAL seconds.
        self._buf = bytearray()
        self._conns: dict[int, _ConnLines] = {}
        self._values: dict[str | tuple[str, ...], bytes] = {}  # attr value -> its JSON
        # The wall-clock second last written (ns) and its text: b'{"start":1795730399.'
        self._second = 0
        self._second_text = b'{"start":0.'

    def _open(self, conn: Connection) -> IO[bytes]:
        if self.path in (None, "-", ""):
            # Bytes straight to stdout's buffer: TextIOWrapper would flush per line on a tty.
            out: IO[bytes] = getattr(sys.stdout, "buffer", None) or _TextSink(sys.stdout)
        else:
            out = open(self.path, "ab", buffering=BUFFER)  # noqa: SIM115 - closed in close()
            self._owns = True
        self._out = out
        # the Exchange clock (monotonic ns) -> wall clock (Unix ns)
        self._clock_offset = time.time_ns() - now_ns()
        return out

    def _conn_lines(self, conn: Connection) -> _ConnLines:
        """The connection's part of every line, encoded once per connection."""
        peer = conn.client.peername if conn.client is not None else "-"
        upstream = conn.endpoint.name if conn.endpoint is not None else "-"
        state = _ConnLines(
            f',"conn":{conn.id},"listener":{_encode(conn.listener.name)},'
            f'"downstream":{_encode(peer)},"upstream":{_encode(upstream)},'
        )
        if conn.endpoint is not None:  # before the upstream is known, don't cache
            self._conns[conn.id] = state
        return state

    def closed(self, conn: Connection) -> None:
        self._conns.pop(conn.id, None)

    def observe(self, conn: Connection, exchanges: list[Exchange]) -> None:
        """Append one line per (sampled) exchange to the buffer.

        Formatted now rather than held for a batch: held exchanges outlive a
        young-generation collection or two, and the GC work that adds costs
        more than formatting per call saves.
        """
        if self._out is None:
            self._open(conn)
        state = self._conns.get(conn.id) or self._conn_lines(conn)
        if self.sample < 1.0:
            rand = self._rng.random
            exchanges = [ex for ex in exchanges if rand() < self.sample]
        offset = self._clock_offset
        second = self._second
        second_text = self._second_text
        out = self._buf
        ops = state.ops
        for ex in exchanges:
            by_status = ops.get(ex.operation)
            if by_status is None:
                if len(ops) >= _CACHE:
                    ops.clear()
                by_status = ops[ex.operation] = {}
            fixed = by_status.get(ex.status)
            if fixed is None or fixed[0] != ex.protocol:
                fixed = self._fixed(state, by_status, ex)
            started = ex.started
            t = started + offset
            us = (t - second + 500) // 1000  # literals: no global lookups per line
            if 0 <= us < 1_000_000:
                start = second_text
            else:
                start, us = self._start(t)
                second, second_text = self._second, self._second_text
            finished = ex.finished
            dur = finished - started
            written = ex.request_written
            resp = ex.response_started
            attrs = ex.attrs
            proxy = ex.proxy_time
            held = ex.fault_delay
            if not (
                0 <= dur < 1_000_000_000
                and started <= written
                and started <= resp
                and ex.upstream_connect is None
                and proxy <= dur
                and held <= dur
            ):
                self._general(ex, start, us, fixed)
                continue
            # Every timing lies inside [started, finished]: each is in [0, dur]
            # (the codecs' sums never go below 0), so each fits 0.%09d.
            kind = fixed[3]
            if kind is _PLAIN and "fault" not in attrs:
                out += _FAST_PLAIN_LINE % (
                    start,
                    us,
                    dur,
                    written - started,
                    resp - written if resp > written else 0,
                    finished - resp,
                    proxy,
                    held,
                    fixed[1],
                    ex.request_bytes,
                    ex.response_bytes,
                )
                continue
            if kind is _GRPC and "fault" not in attrs and "grpc_message" not in attrs:
                # A gRPC call: the codec always sets both counts, as ints.
                try:
                    out += _FAST_GRPC_LINE % (
                        start,
                        us,
                        dur,
                        written - started,
                        resp - written if resp > written else 0,
                        finished - resp,
                        proxy,
                        held,
                        fixed[1],
                        ex.request_bytes,
                        ex.response_bytes,
                        attrs["request_messages"],
                        attrs["response_messages"],
                    )
                    continue
                except (KeyError, TypeError):
                    pass  # not as expected: the general form below
            out += _FAST_LINE % (
                start,
                us,
                dur,
                written - started,
                resp - written if resp > written else 0,
                finished - resp,
                proxy,
                held,
                fixed[1],
                ex.request_bytes,
                ex.response_bytes,
                self._attrs(attrs, fixed[2]) if attrs else b"",
            )
        if len(out) >= CHUNK:
            self._write()
        elif self._flush_handle is None:
            self._flush_handle = conn.loop.call_later(FLUSH_INTERVAL, self._timed_flush)

    def _general(self, ex: Exchange, start: bytes, us: int, fixed: _Fixed) -> None:
        """A line off the fast path: no response, a first exchange (upstream_connect
        set), a timing of a second or more, or stamps out of order."""
        dtext = _times(ex)
        attrs = ex.attrs
        kind = fixed[3]
        if kind is _PLAIN and "fault" not in attrs:
            self._buf += _PLAIN_LINE % (
                start,
                us,
                dtext,
                fixed[1],
                ex.request_bytes,
                ex.response_bytes,
            )
            return
        if kind is _GRPC and "fault" not in attrs and "grpc_message" not in attrs:
            try:
                self._buf += _GRPC_LINE % (
                    start,
                    us,
                    dtext,
                    fixed[1],
                    ex.request_bytes,
                    ex.response_bytes,
                    attrs["request_messages"],
                    attrs["response_messages"],
                )
                return
            except (KeyError, TypeError):
                pass
        self._buf += _LINE % (
            start,
            us,
            dtext,
            fixed[1],
            ex.request_bytes,
            ex.response_bytes,
            self._attrs(attrs, fixed[2]) if attrs else b"",
        )

    def _fixed(self, state: _ConnLines, by_status: dict[str, _Fixed], ex: Exchange) -> _Fixed:
        """The (connection, protocol, operation, status) fields of a line, encoded once."""
        if len(by_status) >= _STATUS_CACHE:
            by_status.clear()
        keys = _KEYS.get(ex.protocol, _KEYS[""])
        fixed = by_status[ex.status] = (
            ex.protocol,
            (
                f'{state.fields}"protocol":{_encode(ex.protocol)},'
                f'"operation":{_encode(ex.operation)},"status":{_encode(ex.status)},'
                '"request_bytes":'
            ).encode(),
            keys,
            _GRPC if ex.protocol == "grpc" else _OTHER if keys else _PLAIN,
        )
        return fixed

    def _start(self, t: int) -> tuple[bytes, int]:
        """`start` (Unix ns) split as (its text up to the '.', microseconds), for a new second.

        A later second becomes the cached one; an exchange that began in an
        earlier second (a long call) is formatted without disturbing it.
        """
        second = t // NS * NS
        us = (t - second + 500) // 1000
        if us == _US:  # rounds up into the next second
            second += NS
            us = 0
        text = b'{"start":%d.' % (second // NS)
        if second > self._second:
            self._second, self._second_text = second, text
        return text, us

    def _attrs(self, attrs: dict[str, Any], keys: tuple[tuple[str, bytes], ...]) -> bytes:
        out = b""
        values = self._values
        for name, key in keys:
            v = attrs.get(name)
            if v is None:
                continue
            t = type(v)
            if t is int:
                out += b"%s%d" % (key, v)
                continue
            if t is str:
                enc = values.get(v)
            elif t is list:
                try:
                    enc = values.get(tuple(v))
                except TypeError:  # unhashable items: encoded below, uncached
                    enc = None
            else:
                enc = None
            out += key + (enc if enc is not None else self._value(v))
        fault = attrs.get("fault")
        if fault is not None:
            out += b',"fault":' + _json(fault)
        return out

    def _value(self, v: Any) -> bytes:
        """JSON for an attr value; strings (client ids) and lists of them (topics)
        are kept encoded, keyed by the string or the list's tuple."""
        t = type(v)
        if t is str:
            enc = self._values[v] = _json(v)
        elif t is list and all(type(x) is str for x in v):
            enc = self._values[tuple(v)] = _json(v)
        else:
            return _json(v)
        if len(self._values) > _CACHE:
            self._values.clear()
        return enc

    def _write(self) -> None:
        if self._buf and self._out is not None:
            self._out.write(self._buf)
            self._buf.clear()

    def _timed_flush(self) -> None:
        self._flush_handle = None
        self.flush()

    def flush(self) -> None:
        if self._out is not None:
            try:
                self._write()
                self._out.flush()
            except (OSError, ValueError, io.UnsupportedOperation):
                pass  # stdout closed under us at exit; nothing left to write to

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.flush()
        if self._owns and self._out is not None:
            self._out.close()
        self._out = None


def _seconds(ns: int | None) -> bytes:
    """A timing as JSON seconds (9 decimals: the clock's nanoseconds); null for None."""
    if ns is None:
        return b"null"
    if 0 <= ns < NS:
        return b"0.%09d" % ns
    sign = b"-" if ns < 0 else b""
    whole, frac = divmod(abs(ns), NS)
    return b"%s%d.%09d" % (sign, whole, frac)


def _times(ex: Exchange) -> bytes:
    """Duration and timings for the uncommon line (no response, first exchange, >= 1 s)."""
    return _seconds(ex.duration) + b"".join(
        b',"%s":%s' % (name.encode(), _seconds(getattr(ex, name))) for name in _TIME_NAMES
    )


class _TextSink(io.RawIOBase):
    """Bytes onto a text stream that has no `.buffer` (a test's captured stdout)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.stream.write(bytes(data).decode())
        return len(data)

    def flush(self) -> None:
        self.stream.flush()
