"""The access log: one JSON line per Exchange, written through a large buffer.

Lines collect in a BufferedWriter and reach the file when the buffer fills or
on a once-a-second flush, so a busy proxy makes a few write syscalls a second
rather than one per exchange. Wall-clock start times are derived from the
monotonic timestamps with one offset taken when the log is opened, which keeps
`time.time()` out of the per-line path and makes durations exact.
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

# Exchange attrs copied into the line when present (small, bounded values only),
# by exchange protocol; "fault" is checked for every protocol.
_ATTRS: dict[str, tuple[str, ...]] = {
    "kafka": ("client_id", "record_count", "topics", "errors"),
    "grpc": ("request_messages", "response_messages", "grpc_message"),
}
_ALL_ATTRS = (
    "client_id",
    "record_count",
    "topics",
    "errors",
    "request_messages",
    "response_messages",
    "grpc_message",
)
_LINE = '{"start":%.6f,"duration":%r,%s%s"request_bytes":%d,"response_bytes":%d'
_STRING_CACHE = 4096
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class AccessLog:
    def __init__(self, config: AccessLogConfig) -> None:
        self.sample = config.sample
        self.path = config.path
        self._rng = random.Random()
        self._out: IO[bytes] | None = None
        self._owns = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._clock_offset: float | None = None
        self.lines = 0
        self._conns: dict[int, str] = {}  # conn id -> its encoded fields
        #: operation -> status -> encoded protocol/operation/status fields
        self._frags: dict[str, dict[str, tuple[str, str, tuple[str, ...]]]] = {}
        self._values: dict[str, str] = {}  # attr string -> its JSON

    def _open(self, conn: Connection) -> IO[bytes]:
        if self.path in (None, "-", ""):
            # Bytes straight to stdout's buffer: TextIOWrapper would flush per line on a tty.
            out: IO[bytes] = getattr(sys.stdout, "buffer", None) or _TextSink(sys.stdout)
        else:
            out = open(self.path, "ab", buffering=BUFFER)  # noqa: SIM115 - closed in close()
            self._owns = True
        self._out = out
        # monotonic (the loop's clock, which stamps Exchanges) -> wall clock
        self._clock_offset = time.time() - conn.loop.time()
        return out

    def _conn_fields(self, conn: Connection) -> str:
        """The connection's part of every line, encoded once per connection."""
        frag = self._conns.get(conn.id)
        if frag is None:
            peer = conn.down.peername if conn.down is not None else "-"
            upstream = conn.endpoint.name if conn.endpoint is not None else "-"
            frag = (
                f'"conn":{conn.id},"listener":{_encode(conn.listener.name)},'
                f'"downstream":{_encode(peer)},"upstream":{_encode(upstream)},'
            )
            if conn.endpoint is not None:  # before the upstream is known, don't cache
                self._conns[conn.id] = frag
        return frag

    def closed(self, conn: Connection) -> None:
        self._conns.pop(conn.id, None)

    def observe(self, conn: Connection, exchanges: list[Exchange]) -> None:
        """Append one line per (sampled) exchange.

        Lines are assembled from pre-encoded fragments rather than json-dumping
        a dict per exchange: the connection part is encoded once per connection
        and strings like operation and status once per distinct value.
        """
        out = self._out or self._open(conn)
        sample = self.sample
        offset = self._clock_offset
        assert offset is not None
        conn_part = self._conn_fields(conn)
        frags = self._frags
        lines = []
        for ex in exchanges:
            if sample < 1.0 and self._rng.random() >= sample:
                continue
            # protocol, operation and status, encoded once per distinct triple
            by_op = frags.get(ex.operation)
            if by_op is None:
                if len(frags) >= _STRING_CACHE:
                    frags.clear()
                by_op = frags[ex.operation] = {}
            cached = by_op.get(ex.status)
            if cached is None or cached[0] != ex.protocol:
                cached = by_op[ex.status] = (
                    ex.protocol,
                    f'"protocol":{_encode(ex.protocol)},"operation":{_encode(ex.operation)},'
                    f'"status":{_encode(ex.status)},',
                    _ATTRS.get(ex.protocol, _ALL_ATTRS),
                )
            line = _LINE % (
                ex.started + offset,
                ex.finished - ex.started,
                conn_part,
                cached[1],
                ex.request_bytes,
                ex.response_bytes,
            )
            attrs = ex.attrs
            if attrs:
                for name in cached[2]:
                    v = attrs.get(name)
                    if v is not None:
                        line += f',"{name}":{self._value(v)}'
                fault = attrs.get("fault")
                if fault is not None:
                    line += f',"fault":{_encode(fault)}'
            lines.append(line + "}\n")
        if not lines:
            return
        self.lines += len(lines)
        out.write("".join(lines).encode())
        if self._flush_handle is None:
            self._flush_handle = conn.loop.call_later(FLUSH_INTERVAL, self._timed_flush)

    def _value(self, v: Any) -> str:
        """JSON for an attr value; strings (client ids, topics) encoded once each."""
        t = type(v)
        if t is int:
            return str(v)
        if t is str:
            enc = self._values.get(v)
            if enc is None:
                if len(self._values) >= _STRING_CACHE:
                    self._values.clear()
                enc = self._values[v] = _encode(v)
            return enc
        if t is list and all(type(x) is str for x in v):
            return "[" + ",".join([self._value(x) for x in v]) + "]"
        return _encode(v)

    def _timed_flush(self) -> None:
        self._flush_handle = None
        self.flush()

    def flush(self) -> None:
        if self._out is not None:
            try:
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
