"""The access log: one JSON line per Exchange, written in large batches.

The per-line cost is paid on every exchange of a proxy that is usually CPU
bound, so a line is one ``%`` over strings prepared earlier:

- everything fixed for a (connection, operation, status) - conn, listener,
  peers, protocol, operation, status - is JSON-encoded once, into one string;
- the wall-clock ``start`` reuses the text of its second and formats only the
  microseconds (``%.6f`` on a 10-digit float is the single most expensive
  step otherwise); it is derived from the loop's monotonic stamps with one
  offset taken when the log opens, so ``time.time()`` stays off this path and
  durations stay exact;
- ``duration`` uses ``%.12g`` (12 significant digits: below the clock's
  resolution, and cheaper than the shortest-repr ``%r``);
- gRPC calls, the common tiny exchange, have a template with their two message
  counts built in; other attrs go through a loop with cached string encodings.

Lines collect in a list and reach the file as one write per ``_BATCH`` lines,
on a once-a-second flush, and at close, so a busy proxy makes a few write
syscalls a second rather than one per exchange or per read.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from protoproxy_codecs.base import Exchange

if TYPE_CHECKING:
    from ..config import AccessLog as AccessLogConfig
    from ..connection import Connection

BUFFER = 256 * 1024
FLUSH_INTERVAL = 1.0
#: Lines held before one write; with ~250-byte lines, about one BUFFER.
_BATCH = 1024

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
}
#: (attr name, its '"name":' key with the comma before it), per protocol.
_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    proto: tuple((n, f',"{n}":') for n in names)
    for proto, names in (*_ATTRS.items(), ("", _ALL_ATTRS))
}

# start's second (text up to the '.'), microseconds, duration, the
# (connection, operation, status) fields, request_bytes, response_bytes.
_HEAD = '%s%06d,"duration":%s%s%d,"response_bytes":%d'
_LINE = _HEAD + "%s}\n"  # + the attrs' fields
_GRPC_LINE = _HEAD + ',"request_messages":%d,"response_messages":%d}\n'
_US = 1_000_000

#: Bound on each string cache (operations per connection, statuses per
#: operation, attr strings); a full cache is emptied and refilled.
_CACHE = 4096
_STATUS_CACHE = 256
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class _ConnLines:
    """One connection's pre-encoded line pieces; dropped when it closes."""

    __slots__ = ("fields", "ops")

    def __init__(self, fields: str) -> None:
        self.fields = fields  # ',"conn":..,"upstream":"..",'
        #: operation -> status -> (protocol, fields up to "request_bytes":, attr keys)
        self.ops: dict[str, dict[str, tuple[str, str, tuple[tuple[str, str], ...]]]] = {}


