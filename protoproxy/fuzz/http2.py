"""`protoproxy fuzz http2`: valid client conversations against an HTTP/2 server (h2c).

One connection per case: the case's writes go out, then the server's frames
are read until every stream the client opened is closed, a GOAWAY arrives or
the deadline passes. The driver behaves as a client must while it reads: it
acknowledges the server's SETTINGS and PINGs and gives back the flow-control
credit the server's DATA used (so a large answer is not a false deadline);
those replies are not part of `wire`, they follow from what the server sends.

The server's frames are decoded by protoproxy's own codec, fed both
directions in order, so HPACK state, SETTINGS and flow control are checked as
the proxy checks them. Oracles:

- ``decodes``: every server frame parses (framing, sizes, HPACK, windows);
- ``correlation``: no server frame on a stream the client never opened, nor
  after the server closed the stream (RFC 9113 5.1 allows PRIORITY on any
  stream, WINDOW_UPDATE and RST_STREAM after the server's END_STREAM, and
  anything after the client's own RST_STREAM, which may cross frames in flight);
- ``deadline``: every opened stream is answered within ``--deadline``;
- ``closed_with_reason``: the server does not close the connection without a GOAWAY;
- ``not_a_server_error``: no ``:status`` 5xx (``--allow-status 503`` accepts one);
- ``alive`` (the probe): a new connection's PING is acknowledged within the deadline.

A GOAWAY with an error code ends the case without a failure (it is a reason),
but the observation's label says so (``... -> GOAWAY PROTOCOL_ERROR``), so a
server refusing valid conversations shows in the coverage table.

After a failure the target may be restarting (a supervisor, or a test's
planted server): the next case first waits, up to the deadline, for a probe to
pass, so a crash is charged to the case that caused it and shrinking runs
against a live server.
"""

from __future__ import annotations

import socket
import time
from typing import Any, ClassVar

from hypothesis.strategies import SearchStrategy

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.codec import Http2Codec

from . import http2_cases
from .driver import Case, Observation, Options, OracleFailure, Target

#: the probe's PING payload
PROBE_PING = b"fuzzping"
#: the first SETTINGS of the probe's connection
_PROBE_HELLO = (
    F.PREFACE + F.build_settings([(int(F.SettingId.ENABLE_PUSH), 0)]) + F.build_ping(PROBE_PING)
)
#: seconds between probes while waiting for a target to come back
_RETRY_S = 0.002
_SETTINGS_ACK = F.build_settings(ack=True)
#: frames a server may send on a stream it ended itself (half closed, local)
_AFTER_END = frozenset({F.WINDOW_UPDATE, F.RST_STREAM, F.PRIORITY})
_READ = 65536


