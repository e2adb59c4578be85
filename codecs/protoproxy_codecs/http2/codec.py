"""The passive HTTP/2 codec: one Message per frame, the exact bytes relayed.

HTTP/2 is never terminated here (DESIGN: terminating one side with the h2
library costs ~3x a passive decode). The codec watches both directions of one
connection and keeps only what observing needs: the frame boundaries, each
direction's HPACK decoder, the SETTINGS in effect, the stream states, the
flow-control ledger, and per-stream call bookkeeping for Exchanges.

Anything the codec cannot accept is a DecodeError whose reason maps to an
HTTP/2 error code; `error_reply` turns it into the GOAWAYs that close the
connection the protocol's way.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from ..base import (
    DOWNSTREAM,
    UPSTREAM,
    BaseCodec,
    Clock,
    DecodeError,
    Direction,
    Limits,
    Message,
    Sniff,
    now_ns,
)
from ..grpc.call import GrpcCall, is_grpc
from ..grpc.framing import Budget
from . import frames as F
from .calls import HttpCall
from .flood import FloodGuard
from .flow import FlowLedger
from .frames import ErrorCode, SettingId
from .hpack_state import HeaderDecoder, Headers, MirrorEncoder, encode_context_free
from .message import FrameMessage
from .streams import NEXT, Event, State

_HDR = struct.Struct(">HBBBL")
_U32 = struct.Struct(">L")
_GOAWAY = struct.Struct(">LL")
_KINDS = F.FRAME_KINDS
_N_KINDS = len(_KINDS)
_PREFACE = F.PREFACE
_PREFACE_LEN = len(_PREFACE)

_HEADERS_EV = (Event.HEADERS_UP, Event.HEADERS_DOWN)
_DATA_EV = (Event.DATA_UP, Event.DATA_DOWN)
_END_EV = (Event.END_UP, Event.END_DOWN)
# By direction: the rows of streams.NEXT (the one state table) the DATA and
# HEADERS fast paths read.
_HEADERS_NEXT = (NEXT[Event.HEADERS_UP], NEXT[Event.HEADERS_DOWN])
_DATA_NEXT = (NEXT[Event.DATA_UP], NEXT[Event.DATA_DOWN])
_CLOSED = int(State.CLOSED)
_IDLE = int(State.IDLE)

# Slack on top of max_header_list_size for a compressed block still being
# collected: size updates and string prefixes are not counted by the list size.
_BLOCK_SLACK = 4096
#: Decoded header bytes a sender may run up before the flood guard is charged.
_HEADER_CHARGE = 64 * 1024


def _err(message: str, reason: str = "protocol_error") -> DecodeError:
    return DecodeError(message, reason)


class _Stream:
    __slots__ = ("call", "early", "request_bytes", "response_bytes", "state")

    def __init__(self, state: int) -> None:
        self.state = state
        self.call: HttpCall | GrpcCall | None = None
        self.request_bytes = 0
        self.response_bytes = 0
        #: For a stream opened by a request block still being collected: what
        #: the server answered meanwhile, replayed on the call once the block
        #: completes: (header list, END_STREAM, when read) or an RST code.
        self.early: list[tuple[Headers, bool, int] | int] | None = None


class _Side:
    """Parse state of one direction, and what its sender has advertised."""

    __slots__ = (
        "block",
        "block_at",
        "block_end_stream",
        "block_frames",
        "block_opened",
        "block_promised",
        "block_stream",
        "block_type",
        "buf",
        "buf_at",
        "header_debt",
        "hpack",
        "max_frame_size",
        "max_stream",
        "need",
        "pending_settings",
        "preface_left",
        "settings",
        "started",
    )

    def __init__(self, limits: Limits, preface: bool) -> None:
        self.buf = bytearray()
        self.buf_at = 0  # when the first byte in `buf` was read
        self.need = 0
        self.preface_left = _PREFACE_LEN if preface else 0
        self.started = False  # the sender's first SETTINGS was seen
        #: Largest frame this direction may carry (set by the *other* side's SETTINGS).
        self.max_frame_size = min(F.DEFAULT_MAX_FRAME_SIZE, limits.max_message_size)
        #: Decoder for blocks this direction carries.
        self.hpack = HeaderDecoder(limits.max_header_list_size)
        self.block: bytearray | None = None
        self.block_at = 0  # when the first byte of the block's HEADERS frame was read
        self.block_stream = 0
        self.block_type = 0
        self.block_end_stream = False
        self.block_promised = 0
        self.block_frames = 0  # CONTINUATION frames of the block so far
        #: Decoded header bytes not yet charged to the flood guard (see _block_done).
        self.header_debt = 0
        #: The stream the block's HEADERS opened before its END_HEADERS (see
        #: Http2Codec._open_early), else None.
        self.block_opened: _Stream | None = None
        #: Highest stream id this direction's sender initiated (or promised).
        self.max_stream = 0
        #: SETTINGS this sender sent that the other side has not acked yet.
        self.pending_settings: deque[list[tuple[int, int]]] = deque()
        #: This sender's settings as acknowledged by its peer.
        self.settings: dict[int, int] = {}


class Http2Codec(BaseCodec):
    """Passive HTTP/2 observer for one connection (both directions).

    `upgraded=True` is the h2c handover: the connection began as HTTP/1.1 with
    `Upgrade: h2c`, so stream 1 already carries the request (half closed from
    the client). `upgrade_request` (its pseudo-headers and headers, if known)
    and `upgrade_settings` (the decoded HTTP2-Settings payload) seed the state.
    """

    name: ClassVar[str] = "http2"

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Clock = now_ns,
        *,
        upgraded: bool = False,
        upgrade_request: Sequence[tuple[str, str]] | None = None,
        upgrade_settings: bytes | None = None,
        enforce_flow_control: bool = True,
    ) -> None:
        super().__init__(limits, clock)
        #: when the first byte of the frame being handled was read
        self._first_at = 0
        lim = self.limits
        self._sides = (_Side(lim, preface=True), _Side(lim, preface=False))
        self._streams: dict[int, _Stream] = {}
        self.ledger = FlowLedger(enforce=enforce_flow_control)
        #: Bytes all streams together may hold for gRPC messages spanning frames.
        self._grpc_budget = Budget(self.limits.max_message_size)
        self._guard = FloodGuard(self.limits.http2)
        self._failed: DecodeError | None = None
        self._reencoders: list[MirrorEncoder | None] = [None, None]
        self.goaway: list[tuple[int, int] | None] = [None, None]  # (last id, code) per sender
        #: The last request head _new_call read: (headers, method, path, authority, is gRPC)
        self._last_head: tuple[Headers | None, str, str, str, bool] = (None, "", "", "", False)
        if upgraded:
            if upgrade_settings:
                pairs = F.parse_settings(upgrade_settings[: len(upgrade_settings) // 6 * 6])
                self._validate_settings(pairs)
                self._apply_settings(UPSTREAM, pairs)  # acked implicitly by the 101
            self._sides[UPSTREAM].max_stream = 1
            stream = self._open(1, int(State.HALF_CLOSED_UP))
            stream.call = self._new_call(1, tuple(upgrade_request or ()), self.clock())

    # -- detection -------------------------------------------------------------

    @classmethod
    def sniff(cls, head: bytes) -> Sniff:
        if head.startswith(_PREFACE):
            return Sniff.YES
        if _PREFACE.startswith(head):
            return Sniff.NEED_MORE
        return Sniff.NO

    # -- framing ---------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, at: int = 0) -> list[Message]:
        self._begin(direction, at)
        if self._failed is not None:
            raise DecodeError("connection already failed", self._failed.reason)
        up, down = self._sides
        relayed = (up.max_stream, down.max_stream)
        started = down.started
        try:
            return self._feed(direction, data)
        except DecodeError as exc:
            # Frames parsed earlier in this call never reach the runtime, so the
            # GOAWAY must not name their streams as processed, nor count the
            # server's SETTINGS as passed on (see _to_client).
            up.max_stream, down.max_stream = relayed
            down.started = started
            self._failed = exc
            raise

    def _feed(self, direction: Direction, data: bytes) -> list[Message]:
        side = self._sides[direction]
        out: list[Message] = []
        if type(data) is not bytes:
            data = bytes(data)  # raw must be immutable bytes (and hashable views of it)
        now = self.read_at
        if side.buf:
            side.buf += data
            if len(side.buf) < side.need:
                return out
            self._first_at = side.buf_at  # the first frame began in an earlier read
            data = bytes(side.buf)
            side.buf = bytearray()
        elif not data:
            return out
        else:
            self._first_at = self.first_read
        n = len(data)
        pos = 0
        if side.preface_left:
            pos = self._preface(direction, side, data, out)
            if side.preface_left:
                return out
        unpack = _HDR.unpack_from
        limit = side.max_frame_size
        length = 0
        while n - pos >= 9:
            hi, lo, ftype, flags, sid = unpack(data, pos)
            length = (hi << 8) | lo
            if length > limit:
                raise _err(
                    f"{_kind(ftype)} frame of {length} bytes exceeds the peer's max frame size {limit}",
                    "frame_size_error",
                )
            end = pos + 9 + length
            if end > n:
                break
            raw = data if (pos == 0 and end == n) else data[pos:end]
            sid &= 0x7FFFFFFF
            if ftype < 2 and side.started and side.block is None:
                # DATA and HEADERS (most frames) skip _frame's checks, which they pass.
                if ftype:
                    extra = self._headers(direction, side, flags, sid, length, raw)
                    out.append(FrameMessage(direction, "headers", raw, sid, extra))
                else:
                    extra = self._data(direction, side, flags, sid, length, raw)
                    out.append(FrameMessage(direction, "data", raw, sid, extra))
            else:
                out.append(self._frame(direction, side, ftype, flags, sid, length, raw))
            limit = side.max_frame_size
            pos = end
            self._first_at = now  # later frames began in this read
        if pos < n:
            if pos:
                side.buf = bytearray(data[pos:])
                side.buf_at = now
            else:  # nothing completed: the buffered frame began when it began
                side.buf_at = self._first_at
                side.buf = bytearray(data)
            side.need = 9 + length if n - pos >= 9 else 9
        return out

    def _preface(self, direction: Direction, side: _Side, data: bytes, out: list[Message]) -> int:
        have = _PREFACE_LEN - side.preface_left  # only nonzero if bytes were buffered
        take = min(len(data), side.preface_left)
        if data[:take] != _PREFACE[have : have + take]:
            raise _err("bad HTTP/2 client preface")
        if take < side.preface_left:
            side.buf = bytearray(data)
            side.need = side.preface_left
            # keep preface_left: the buffered bytes are re-checked with the rest
            return len(data)
        side.preface_left = 0
        out.append(Message(direction, "preface", data[:take], 0, {"type": -1, "length": take}))
        return take

    def _frame(
        self,
        direction: Direction,
        side: _Side,
        ftype: int,
        flags: int,
        sid: int,
        length: int,
        raw: bytes,
    ) -> Message:
        kind = _KINDS[ftype] if ftype < _N_KINDS else "unknown"
        extra = None
        if side.block is not None and ftype != F.CONTINUATION:
            raise _err(f"{kind} frame inside a header block on stream {side.block_stream}")
        if not side.started:
            if ftype != F.SETTINGS or flags & F.FLAG_ACK:
                raise _err(f"first frame from {direction.name} is {kind}, not SETTINGS")
            side.started = True
        # Only what `raw` does not hold goes into `extra`; the rest of `info`
        # is read back from `raw` if someone asks (see message.py).
        if ftype == F.DATA:
            extra = self._data(direction, side, flags, sid, length, raw)
        elif ftype == F.HEADERS:
            extra = self._headers(direction, side, flags, sid, length, raw)
        elif ftype == F.CONTINUATION:
            extra = self._continuation(direction, side, flags, sid, raw)
        elif ftype == F.SETTINGS:
            self._guard.control(direction, self.read_at)
            self._settings(direction, flags, sid, length, raw)
        elif ftype == F.WINDOW_UPDATE:
            self._guard.control(direction, self.read_at)
            self._window_update(direction, sid, length, raw)
        elif ftype == F.RST_STREAM:
            self._rst(sid, length, raw)
        elif ftype == F.PING:
            self._guard.control(direction, self.read_at)
            if sid or length != 8:
                raise _err("bad PING frame", "protocol_error" if sid else "frame_size_error")
        elif ftype == F.PRIORITY:
            self._guard.control(direction, self.read_at)
            if not sid:
                raise _err("PRIORITY on stream 0")
            if length != 5:
                raise _err("PRIORITY frame of wrong size", "frame_size_error")
            self._priority(sid, raw, 9)
            self._event(sid, Event.PRIORITY)
        elif ftype == F.GOAWAY:
            if sid:
                raise _err("GOAWAY on a stream")
            if length < 8:
                raise _err("GOAWAY frame too short", "frame_size_error")
            last, code = _GOAWAY.unpack_from(raw, 9)
            self.goaway[direction] = (last & 0x7FFFFFFF, code)
        elif ftype == F.PUSH_PROMISE:
            extra = self._push_promise(direction, side, flags, sid, length, raw)
        # Unknown types (ALTSVC, ORIGIN, extensions) pass through untouched.
        return FrameMessage(direction, kind, raw, sid, extra)

    # -- frame types ---------------------------------------------------------------

    def _payload_bounds(
        self, flags: int, length: int, raw: bytes, extra: int = 0
    ) -> tuple[int, int]:
        """(start, end) of the payload after padding and `extra` fixed bytes."""
        start = 9
        end = 9 + length
        if flags & F.FLAG_PADDED:
            if length < 1:
                raise _err("padded frame without a pad length", "frame_size_error")
            pad = raw[9]
            start = 10
            end -= pad
        start += extra
        if end < start:
            raise _err("padding exceeds the frame payload")
        return start, end

    def _data(
        self,
        direction: Direction,
        side: _Side,
        flags: int,
        sid: int,
        length: int,
        raw: bytes,
    ) -> dict[str, Any] | None:
        if not sid:
            raise _err("DATA on stream 0")
        if flags & F.FLAG_PADDED:
            start, end = self._payload_bounds(flags, length, raw)
        else:
            start, end = 9, 9 + length
        end_stream = flags & F.FLAG_END_STREAM
        if not length and not end_stream:  # carries nothing: a control frame's cost
            self._guard.control(direction, self.read_at)
        stream = self._streams.get(sid)
        # _transition's step, inlined for a held stream that stays open (the
        # common case); anything else (a new, closing or bad step) goes there.
        new = _DATA_NEXT[direction].get(stream.state, -1) if stream is not None else -1
        if new > 0 and new != _CLOSED:
            stream.state = new  # type: ignore[union-attr]
        else:
            stream = self._transition(sid, stream, _DATA_EV[direction])
        self.ledger.on_data(direction, sid, length)
        if stream is None:
            return None
        if direction:
            stream.response_bytes += end - start
        else:
            stream.request_bytes += end - start
        call = stream.call
        extra = None
        if call is not None:
            ex = call.ex
            if ex.fed != self.feeds:  # BaseCodec.touch, inlined: most frames are DATA
                ex.fed = self.feeds
                self.touched.append(ex)
                if direction:
                    ex.finished = self.read_at
                else:
                    ex.request_written = ex.finished = self.read_at
            if call.protocol == "grpc" and end > start:
                events = call.on_data(direction, memoryview(raw)[start:end])  # type: ignore[union-attr]
                if events:
                    extra = {"grpc_messages": events}
        if end_stream:
            self._end_stream(direction, sid, stream)
        return extra

    def _headers(
        self,
        direction: Direction,
        side: _Side,
        flags: int,
        sid: int,
        length: int,
        raw: bytes,
    ) -> dict[str, Any] | None:
        if not sid:
            raise _err("HEADERS on stream 0")
        if flags & (F.FLAG_PADDED | F.FLAG_PRIORITY):
            start, end = self._payload_bounds(
                flags, length, raw, 5 if flags & F.FLAG_PRIORITY else 0
            )
            if flags & F.FLAG_PRIORITY:
                self._priority(sid, raw, start - 5)
        else:
            start, end = 9, 9 + length
        end_stream = bool(flags & F.FLAG_END_STREAM)
        if flags & F.FLAG_END_HEADERS:
            fragment = memoryview(raw)[start:end]
            headers = self._block_done(direction, side, F.HEADERS, sid, end_stream, 0, fragment)
            return {"headers": headers}
        self._block_start(side, F.HEADERS, sid, end_stream, 0, raw[start:end])
        if direction is UPSTREAM and sid not in self._streams:
            side.block_opened = self._open_early(sid)
        return None

    def _open_early(self, sid: int) -> _Stream | None:
        """Open a request's stream at its first HEADERS frame, before END_HEADERS.

        Why: the stream exists from that frame on (RFC 9113 5.1), and the two
        directions are independent: a server may answer (grpcio rejects
        oversized metadata this way) while the client is still sending
        CONTINUATION frames. The call is made when the block completes.
        """
        if not sid & 1 and sid > self._sides[DOWNSTREAM].max_stream:
            raise _err(f"client opened even stream {sid}")
        stream = self._transition(sid, None, Event.HEADERS_UP)
        if stream is not None:
            stream.early = []
        return stream

    def _push_promise(
        self,
        direction: Direction,
        side: _Side,
        flags: int,
        sid: int,
        length: int,
        raw: bytes,
    ) -> dict[str, Any]:
        if direction is UPSTREAM:
            raise _err("PUSH_PROMISE sent by the client")
        if not sid:
            raise _err("PUSH_PROMISE on stream 0")
        if self._sides[UPSTREAM].settings.get(SettingId.ENABLE_PUSH, 1) == 0:
            raise _err("PUSH_PROMISE after the client disabled push")
        start, end = self._payload_bounds(flags, length, raw, 4)
        promised = _U32.unpack_from(raw, start - 4)[0] & 0x7FFFFFFF
        extra: dict[str, Any] = {"promised_stream_id": promised}
        if promised & 1 or promised <= side.max_stream:
            raise _err(f"bad promised stream id {promised}")
        if flags & F.FLAG_END_HEADERS:
            extra["headers"] = self._block_done(
                direction,
                side,
                F.PUSH_PROMISE,
                sid,
                False,
                promised,
                memoryview(raw)[start:end],
            )
        else:
            self._block_start(side, F.PUSH_PROMISE, sid, False, promised, raw[start:end])
        return extra

    def _continuation(
        self,
        direction: Direction,
        side: _Side,
        flags: int,
        sid: int,
        raw: bytes,
    ) -> dict[str, Any] | None:
        block = side.block
        if block is None:
            raise _err("CONTINUATION without a header block in progress")
        if sid != side.block_stream:
            raise _err(f"CONTINUATION on stream {sid}, block is on {side.block_stream}")
        side.block_frames += 1
        self._guard.continuations(side.block_frames)
        if len(raw) == 9 and not flags & F.FLAG_END_HEADERS:
            self._guard.control(direction, self.read_at)
        block += memoryview(raw)[9:]
        if len(block) > self.limits.max_header_list_size + _BLOCK_SLACK:
            raise _err("header block too large", "header_list_too_large")
        if not flags & F.FLAG_END_HEADERS:
            return None
        side.block = None
        self._first_at = side.block_at  # the block began with its HEADERS frame
        extra: dict[str, Any] = {"end_stream": side.block_end_stream}
        if side.block_promised:
            extra["promised_stream_id"] = side.block_promised
        opened = side.block_opened
        side.block_opened = None
        extra["headers"] = self._block_done(
            direction,
            side,
            side.block_type,
            sid,
            side.block_end_stream,
            side.block_promised,
            bytes(block),
            opened,
        )
        return extra

    def _block_start(
        self, side: _Side, ftype: int, sid: int, end_stream: bool, promised: int, fragment: bytes
    ) -> None:
        side.block = bytearray(fragment)
        side.block_frames = 0
        side.block_at = self._first_at
        side.block_type = ftype
        side.block_stream = sid
        side.block_end_stream = end_stream
        side.block_promised = promised

    def _block_done(
        self,
        direction: Direction,
        side: _Side,
        ftype: int,
        sid: int,
        end_stream: bool,
        promised: int,
        block: bytes | memoryview,
        opened: _Stream | None = None,
    ) -> Headers:
        hpack = side.hpack
        headers = hpack.decode(block)
        # Charged in 64 KiB steps: a bomb block (far more) is checked at once,
        # ordinary blocks (a few hundred bytes) pay one add.
        debt = side.header_debt + hpack.last_size
        if debt > _HEADER_CHARGE:
            side.header_debt = 0
            self._guard.header_bytes(direction, debt, self.read_at)
        else:
            side.header_debt = debt
        if opened is not None:
            self._early_call(sid, opened, headers)
        if ftype == F.PUSH_PROMISE:
            parent = self._streams.get(sid)
            if parent is None and not self._is_closed(sid):
                raise _err(f"PUSH_PROMISE on idle stream {sid}")
            if parent is not None and parent.state not in (State.OPEN, State.HALF_CLOSED_UP):
                raise _err(f"PUSH_PROMISE on stream {sid} in state {State(parent.state).name}")
            stream = self._transition(promised, None, Event.PUSH_PROMISE)
            side.max_stream = promised
            if stream is not None:
                stream.call = self._new_call(promised, headers, self._first_at)
            return headers
        if (
            direction is UPSTREAM
            and not sid & 1
            and sid not in self._streams
            and sid > self._sides[DOWNSTREAM].max_stream
        ):
            raise _err(f"client opened even stream {sid}")
        stream = self._streams.get(sid)
        is_new = stream is None
        # _transition's step inlined, as in _data: responses and trailers
        new = _HEADERS_NEXT[direction].get(stream.state, -1) if stream is not None else -1
        if new > 0 and new != _CLOSED:
            stream.state = new  # type: ignore[union-attr]
        else:
            stream = self._transition(sid, stream, _HEADERS_EV[direction])
        if stream is not None:
            call = stream.call
            if direction is UPSTREAM:
                if is_new:
                    call = stream.call = self._new_call(sid, headers, self._first_at)
            elif call is not None:
                if call.on_response_headers(headers) and not end_stream:
                    # gRPC-shaped request, plain HTTP answer (see GrpcCall)
                    call = stream.call = HttpCall.from_grpc(call)  # type: ignore[arg-type]
                    call.on_response_headers(headers)
            elif stream.early is not None:  # the request block is still open
                stream.early.append((headers, end_stream, self._first_at))
            if call is not None:
                ex = call.ex
                if ex.fed != self.feeds:  # BaseCodec.touch, inlined
                    ex.fed = self.feeds
                    self.touched.append(ex)
                    if direction:
                        ex.finished = self.read_at
                        if not ex.response_started:
                            ex.response_started = self._first_at
                    else:
                        ex.request_written = ex.finished = self.read_at
                elif direction and not ex.response_started:
                    ex.response_started = self._first_at
        if end_stream:
            self._end_stream(direction, sid, stream)
        return headers

    def _early_call(self, sid: int, stream: _Stream, headers: Headers) -> None:
        """The request block of a stream opened early completed: make its call
        and give it what the server answered meanwhile."""
        early = stream.early or ()
        stream.early = None
        call = stream.call = self._new_call(sid, headers, self._first_at)
        for event in early:
            if isinstance(event, int):
                call.on_rst(event)
                continue
            answer, end_stream, at = event
            if not call.ex.response_started:
                call.ex.response_started = at
            if call.on_response_headers(answer) and not end_stream and call.protocol == "grpc":
                call = stream.call = HttpCall.from_grpc(call)  # type: ignore[arg-type]
                call.on_response_headers(answer)
        if stream.state == _CLOSED:  # reset or answered and closed meanwhile
            self.touch(call.ex, UPSTREAM)
            self._finish(sid, stream)

    def _new_call(self, sid: int, headers: Headers, now: int) -> HttpCall | GrpcCall:
        head = self._last_head
        if head[0] is headers:
            # The HPACK block cache hands back the same tuple for the same block
            # (a client repeating one request): its fields are as last time.
            _, method, path, authority, grpc = head
        else:
            method = path = authority = ""
            content_type = None
            for name, value in headers:
                if name[:1] == ":":  # an empty name must not raise IndexError
                    if name == ":path":
                        path = value
                    elif name == ":method":
                        method = value
                    elif name == ":authority":
                        authority = value
                elif name == "content-type":
                    content_type = value
                    break  # pseudo-headers precede regular ones
            grpc = is_grpc(content_type)
            self._last_head = (headers, method, path, authority, grpc)
        if grpc:
            return GrpcCall(
                sid, path, headers, now, self.limits.max_message_size, self._grpc_budget
            )
        return HttpCall(sid, method, path, authority, now)

    def _priority(self, sid: int, raw: bytes, at: int) -> None:
        if _U32.unpack_from(raw, at)[0] & 0x7FFFFFFF == sid:
            raise _err(f"stream {sid} depends on itself")

    def _rst(self, sid: int, length: int, raw: bytes) -> None:
        if not sid:
            raise _err("RST_STREAM on stream 0")
        if length != 4:
            raise _err("RST_STREAM frame of wrong size", "frame_size_error")
        stream = self._streams.get(sid)
        if (
            stream is not None
            and self.fed_direction is UPSTREAM
            and (stream.call is None or not stream.call.ex.response_started)
        ):
            self._guard.reset()  # before any response byte: "premature"
        if stream is None:
            # Usually a stream already closed (nginx resets every stream whose
            # request had a body, after answering it); an idle one is an error.
            self._transition(sid, None, Event.RST)
            return
        if stream.call is not None:
            stream.call.on_rst(_U32.unpack_from(raw, 9)[0])
            self.touch(stream.call.ex, self.fed_direction)
        elif stream.early is not None:
            stream.early.append(_U32.unpack_from(raw, 9)[0])
        self._transition(sid, stream, Event.RST)

    def _window_update(self, direction: Direction, sid: int, length: int, raw: bytes) -> None:
        if length != 4:
            raise _err("WINDOW_UPDATE frame of wrong size", "frame_size_error")
        increment = _U32.unpack_from(raw, 9)[0] & 0x7FFFFFFF
        if not increment:
            raise _err(f"WINDOW_UPDATE of 0 on stream {sid}")
        if sid:
            self._event(sid, Event.WINDOW_UPDATE)
        self.ledger.on_window_update(direction.other, sid, increment)

    # -- settings ------------------------------------------------------------------

    def _settings(
        self,
        direction: Direction,
        flags: int,
        sid: int,
        length: int,
        raw: bytes,
    ) -> None:
        if sid:
            raise _err("SETTINGS on a stream")
        if flags & F.FLAG_ACK:
            if length:
                raise _err("SETTINGS ACK with a payload", "frame_size_error")
            pending = self._sides[direction.other].pending_settings
            if pending:
                self._apply_settings(direction.other, pending.popleft())
            return
        if length % 6:
            raise _err("SETTINGS payload not a multiple of 6", "frame_size_error")
        pairs = F.parse_settings(memoryview(raw)[9:])
        self._validate_settings(pairs)
        side = self._sides[direction]
        if len(side.pending_settings) >= self.limits.max_pending:
            raise _err("too many unacknowledged SETTINGS", "too_many_streams")
        side.pending_settings.append(pairs)
        receiver = self._sides[direction.other]
        for key, value in pairs:
            # Raising a limit at sight is safe: the other sender cannot use it
            # before the frame the proxy is relaying reaches it.
            if key == SettingId.MAX_FRAME_SIZE and value > receiver.max_frame_size:
                receiver.max_frame_size = min(value, self.limits.max_message_size)
            elif (
                key == SettingId.HEADER_TABLE_SIZE and value > receiver.hpack.max_allowed_table_size
            ):
                receiver.hpack.allow_table_size(value)

    @staticmethod
    def _validate_settings(pairs: list[tuple[int, int]]) -> None:
        for key, value in pairs:
            if key == SettingId.ENABLE_PUSH and value > 1:
                raise _err("SETTINGS_ENABLE_PUSH must be 0 or 1")
            if key == SettingId.INITIAL_WINDOW_SIZE and value > F.MAX_WINDOW:
                raise _err("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1", "flow_control_error")
            if (
                key == SettingId.MAX_FRAME_SIZE
                and not F.DEFAULT_MAX_FRAME_SIZE <= value <= F.MAX_MAX_FRAME_SIZE
            ):
                raise _err(f"SETTINGS_MAX_FRAME_SIZE {value} out of range")

    def _apply_settings(self, sender: Direction, pairs: list[tuple[int, int]]) -> None:
        """`sender`'s SETTINGS were acknowledged: they now bind the other direction."""
        side = self._sides[sender]
        receiver = self._sides[sender.other]  # the direction these settings constrain
        for key, value in pairs:
            side.settings[key] = value
            if key == SettingId.MAX_FRAME_SIZE:
                receiver.max_frame_size = min(value, self.limits.max_message_size)
            elif key == SettingId.HEADER_TABLE_SIZE:
                receiver.hpack.allow_table_size(value)
                enc = self._reencoders[sender.other]
                if enc is not None:
                    enc.set_table_size(value)
            elif key == SettingId.INITIAL_WINDOW_SIZE:
                self.ledger.set_initial_window(sender.other, value)

    def settings(self, sender: Direction) -> dict[int, int]:
        """SETTINGS advertised by `sender` and acknowledged by its peer."""
        return self._sides[sender].settings

    def header_decoder(self, direction: Direction) -> HeaderDecoder:
        """The HPACK decoder for blocks travelling in `direction` (cache stats, table)."""
        return self._sides[direction].hpack

    def max_frame_size(self, direction: Direction) -> int:
        """Largest frame the proxy may write in `direction` (the receiver's setting)."""
        return self._sides[direction].max_frame_size

    # -- stream states ---------------------------------------------------------------

    def _is_closed(self, sid: int) -> bool:
        """A stream we no longer hold: already used, so not idle."""
        initiator = self._sides[UPSTREAM if sid & 1 else DOWNSTREAM]
        return sid <= initiator.max_stream and sid not in self._streams

    def _open(self, sid: int, state: int) -> _Stream:
        if len(self._streams) >= self.limits.max_pending:
            raise _err(f"more than {self.limits.max_pending} open streams", "too_many_streams")
        stream = _Stream(state)
        self._streams[sid] = stream
        self.ledger.open_stream(sid)
        return stream

    def _event(self, sid: int, event: int) -> _Stream | None:
        return self._transition(sid, self._streams.get(sid), event)

    def _transition(self, sid: int, stream: _Stream | None, event: int) -> _Stream | None:
        """Apply `event`; returns the live stream, or None when it is closed or idle."""
        if stream is None:
            if self._is_closed(sid):
                return None  # late frame on a closed stream: relayed, not tracked
            state = _IDLE
        else:
            state = stream.state
        new = NEXT[event].get(state, -1)
        if new < 0:
            raise _err(f"{Event(event).name} on stream {sid} in state {State(state).name}")
        if stream is None:
            if new == _IDLE:
                return None  # PRIORITY for an idle stream
            if sid & 1:
                self._guard.opened(self.feeds)
                self._sides[UPSTREAM].max_stream = sid
            stream = self._open(sid, new)
            return stream
        stream.state = new
        if new == _CLOSED:
            self._close(sid, stream)
        return stream

    def _end_stream(self, direction: Direction, sid: int, stream: _Stream | None) -> None:
        if stream is None:
            return
        if direction is DOWNSTREAM and stream.call is not None:
            self._finish(sid, stream)
        self._transition(sid, stream, _END_EV[direction])

    def _close(self, sid: int, stream: _Stream) -> None:
        del self._streams[sid]
        self.ledger.close_stream(sid)
        if stream.call is not None:
            self._finish(sid, stream)

    def _finish(self, sid: int, stream: _Stream) -> None:
        call = stream.call
        assert call is not None
        stream.call = None
        self.exchanges.append(call.exchange(stream.request_bytes, stream.response_bytes))

    def stream_state(self, sid: int) -> State:
        """The stream's state; forgotten streams read CLOSED, unused ids IDLE."""
        stream = self._streams.get(sid)
        if stream is not None:
            return State(stream.state)
        return State.CLOSED if self._is_closed(sid) else State.IDLE

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # -- connection end ---------------------------------------------------------------

    def eof(self, direction: Direction) -> list[Message]:
        """A half-close ends HTTP/2: calls still open are reported as aborted."""
        now = 0
        for sid, stream in list(self._streams.items()):
            if stream.call is not None:
                now = now or self.clock()
                stream.call.on_abort()
                stream.call.ex.finished = now
                self._finish(sid, stream)
        return []

    def error_reply(self, direction: Direction, error: DecodeError) -> tuple[bytes, bytes]:
        """GOAWAYs for the offender (sender of `direction`) and for its peer.

        Each names the last stream the proxy relayed that its recipient
        initiated, so neither end retries work the other already saw. No GOAWAY
        goes to the server before the client preface has reached it.
        """
        self._failed = self._failed or error
        code = F.REASON_CODES.get(error.reason, ErrorCode.PROTOCOL_ERROR)
        debug = error.reason.encode()
        up, down = self._sides
        to_client = self._to_client(F.build_goaway(up.max_stream, code, debug))
        to_server = F.build_goaway(down.max_stream, code, debug) if not up.preface_left else b""
        return (to_client, to_server) if direction is UPSTREAM else (to_server, to_client)

    def _to_client(self, frames: bytes) -> bytes:
        """`frames` the proxy itself sends the client, after an empty SETTINGS when
        the server's own has not passed yet: a server's first frame must be
        SETTINGS (RFC 9113 3.4), and a GOAWAY that beat the server's preface
        to the client (a bad client frame read before the upstream answered)
        would be the client's protocol error."""
        if self._sides[DOWNSTREAM].started:
            return frames
        return F.build_settings() + frames

    def internal_error_reply(self) -> tuple[bytes, bytes]:
        """GOAWAY INTERNAL_ERROR to the client and (once it has the preface) the server."""
        up, down = self._sides
        code, debug = ErrorCode.INTERNAL_ERROR, b"internal_error"
        to_client = self._to_client(F.build_goaway(up.max_stream, code, debug))
        to_server = F.build_goaway(down.max_stream, code, debug) if not up.preface_left else b""
        return to_client, to_server

    # -- what the runtime's memory budget and deadlines read ------------------------------

    def buffered(self) -> int:
        up, down = self._sides
        held = len(up.buf) + len(down.buf)
        if up.block is not None:
            held += len(up.block)
        if down.block is not None:
            held += len(down.block)
        # gRPC messages spanning DATA frames, across all streams
        return held + self.limits.max_message_size - self._grpc_budget.left

    def release(self) -> None:
        for side in self._sides:
            side.buf = bytearray()
            side.block = None

    def unfinished(self) -> tuple[str, int] | None:
        up = self._sides[UPSTREAM]
        if up.preface_left or not up.started:
            return "header", 0  # preface + first SETTINGS: from when the runtime saw it
        if up.block is not None:
            return "header", up.block_at
        return None

    def limit_reply(self, reason: str) -> tuple[bytes, bytes]:
        """GOAWAY ENHANCE_YOUR_CALM to the client (debug data: the reason).

        Nothing to the server: it did nothing wrong, and a frame from us in the
        middle of a header block it is receiving would be its protocol error;
        the close tells it enough.
        """
        up = self._sides[UPSTREAM]
        goaway = F.build_goaway(up.max_stream, ErrorCode.ENHANCE_YOUR_CALM, reason.encode())
        return self._to_client(goaway), b""

    # -- injection support --------------------------------------------------------------

    def reencoder(self, direction: Direction, before_last_block: bool = False) -> MirrorEncoder:
        """The encoder for `direction` once it switches to re-encoding (made on first use).

        Its table starts as a copy of the destination decoder's table. Pass
        `before_last_block=True` when the switch is made for the header block
        just decoded (its original is not forwarded, so the destination never
        applied it). From then on every header block in `direction` must be
        written through this encoder.
        """
        enc = self._reencoders[direction]
        if enc is None:
            enc = self._sides[direction].hpack.mirror_encoder(before_last_block)
            self._reencoders[direction] = enc
        return enc

    def build_headers(
        self,
        direction: Direction,
        stream_id: int,
        headers: Sequence[tuple[str, str]],
        end_stream: bool = False,
    ) -> bytes:
        """HEADERS (+CONTINUATION) to inject in `direction`.

        Without a re-encoder for the direction the block is context-free (no
        dynamic-table reads or writes), so relayed blocks stay valid around it;
        with one, it goes through the re-encoder like every other block.

        A response injected toward the client (e.g. DESIGN's trailers-only gRPC
        error) is what the client sees, so it is recorded on the call; with
        END_STREAM the call's Exchange is reported now, with that status.
        """
        enc = self._reencoders[direction]
        block = enc.encode(headers) if enc is not None else encode_context_free(headers)
        if direction is DOWNSTREAM:
            stream = self._streams.get(stream_id)
            if stream is not None and stream.call is not None:
                stream.call.on_response_headers(headers)
                if end_stream:
                    self._finish(stream_id, stream)
        return F.build_header_block(stream_id, block, end_stream, self.max_frame_size(direction))

    def reencode_block(self, message: Message) -> bytes:
        """The frames that replace a relayed header block in a re-encoding direction.

        `message` is the frame that completed the block (it carries "headers").
        The runtime drops the block's earlier HEADERS/CONTINUATION frames and
        writes these instead of this one. Priority fields are not carried over
        (RFC 9113 deprecates them); PUSH_PROMISE blocks are not supported here.
        """
        info = message.info
        if info is None or "headers" not in info or "promised_stream_id" in info:
            raise ValueError("not the final frame of a HEADERS block")
        enc = self.reencoder(message.direction, before_last_block=True)
        return F.build_header_block(
            info["stream_id"],
            enc.encode(info["headers"]),
            info["end_stream"],
            self.max_frame_size(message.direction),
        )

    def build_data(
        self, direction: Direction, stream_id: int, data: bytes, end_stream: bool = False
    ) -> bytes:
        """DATA to inject in `direction`; the credit it uses is withheld from the receiver."""
        self.ledger.withhold(direction, stream_id, len(data))
        return F.build_data(stream_id, data, end_stream, self.max_frame_size(direction))

    def inject_reset(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> bytes:
        """An RST_STREAM frame the proxy sends itself (to one or both peers).

        The codec never sees injected bytes, so this also closes the stream in
        its books: the call ends with the status a client reports for the
        reset, and frames still in flight on it are relayed as late frames.
        """
        stream = self._streams.get(stream_id)
        if stream is not None:
            if stream.call is not None:
                stream.call.on_rst(error_code)
            stream.state = _CLOSED
            self._close(stream_id, stream)
        return F.build_rst_stream(stream_id, error_code)

    def stream_ids(self) -> list[int]:
        return list(self._streams)


def _kind(ftype: int) -> str:
    return _KINDS[ftype].upper() if ftype < _N_KINDS else f"type-{ftype:#x}"