class AccessLog:
    def __init__(self, config: AccessLogConfig) -> None:
        self.sample = config.sample
        self.path = config.path
        self._rng = random.Random()
        self._out: IO[bytes] | None = None
        self._owns = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._clock_offset = 0.0
        self.lines = 0
        self._pending: list[str] = []
        self._conns: dict[int, _ConnLines] = {}
        self._values: dict[str | tuple[str, ...], str] = {}  # attr value -> its JSON
        # The wall-clock second last written and its text: '{"start":1795730399.'
        self._second = 0.0
        self._second_text = '{"start":0.'
        #: duration -> its text, kept while the loop's clock ticks in whole
        #: milliseconds (uvloop's), when durations take few distinct values.
        self._durations: dict[float, str] = {}
        self._quantized = False

    def _open(self, conn: Connection) -> IO[bytes]:
        if self.path in (None, "-", ""):
            # Bytes straight to stdout's buffer: TextIOWrapper would flush per line on a tty.
            out: IO[bytes] = getattr(sys.stdout, "buffer", None) or _TextSink(sys.stdout)
        else:
            out = open(self.path, "ab", buffering=BUFFER)  # noqa: SIM115 - closed in close()
            self._owns = True
        self._out = out
        # monotonic (the loop's clock, which stamps Exchanges) -> wall clock
        now = conn.loop.time()
        self._clock_offset = time.time() - now
        self._quantized = abs(now * 1000 - round(now * 1000)) < 1e-6
        return out

    def _conn_lines(self, conn: Connection) -> _ConnLines:
        """The connection's part of every line, encoded once per connection."""
        peer = conn.down.peername if conn.down is not None else "-"
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
        """Queue one line per (sampled) exchange."""
        if self._out is None:
            self._open(conn)
        state = self._conns.get(conn.id) or self._conn_lines(conn)
        ops = state.ops
        sample = self.sample
        offset = self._clock_offset
        second = self._second
        second_text = self._second_text
        pending = self._pending
        durations = self._durations
        before = len(pending)
        for ex in exchanges:
            if sample < 1.0 and self._rng.random() >= sample:
                continue
            by_status = ops.get(ex.operation)
            if by_status is None:
                if len(ops) >= _CACHE:
                    ops.clear()
                by_status = ops[ex.operation] = {}
            fixed = by_status.get(ex.status)
            if fixed is None or fixed[0] != ex.protocol:
                fixed = self._fixed(state, by_status, ex)
            t = ex.started + offset
            us = int((t - second) * _US + 0.5)
            if not 0 <= us < _US:
                start, us = self._start(t)
                second, second_text = self._second, self._second_text
            else:
                start = second_text
            dur = ex.finished - ex.started
            dtext = durations.get(dur)
            if dtext is None:
                dtext = self._duration(dur)
            attrs = ex.attrs
            if fixed[0] == "grpc" and attrs and "fault" not in attrs:
                n_in = attrs.get("request_messages")
                n_out = attrs.get("response_messages")
                if type(n_in) is int and type(n_out) is int and attrs.get("grpc_message") is None:
                    pending.append(
                        _GRPC_LINE
                        % (
                            start,
                            us,
                            dtext,
                            fixed[1],
                            ex.request_bytes,
                            ex.response_bytes,
                            n_in,
                            n_out,
                        )
                    )
                    continue
            pending.append(
                _LINE
                % (
                    start,
                    us,
                    dtext,
                    fixed[1],
                    ex.request_bytes,
                    ex.response_bytes,
                    self._attrs(attrs, fixed[2]) if attrs else "",
                )
            )
        added = len(pending) - before
        if not added:
            return
        self.lines += added
        if len(pending) >= _BATCH:
            self._write()
        if self._flush_handle is None:
            self._flush_handle = conn.loop.call_later(FLUSH_INTERVAL, self._timed_flush)

    def _fixed(
        self,
        state: _ConnLines,
        by_status: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]],
        ex: Exchange,
    ) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """The (connection, protocol, operation, status) fields of a line, encoded once."""
        if len(by_status) >= _STATUS_CACHE:
            by_status.clear()
        fixed = by_status[ex.status] = (
            ex.protocol,
            f'{state.fields}"protocol":{_encode(ex.protocol)},"operation":{_encode(ex.operation)},'
            f'"status":{_encode(ex.status)},"request_bytes":',
            _KEYS.get(ex.protocol, _KEYS[""]),
        )
        return fixed

    def _start(self, t: float) -> tuple[str, int]:
        """`start` split as (its text up to the '.', microseconds), for a new second.

        A later second becomes the cached one; an exchange that began in an
        earlier second (a long call) is formatted without disturbing it.
        """
        second = float(int(t))
        us = int((t - second) * _US + 0.5)
        if us == _US:  # rounds up into the next second
            second += 1.0
            us = 0
        text = f'{{"start":{int(second)}.'
        if second > self._second:
            self._second, self._second_text = second, text
        return text, us

    def _duration(self, dur: float) -> str:
        # %.12g prints 0 or 2 for whole numbers and rounds long durations: repr there.
        text = f"{dur:.12g}" if 0.0 < dur < 1.0 else repr(dur)
        if self._quantized:
            if len(self._durations) >= _CACHE:
                self._durations.clear()
            self._durations[dur] = text
        return text

    def _attrs(self, attrs: dict[str, Any], keys: tuple[tuple[str, str], ...]) -> str:
        out = ""
        values = self._values
        for name, key in keys:
            v = attrs.get(name)
            if v is None:
                continue
            t = type(v)
            if t is int:
                out += f"{key}{v}"
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
            if enc is not None:
                out += key + enc
                continue
            out += key + self._value(v)
        fault = attrs.get("fault")
        if fault is not None:
            out += ',"fault":' + _encode(fault)
        return out

    def _value(self, v: Any) -> str:
        """JSON for an attr value; strings (client ids) and lists of them (topics)
        are kept encoded, keyed by the string or the list's tuple."""
        t = type(v)
        if t is str:
            enc = self._values[v] = _encode(v)
        elif t is list and all(type(x) is str for x in v):
            enc = self._values[tuple(v)] = "[" + ",".join([_encode(x) for x in v]) + "]"
        else:
            return _encode(v)
        if len(self._values) > _CACHE:
            self._values.clear()
        return enc

    def _write(self) -> None:
        pending = self._pending
        if pending and self._out is not None:
            data = "".join(pending).encode()
            pending.clear()
            self._out.write(data)

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