class _Server:
    """What one connection's server side has done, and the oracles over it."""

    def __init__(self, case: Case, codec: Http2Codec, options: Options) -> None:
        self.options = options
        self.codec = codec
        self.buf = bytearray()
        #: the client's streams, in order; those it reset are not waited for
        self.opened: set[int] = set()
        self.client_reset: set[int] = set()
        for f in case.decoded:
            if f["type"] == "HEADERS":
                self.opened.add(f["stream"])
            elif f["type"] == "RST_STREAM":
                self.client_reset.add(f["stream"])
        self.waiting = self.opened - self.client_reset
        #: streams the server closed: "end" (END_STREAM) or "rst"
        self.closed: dict[int, str] = {}
        self.promised: set[int] = set()
        #: a header block in progress: (stream, END_STREAM on its HEADERS)
        self.block: tuple[int, bool] | None = None
        self.goaway: tuple[int, int] | None = None
        self.answered = 0

    def feed(self, data: bytes) -> bytes:
        """Judge the server's bytes frame by frame; returns the client's replies."""
        self.buf += data
        replies = bytearray()
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 9 and self.goaway is None:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            if length > self.codec.max_frame_size(DOWNSTREAM):
                self._decode(bytes(buf[pos : pos + 9]))  # the codec names the error
            end = pos + 9 + length
            if end > len(buf):
                break
            raw = bytes(buf[pos:end])
            pos = end
            self._frame(raw, replies)
        del buf[:pos]
        if replies:
            self._decode(bytes(replies), UPSTREAM)
        return bytes(replies)

    def _decode(self, raw: bytes, direction: Any = DOWNSTREAM) -> list[Any]:
        try:
            return self.codec.feed(direction, raw)
        except DecodeError as exc:
            who = "server" if direction is DOWNSTREAM else "driver's own"
            raise OracleFailure("decodes", f"{who} frame: {exc} ({exc.reason})") from exc

    def _frame(self, raw: bytes, replies: bytearray) -> None:
        ftype, flags = raw[3], raw[4]
        sid = int.from_bytes(raw[5:9], "big") & 0x7FFFFFFF
        self._correlate(ftype, flags, sid)
        for m in self._decode(raw):
            extra = getattr(m, "extra", None)
            if extra and "headers" in extra:
                self._status(sid, extra["headers"])
            if extra and "promised_stream_id" in extra:
                self.promised.add(extra["promised_stream_id"])
        if ftype == F.SETTINGS and not flags & F.FLAG_ACK:
            replies += _SETTINGS_ACK
        elif ftype == F.PING and not flags & F.FLAG_ACK:
            replies += F.build_ping(raw[9:17], ack=True)
        elif ftype == F.GOAWAY:
            self.goaway = (
                int.from_bytes(raw[9:13], "big") & 0x7FFFFFFF,
                int.from_bytes(raw[13:17], "big"),
            )
        elif ftype == F.DATA and len(raw) > 9:
            replies += F.build_window_update(0, len(raw) - 9)  # padding counts too
            if not flags & F.FLAG_END_STREAM and sid not in self.client_reset:
                replies += F.build_window_update(sid, len(raw) - 9)
        if ftype == F.HEADERS and not flags & F.FLAG_END_HEADERS:
            self.block = (sid, bool(flags & F.FLAG_END_STREAM))
        elif ftype == F.CONTINUATION and flags & F.FLAG_END_HEADERS and self.block:
            if self.block[1]:
                self._close(sid, "end")
            self.block = None
        elif ftype in (F.HEADERS, F.DATA) and flags & F.FLAG_END_STREAM:
            self._close(sid, "end")
        elif ftype == F.RST_STREAM:
            self._close(sid, "rst")

    def _close(self, sid: int, how: str) -> None:
        if sid not in self.closed:
            self.closed[sid] = how
            if sid in self.waiting:
                self.waiting.discard(sid)
                self.answered += 1

    def _correlate(self, ftype: int, flags: int, sid: int) -> None:
        if not sid or ftype == F.PRIORITY or ftype == F.CONTINUATION:
            return  # connection frames; PRIORITY is allowed on any stream; blocks: the codec
        kind = http2_cases.type_name(ftype)
        if ftype > F.CONTINUATION:
            return  # extension frames: their own rules
        if sid in self.client_reset:
            return  # frames in flight when our RST_STREAM arrived
        if sid not in self.opened and sid not in self.promised:
            raise OracleFailure("correlation", f"{kind} on stream {sid}, never opened")
        how = self.closed.get(sid)
        if how == "rst":
            raise OracleFailure("correlation", f"{kind} on stream {sid} after its RST_STREAM")
        if how == "end" and ftype not in _AFTER_END:
            raise OracleFailure("correlation", f"{kind} on stream {sid} after its END_STREAM")

    def _status(self, sid: int, headers: Any) -> None:
        for name, value in headers:
            if name == ":status":
                if value.startswith("5") and value not in self.options.allow_status:
                    raise OracleFailure("not_a_server_error", f":status {value} on stream {sid}")
                return


