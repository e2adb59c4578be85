"""Passive HTTP/1.1 framing for a proxy that sees both directions.

Each direction is a small state machine (head, body by length, chunked body,
body until close, paused, tunnel, HTTP/2). Requests and responses are parsed
independently, so pipelining needs nothing special: the response side reads
its framing facts (HEAD, CONNECT, upgrade proposals) from the FIFO of pending
requests. Every byte fed comes out in exactly one Message's `raw`, in order,
except bytes that are still an incomplete head, chunk line or trailer, which
wait in the direction's buffer (bounded) for the next feed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from ..base import (
    DOWNSTREAM,
    UPSTREAM,
    BaseCodec,
    Clock,
    Codec,
    DecodeError,
    Direction,
    Exchange,
    Limits,
    Message,
    Sniff,
    now_ns,
)
from . import replies
from .grammar import CHUNK_LINE, HEAD_END, LAST_CHUNK, METHODS
from .h2c import h2c_seed
from .head import Head, parse_request, parse_response, parse_trailers
from .pairing import Pending

# Direction states. Ints, not an Enum: they are compared on every feed.
HEAD = 0
LENGTH = 1  # body framed by Content-Length; `remaining` bytes to go
CHUNKED = 2  # chunked body; `phase` says where inside a chunk we are
UNTIL_CLOSE = 3  # response body delimited by the server closing
PAUSED = 4  # request side after an Upgrade/CONNECT request, until the answer
TUNNEL = 5  # opaque bytes after 101 or CONNECT 2xx
HTTP2 = 6  # after an h2c upgrade, bytes go to the HTTP/2 codec

# Phases inside a chunked body.
CHUNK_SIZE = 0
CHUNK_DATA = 1
CHUNK_CRLF = 2

_LONGEST_METHOD = max(len(m) for m in METHODS) + 1
_SNIFF_PREFIXES = tuple(m + b" " for m in METHODS)

#: (limits, clock, the upgrade request as HTTP/2 header pairs, decoded HTTP2-Settings)
H2Factory = Callable[[Limits, Clock, list[tuple[str, str]], bytes | None], Codec]


def _load_http2(
    limits: Limits, clock: Clock, request: list[tuple[str, str]], settings: bytes | None
) -> Codec:
    """The h2c handover seam: the HTTP/2 codec is imported only when a connection upgrades."""
    from ..http2 import Http2Codec

    return Http2Codec(
        limits=limits,
        clock=clock,
        upgraded=True,
        upgrade_request=request,
        upgrade_settings=settings,
    )


class _Side:
    """Parse state of one direction."""

    __slots__ = (
        "buf",
        "buf_at",
        "chunk_left",
        "current",
        "line_end",
        "phase",
        "remaining",
        "scan",
        "state",
    )

    def __init__(self) -> None:
        #: An incomplete head, chunk line or trailer section, waiting for more.
        #: A bytearray so that a head arriving byte by byte costs O(n), not O(n²).
        self.buf = bytearray()
        self.buf_at = 0  # when the first byte in `buf` was read
        #: How much of `buf` has been searched for what it waits for.
        self.scan = 0
        #: End of the chunk-size line in `buf` once found (-1 before).
        self.line_end = -1
        self.state = HEAD
        self.remaining = 0
        self.phase = CHUNK_SIZE
        self.chunk_left = 0
        self.current: Pending | None = None


class Http1Codec(BaseCodec):
    """HTTP/1.1 observer; see docs/http1-codec.md for the message model."""

    name: ClassVar[str] = "http"
    #: How the codec builds the HTTP/2 codec after an h2c upgrade. Tests and
    #: embedders may replace it; the default imports protoproxy_codecs.http2.
    h2_factory: ClassVar[H2Factory] = staticmethod(_load_http2)  # type: ignore[assignment]

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Clock = now_ns,
        *,
        max_headers: int = 128,
        max_line: int = 64 * 1024,
    ) -> None:
        super().__init__(limits, clock)
        self.max_head = self.limits.max_header_list_size
        self.max_headers = max_headers
        self.max_line = max_line
        self.max_chunk = self.limits.max_message_size
        self._sides = (_Side(), _Side())
        self._pending: deque[Pending] = deque()
        self._next_seq = 0
        # Client bytes sent after an Upgrade/CONNECT request, before the answer:
        # forwarded at once (as early tunnel bytes) and kept until the answer
        # says what they were.
        self._early = bytearray()
        self._resume = False
        # Upstream bytes already forwarded as early bytes that still sit at
        # the front of the next upstream messages (a split head after a
        # declined upgrade); they are cut from those messages' raw.
        self._skip = 0
        self._h2: Codec | None = None
        self._tunnel_key: int | None = None
        self._failed: DecodeError | None = None
        #: when the first byte of the message being handled was read
        self._first_at = 0

    # -- detection ----------------------------------------------------------

    @classmethod
    def sniff(cls, head: bytes) -> Sniff:
        if head.startswith(_SNIFF_PREFIXES):
            return Sniff.YES
        if len(head) < _LONGEST_METHOD and any(p.startswith(head) for p in _SNIFF_PREFIXES):
            return Sniff.NEED_MORE
        return Sniff.NO

    # -- the codec interface ------------------------------------------------

    def feed(self, direction: Direction, data: bytes, at: int = 0) -> list[Message]:
        now = self._begin(direction, at)
        if self._h2 is not None:
            out = self._h2.feed(direction, data, now)
        else:
            if self._failed is not None:
                raise DecodeError("connection already failed", self._failed.reason)
            out = []
            try:
                self._parse(direction, data, out)
                if self._resume:
                    self._observe_early()
            except DecodeError as e:
                # Parse state is undefined past bad bytes: refuse to go on.
                self._failed = e
                raise
        if self._skip and direction == UPSTREAM:
            self._cut_forwarded(out)
        return out

    def _observe_early(self) -> None:
        """The answer to an Upgrade/CONNECT arrived: learn what the early bytes were.

        They were forwarded already, so parsing them now only updates state
        (pairing, exchanges, the HTTP/2 codec); the messages are dropped.
        Bytes left incomplete in a buffer are remembered in `_skip`.
        """
        self._resume = False
        early, self._early = bytes(self._early), bytearray()
        if not early:
            return
        up = self._sides[UPSTREAM]
        seen: list[Message] = []
        if self._h2 is not None:
            seen = self._h2.feed(UPSTREAM, early, self.read_at)
        elif up.state == TUNNEL:
            return  # they were tunnel bytes, as labelled
        else:
            self._parse(UPSTREAM, early, seen)
        self._skip += len(early) - sum(len(m.raw) for m in seen)

    def _cut_forwarded(self, out: list[Message]) -> None:
        for m in out:
            if not self._skip:
                return
            cut = min(self._skip, len(m.raw))
            m.raw = m.raw[cut:]
            self._skip -= cut

    def eof(self, direction: Direction) -> list[Message]:
        if self._h2 is not None:
            return self._h2.eof(direction)
        side = self._sides[direction]
        if side.state == TUNNEL:
            return []
        if side.state == UNTIL_CLOSE:
            out: list[Message] = []
            self._begin(direction, 0)  # the close is the body's last byte
            self._end_response(side, b"", out)
            return out
        if side.buf or side.state in (LENGTH, CHUNKED):
            raise DecodeError("connection closed inside a message", "truncated")
        return []

    def written(self, at: int, sent: int = 0) -> list[Exchange]:
        touched = super().written(at, sent)
        if self._h2 is not None:
            more = self._h2.written(at, sent)
            if more:
                touched = touched + more
        return touched

    def take_exchanges(self) -> list[Exchange]:
        done = super().take_exchanges()
        if self._h2 is not None:
            more = self._h2.take_exchanges()
            if more:
                done = done + more
        return done

    def error_reply(self, direction: Direction, error: DecodeError) -> tuple[bytes, bytes]:
        if self._h2 is not None:
            return self._h2.error_reply(direction, error)
        down = self._sides[DOWNSTREAM]
        if down.state != HEAD or down.buf:
            # A response is already partly forwarded: the client cannot be
            # given a second status line, only the close.
            return b"", b""
        if direction == UPSTREAM:
            if self._pending:
                # Responses are still owed for earlier requests (or this one is
                # half sent): a 400 now would be taken as one of them.
                return b"", b""
            return replies.bad_request(error.reason), b""
        return b"", replies.bad_gateway(error.reason)

    def internal_error_reply(self) -> tuple[bytes, bytes]:
        if self._h2 is not None:
            return self._h2.internal_error_reply()
        down = self._sides[DOWNSTREAM]
        if not self._pending or down.state != HEAD or down.buf:
            # Nothing asked, or a response is partly forwarded: only the close.
            return b"", b""
        return replies.internal_error(), b""

    def buffered(self) -> int:
        up, down = self._sides
        held = len(up.buf) + len(down.buf) + len(self._early)
        if self._h2 is not None:
            held += self._h2.buffered()
        return held

    def release(self) -> None:
        for side in self._sides:
            side.buf = bytearray()
        self._early = bytearray()
        if self._h2 is not None:
            self._h2.release()

    def unfinished(self) -> tuple[str, int] | None:
        if self._h2 is not None:
            return self._h2.unfinished()
        up = self._sides[UPSTREAM]
        if up.state == HEAD and up.buf:
            return "header", up.buf_at
        return None

    def limit_reply(self, reason: str) -> tuple[bytes, bytes]:
        """408 for a head that timed out, 503 for memory shedding, while a status may go.

        The same rule as `error_reply`: not once a response is partly forwarded
        or while earlier requests still await theirs (ours would be taken for one).
        """
        if self._h2 is not None:
            return self._h2.limit_reply(reason)
        down = self._sides[DOWNSTREAM]
        if down.state != HEAD or down.buf or self._pending:
            return b"", b""
        if reason == "header_timeout":
            return replies.request_timeout(), b""
        if reason == "memory_shed":
            return replies.overloaded(), b""
        return b"", b""

    # -- framing ------------------------------------------------------------

    def _parse(self, direction: Direction, data: bytes, out: list[Message]) -> None:
        side = self._sides[direction]
        now = self.read_at
        if side.buf:
            side.buf += data
            if not self._ready(side):
                return
            self._first_at = side.buf_at  # the first message began in an earlier read
            buf = bytes(side.buf)
            side.buf = bytearray()
            side.scan = 0
            side.line_end = -1
        else:
            buf = data
            self._first_at = self.first_read
        n = len(buf)
        pos = 0
        while pos < n:
            if pos:
                self._first_at = now
            state = side.state
            if state == HEAD:
                end = self._head_end(buf, pos, n)
                if end < 0:
                    break
                block = buf if (pos == 0 and end == n) else buf[pos:end]
                if direction == UPSTREAM:
                    self._on_request(side, block, out)
                else:
                    self._on_response(side, block, out)
                pos = end
                if self._h2 is not None:
                    if pos < n:
                        out.extend(self._h2.feed(direction, buf[pos:]))
                    return
            elif state == LENGTH:
                take = side.remaining
                if take >= n - pos:
                    take = n - pos
                chunk = buf if take == n else buf[pos : pos + take]
                pos += take
                side.remaining -= take
                rec = side.current
                assert rec is not None
                out.append(Message(direction, "body", chunk, rec.seq))
                self.touch(rec.ex, direction)
                if direction == UPSTREAM:
                    rec.req_body += take
                    rec.req_bytes += take
                else:
                    rec.resp_body += take
                    rec.resp_bytes += take
                if side.remaining == 0:
                    self._end(direction, side, b"", out)
            elif state == CHUNKED:
                pos = self._chunked(direction, side, buf, pos, n, out)
                if pos < n and side.state == CHUNKED:
                    break  # an incomplete chunk line or trailer waits in the buffer
            elif state == UNTIL_CLOSE:
                chunk = buf if pos == 0 else buf[pos:]
                rec = side.current
                assert rec is not None
                self.touch(rec.ex, direction)
                rec.resp_body += n - pos
                rec.resp_bytes += n - pos
                out.append(Message(direction, "body", chunk, rec.seq))
                pos = n
            elif state == TUNNEL:
                out.append(
                    Message(direction, "tunnel", buf if pos == 0 else buf[pos:], self._tunnel_key)
                )
                pos = n
            else:  # PAUSED: forward now, find out what they were when the answer comes
                chunk = buf if pos == 0 else buf[pos:]
                self._early += chunk
                if len(self._early) > self.limits.max_message_size:
                    raise DecodeError(
                        "too many bytes sent before an upgrade was answered", "too_large"
                    )
                rec = side.current
                assert rec is not None
                self.touch(rec.ex, direction)
                out.append(Message(direction, "tunnel", chunk, rec.seq, {"early": True}))
                pos = n
        if pos < n:
            side.buf = bytearray(memoryview(buf)[pos:])
            side.buf_at = now if pos else self._first_at

    def _ready(self, side: _Side) -> bool:
        """Could the buffered bytes now complete what they wait for?

        Searches only bytes not searched before, so a head trickling in costs
        linear time. False only when the parser would certainly wait too; True
        also when the parser will raise (a bound exceeded, a bad first byte).
        """
        buf = side.buf
        if side.state == HEAD:
            start = 0
        elif side.state == CHUNKED:  # buffered only at a chunk-size line
            if side.line_end < 0:
                eol = buf.find(b"\r\n", max(0, side.scan - 1))
                if eol < 0:
                    side.scan = len(buf)
                    return len(buf) >= self.max_line
                if LAST_CHUNK.match(buf) is None:
                    return True
                side.line_end = eol
                side.scan = eol + 2
            start = side.line_end + 2
            rest = len(buf) - start
            if rest < 2:
                return buf.startswith(b"\n", start)
            if buf.startswith(b"\r\n", start):
                return True
        else:
            return True
        if buf[start] < 0x21 or len(buf) - start > self.max_head:
            return True
        if HEAD_END.search(buf, max(start, side.scan - 2)) is not None:
            return True
        side.scan = len(buf)
        return False

    def _head_end(self, buf: bytes, pos: int, n: int) -> int:
        """Offset just past the head starting at `pos`, or -1 if it is not complete."""
        if buf[pos] < 0x21:
            # Not even the start of a request or status line (h11 rejects it
            # early too): binary garbage should not sit in the buffer.
            raise DecodeError("message does not start with a request or status line", "bad_start")
        m = HEAD_END.search(buf, pos)
        if m is None:
            if n - pos > self.max_head:
                raise DecodeError(f"head larger than {self.max_head} bytes", "head_too_large")
            return -1
        end = m.end()
        if end - pos > self.max_head:
            raise DecodeError(f"head larger than {self.max_head} bytes", "head_too_large")
        return end

    def _on_request(self, side: _Side, block: bytes, out: list[Message]) -> None:
        head = parse_request(block, self.max_headers)
        if len(self._pending) >= self.limits.max_pending:
            raise DecodeError(
                f"more than {self.limits.max_pending} pipelined requests", "too_many_pending"
            )
        method = head.method.decode("ascii")
        target = head.target.decode("ascii")
        host = head.host.decode("latin-1") if head.host is not None else None
        rec = Pending(self._next_seq, method, target, host, head.upgrade, self._first_at)
        self.touch(rec.ex, UPSTREAM)
        self._next_seq += 1
        rec.req_bytes = len(block)
        self._pending.append(rec)
        side.current = rec
        info: dict[str, Any] = {
            "method": method,
            "target": target,
            "version": head.version.decode("ascii"),
            "headers": head.headers,
            "host": host,
        }
        if head.expect_continue:
            info["expect_continue"] = True
        if b"h2c" in head.upgrade:
            rec.h2c = h2c_seed(head, method, target, host)
        out.append(Message(UPSTREAM, "head", block, rec.seq, info))
        if head.chunked:
            self._start_chunked(side)
        elif head.content_length:
            side.state = LENGTH
            side.remaining = head.content_length
        else:
            self._end(UPSTREAM, side, b"", out)

    def _on_response(self, side: _Side, block: bytes, out: list[Message]) -> None:
        head = parse_response(block, self.max_headers)
        if not self._pending:
            raise DecodeError("response without a request", "unsolicited_response")
        rec = self._pending[0]
        if not rec.ex.response_started:
            rec.ex.response_started = self._first_at
        self.touch(rec.ex, DOWNSTREAM)
        status = head.status
        info: dict[str, Any] = {
            "status": status,
            "reason": head.reason.decode("latin-1"),
            "version": head.version.decode("ascii"),
            "headers": head.headers,
        }
        rec.resp_bytes += len(block)
        if status < 200:
            if status == 101:
                self._switch(rec, head, block, info, out)
                return
            info["interim"] = True
            out.append(Message(DOWNSTREAM, "head", block, rec.seq, info))
            return
        rec.status = status
        side.current = rec
        out.append(Message(DOWNSTREAM, "head", block, rec.seq, info))
        if rec.connect and status < 300:
            self._switch(rec, head, block, None, out)
            return
        if rec.switches:
            # The server declined the upgrade: what the client sent after its
            # request is HTTP/1.1 again.
            rec.upgrade = []
            rec.connect = False
            up = self._sides[UPSTREAM]
            if up.state == PAUSED and up.current is rec:
                up.state = HEAD
                up.current = None
                self._resume = True
        if status == 204 or status == 304 or rec.method == "HEAD":
            self._end_response(side, b"", out)
        elif head.chunked:
            self._start_chunked(side)
        elif head.content_length is not None:
            if head.content_length:
                side.state = LENGTH
                side.remaining = head.content_length
            else:
                self._end_response(side, b"", out)
        else:
            side.state = UNTIL_CLOSE

    def _switch(
        self,
        rec: Pending,
        head: Head,
        block: bytes,
        info: dict[str, Any] | None,
        out: list[Message],
    ) -> None:
        """101 to an Upgrade, or 2xx to CONNECT: both directions leave HTTP/1.1."""
        if rec.connect and head.status == 101:
            raise DecodeError("101 in answer to CONNECT", "bad_switch")
        if not rec.connect and not rec.upgrade:
            raise DecodeError("101 Switching Protocols without an Upgrade request", "bad_switch")
        up = self._sides[UPSTREAM]
        if up.state != PAUSED or up.current is not rec:
            raise DecodeError("protocol switch before the request ended", "bad_switch")
        if info is not None:
            out.append(Message(DOWNSTREAM, "head", block, rec.seq, info))
        rec.status = head.status
        rec.resp_done = True
        self._pending.popleft()
        protocol = "tunnel"
        if not rec.connect and b"h2c" in head.upgrade and b"h2c" in rec.upgrade:
            protocol = "h2c"
        self.exchanges.append(rec.exchange(upgrade=protocol))
        down = self._sides[DOWNSTREAM]
        down.current = up.current = None
        self._tunnel_key = rec.seq
        self._resume = True
        if protocol == "h2c":
            request, settings = rec.h2c or ([], None)
            self._h2 = type(self).h2_factory(self.limits, self.clock, request, settings)
            up.state = down.state = HTTP2
        else:
            up.state = down.state = TUNNEL

    # -- chunked bodies -----------------------------------------------------

    def _start_chunked(self, side: _Side) -> None:
        side.state = CHUNKED
        side.phase = CHUNK_SIZE
        side.chunk_left = 0

    def _chunked(
        self, direction: Direction, side: _Side, buf: bytes, pos: int, n: int, out: list[Message]
    ) -> int:
        """Consume chunked framing from buf[pos:n]; returns the new pos, -1 to wait.

        Everything consumed up to the last-chunk goes out as one "body" message
        (framing included); the last-chunk and trailers go out as "end".
        """
        rec = side.current
        assert rec is not None
        mark = pos
        payload = 0
        while pos < n:
            phase = side.phase
            if phase == CHUNK_DATA:
                take = side.chunk_left
                if take > n - pos:
                    take = n - pos
                pos += take
                payload += take
                side.chunk_left -= take
                if side.chunk_left == 0:
                    side.phase = CHUNK_CRLF
            elif phase == CHUNK_CRLF:
                # Exactly CRLF after the data (h11 compares byte by byte).
                have = buf[pos : pos + 2 - side.chunk_left]
                want = b"\r\n"[side.chunk_left : side.chunk_left + len(have)]
                if have != want:
                    raise DecodeError("chunk data not followed by CRLF", "bad_chunk")
                pos += len(have)
                side.chunk_left += len(have)
                if side.chunk_left == 2:
                    side.chunk_left = 0
                    side.phase = CHUNK_SIZE
            else:
                eol = buf.find(b"\r\n", pos, pos + self.max_line)
                if eol < 0:
                    if n - pos >= self.max_line:
                        raise DecodeError("chunk size line too long", "bad_chunk")
                    break
                m = CHUNK_LINE.fullmatch(buf, pos, eol + 2)
                if m is None:
                    raise DecodeError(f"illegal chunk line {buf[pos:eol][:40]!r}", "bad_chunk")
                size = int(m.group(1), 16)
                if size == 0:
                    end, trailers = self._trailers(buf, eol + 2, n)
                    if end < 0:
                        break
                    self._flush_chunks(direction, rec, buf, mark, pos, payload, out)
                    self._end(direction, side, buf[pos:end], out, trailers)
                    return end
                if size > self.max_chunk:
                    raise DecodeError(f"chunk of {size} bytes", "chunk_too_large")
                side.chunk_left = size
                side.phase = CHUNK_DATA
                pos = eol + 2
        self._flush_chunks(direction, rec, buf, mark, pos, payload, out)
        return pos

    def _flush_chunks(
        self,
        direction: Direction,
        rec: Pending,
        buf: bytes,
        mark: int,
        pos: int,
        payload: int,
        out: list[Message],
    ) -> None:
        if pos == mark:
            return
        raw = buf if (mark == 0 and pos == len(buf)) else buf[mark:pos]
        out.append(Message(direction, "body", raw, rec.seq))
        self.touch(rec.ex, direction)
        if direction == UPSTREAM:
            rec.req_body += payload
            rec.req_bytes += pos - mark
        else:
            rec.resp_body += payload
            rec.resp_bytes += pos - mark

    def _trailers(
        self, buf: bytes, pos: int, n: int
    ) -> tuple[int, list[tuple[bytes, bytes]] | None]:
        """(offset past the trailer section at `pos`, its fields); offset -1 to wait."""
        if buf.startswith(b"\r\n", pos):
            return pos + 2, None
        if buf.startswith(b"\n", pos):
            return pos + 1, None
        if n - pos < 2:
            return -1, None  # nothing yet, or a lone "\r" of the blank line
        end = self._head_end(buf, pos, n)  # trailers are bounded like a head
        if end < 0:
            return -1, None
        return end, parse_trailers(buf[pos:end], self.max_headers)

    # -- ends of messages ---------------------------------------------------

    def _end(
        self,
        direction: Direction,
        side: _Side,
        raw: bytes,
        out: list[Message],
        trailers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if direction == UPSTREAM:
            self._end_request(side, raw, out, trailers)
        else:
            self._end_response(side, raw, out, trailers)

    def _end_request(
        self,
        side: _Side,
        raw: bytes,
        out: list[Message],
        trailers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        rec = side.current
        assert rec is not None
        rec.req_bytes += len(raw)
        info = {"trailers": trailers} if trailers else None
        out.append(Message(UPSTREAM, "end", raw, rec.seq, info))
        self.touch(rec.ex, UPSTREAM)
        rec.req_done = True
        if rec.switches and not rec.resp_done:
            side.state = PAUSED
            return
        side.state = HEAD
        side.current = None
        if rec.resp_done:
            self.exchanges.append(rec.exchange())

    def _end_response(
        self,
        side: _Side,
        raw: bytes,
        out: list[Message],
        trailers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        rec = side.current
        assert rec is not None
        rec.resp_bytes += len(raw)
        info = {"trailers": trailers} if trailers else None
        out.append(Message(DOWNSTREAM, "end", raw, rec.seq, info))
        self.touch(rec.ex, DOWNSTREAM)
        rec.resp_done = True
        self._pending.popleft()
        side.state = HEAD
        side.current = None
        if rec.req_done:
            self.exchanges.append(rec.exchange())