class Http2Driver:
    """The Driver protocol for HTTP/2 over cleartext TCP (prior knowledge, h2c)."""

    protocol: ClassVar[str] = "http2"
    listener_protocol: ClassVar[str] = "http2"

    def __init__(self, options: Options, max_ops: int = http2_cases.MAX_OPS) -> None:
        self.options = options
        self.max_ops = max_ops
        #: the last case or probe failed: wait for the target before the next one
        self._suspect = False

    def strategy(self) -> SearchStrategy[Case]:
        return http2_cases.cases(self.max_ops)

    def connect(self, via: Target) -> socket.socket:
        s = socket.create_connection((via.host, via.port), timeout=self.options.deadline_s)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def execute(self, case: Case, via: Target) -> Observation:
        if self._suspect:
            self._wait_alive(via)
        try:
            return self._execute(case, via)
        except OracleFailure:
            self._suspect = True
            raise

    def _execute(self, case: Case, via: Target) -> Observation:
        codec = Http2Codec()
        try:
            codec.feed(UPSTREAM, b"".join(case.wire))
        except DecodeError as exc:
            raise OracleFailure("decodes", f"protoproxy's codec refuses the case: {exc}") from exc
        server = _Server(case, codec, self.options)
        t0 = time.monotonic_ns()
        deadline = time.monotonic() + self.options.deadline_s
        with self.connect(via) as s:
            try:
                for chunk in case.wire:
                    s.sendall(chunk)
            except TimeoutError as exc:
                raise OracleFailure("deadline", "the server stopped reading the case") from exc
            except OSError:
                pass  # closed while we wrote: what it sent before says why (read on)
            latency = self._read(s, server, deadline)
        if latency is None:
            latency = time.monotonic_ns() - t0
        else:
            latency -= t0
        label = case.label
        if server.goaway is not None and server.goaway[1] != F.ErrorCode.NO_ERROR:
            label += f" -> GOAWAY {http2_cases.error_name(server.goaway[1])}"
        return Observation(label, latency, server.answered)

    def _read(self, s: socket.socket, server: _Server, deadline: float) -> int | None:
        """Read until every stream is answered or a GOAWAY; returns when the last
        answer completed (monotonic ns), None when a GOAWAY cut the wait short."""
        while server.waiting and server.goaway is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._late(server)
            s.settimeout(left)
            try:
                data = s.recv(_READ)
            except TimeoutError as exc:
                raise self._late(server) from exc
            except ConnectionResetError:
                data = b""
            if not data:
                waiting = ", ".join(map(str, sorted(server.waiting)))
                raise OracleFailure(
                    "closed_with_reason",
                    f"the server closed the connection without a GOAWAY (streams {waiting} unanswered)",
                )
            replies = server.feed(data)
            if replies and server.goaway is None:
                try:
                    s.sendall(replies)
                except OSError:
                    pass  # the next read tells how the connection ended
        return time.monotonic_ns() if server.goaway is None else None

    def _late(self, server: _Server) -> OracleFailure:
        waiting = ", ".join(map(str, sorted(server.waiting)))
        return OracleFailure(
            "deadline", f"streams {waiting} unanswered after {self.options.deadline_s:g}s"
        )

    def probe(self, via: Target) -> None:
        try:
            self._probe(via)
        except OracleFailure:
            self._suspect = True
            raise
        except OSError as exc:
            self._suspect = True
            raise OracleFailure("alive", f"PING: {type(exc).__name__}: {exc}") from exc
        self._suspect = False

    def _probe(self, via: Target) -> None:
        deadline = time.monotonic() + self.options.deadline_s
        with self.connect(via) as s:
            s.sendall(_PROBE_HELLO)
            buf = bytearray()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OracleFailure("alive", "no PING ACK within the deadline")
                s.settimeout(left)
                try:
                    data = s.recv(_READ)
                except TimeoutError as exc:
                    raise OracleFailure("alive", "no PING ACK within the deadline") from exc
                if not data:
                    raise OracleFailure("alive", "connection closed before the PING ACK")
                buf += data
                while len(buf) >= 9:
                    end = 9 + int.from_bytes(buf[:3], "big")
                    if len(buf) < end:
                        break
                    ftype, flags = buf[3], buf[4]
                    if ftype == F.PING and flags & F.FLAG_ACK and buf[9:end] == PROBE_PING:
                        return
                    if ftype == F.SETTINGS and not flags & F.FLAG_ACK:
                        s.sendall(_SETTINGS_ACK)
                    del buf[:end]

    def _wait_alive(self, via: Target) -> None:
        """Wait for a target that failed the last case to pass a probe again."""
        give_up = time.monotonic() + self.options.deadline_s
        while True:
            try:
                self._probe(via)
                self._suspect = False
                return
            except (OracleFailure, OSError) as exc:
                if time.monotonic() >= give_up:
                    detail = exc.detail if isinstance(exc, OracleFailure) else str(exc)
                    raise OracleFailure(
                        "alive", f"not back {self.options.deadline_s:g}s after a failure: {detail}"
                    ) from exc
            time.sleep(_RETRY_S)

    def close(self) -> None:
        pass
