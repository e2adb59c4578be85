"""HTTP/2 and gRPC message faults: statuses, RST_STREAM, GOAWAY, flow-control starvation.

HPACK: a connection this handler watches re-encodes its header blocks in both
directions from the start (DESIGN "HPACK is connection state"). The switch
is made when the filter attaches, between batches, where the destination's
table is exactly the codec decoder's, so dropping a request's HEADERS or
injecting trailers never desynchronises a peer. Only connections some
message fault can match pay for it.

Flow control: DATA the proxy drops is credited back to its sender with
WINDOW_UPDATE (`ledger.credit_dropped`). `withhold_window_updates` drops
WINDOW_UPDATEs on purpose; the ledger then believes the sender has more
credit than it does, which can only make the proxy more lenient.

A stream a fault ended is "dead": whatever either peer still sends on it is
dropped here (DATA credited), so the other peer never sees frames for a
stream it does not know or has closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message
from protoproxy_codecs.grpc.status import status_name
from protoproxy_codecs.http2.frames import ErrorCode, build_goaway
from protoproxy_codecs.http2.message import FrameMessage

from .actions import CODEC_MATCH_KEYS, FRAME_TYPES, Action, grpc_status, h2_error, http_status
from .handler import Handler, Matcher

if TYPE_CHECKING:
    from protoproxy_codecs.http2 import Http2Codec

    from .engine import ActiveFault
    from .message_filter import MessageFaultFilter

#: streams remembered per connection (paths, dead streams); oldest forgotten first
MAX_STREAMS = 4096

_HEADER_KINDS = frozenset({"headers", "continuation"})


def percent_encode(text: str) -> str:
    """grpc-message encoding: printable ASCII except '%' as is, the rest %XX (UTF-8)."""
    out = []
    for byte in text.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _request_meta(headers: Iterable[tuple[str, str]]) -> tuple[str, str, bool]:
    path = method = ""
    grpc = False
    for name, value in headers:
        if name == ":path":
            path = value
        elif name == ":method":
            method = value
        elif name == "content-type" and value.startswith("application/grpc"):
            grpc = True
    return path, method, grpc


class _Stream:
    __slots__ = ("grpc", "headers", "method", "path", "responded")

    def __init__(self, path: str, method: str, grpc: bool, headers: Any) -> None:
        self.path = path
        self.method = method
        self.grpc = grpc
        self.headers = headers
        self.responded = False


class Http2Handler(Handler):
    protocol = "http2"
    keys = CODEC_MATCH_KEYS["http2"]

    def __init__(self, filt: MessageFaultFilter) -> None:
        super().__init__(filt)
        codec: Http2Codec = self.conn.codec  # type: ignore[assignment]
        self.codec = codec
        # Between batches the destination tables equal the decoders': switch now.
        codec.reencoder(UPSTREAM)
        codec.reencoder(DOWNSTREAM)
        self.streams: dict[int, _Stream] = {}
        #: stream -> whether the server ever saw it
        self.dead: dict[int, bool] = {}
        self.goaway_at: int | None = None
        self.max_forwarded = 0

    # -- matching ------------------------------------------------------------------------------
    def compile(self, fault: ActiveFault, action: Action) -> Matcher | None:
        if super().compile(fault, action) is None:
            return None
        m = fault.spec.match
        kind = action.kind
        frame_type = m.get("frame_type")
        if frame_type is not None:
            frame_type = str(frame_type).lower()
            if frame_type not in FRAME_TYPES:
                raise ValueError(f"unknown HTTP/2 frame type {frame_type!r}")
        elif kind == "withhold_window_updates":
            frame_type = "window_update"
        elif kind == "delay_ping":
            frame_type = "ping"
        elif kind == "delay_settings_ack":
            frame_type = "settings_ack"
        index = m.get("message_index")
        service, gmethod = m.get("service"), m.get("method")
        http_method = None
        if m.get("protocol") == "http2":
            http_method, gmethod = gmethod, None
        prefix = m.get("path_prefix")
        header = m.get("header")
        wanted_headers = (
            {str(k).lower(): v for k, v in header.items()}
            if isinstance(header, dict)
            else ({str(header).lower(): None} if header else {})
        )
        per_stream = bool(service or gmethod or http_method or prefix or wanted_headers)
        streams = self.streams

        def matches(msg: Message) -> bool:
            info = msg.info
            if info is None:
                return False
            kind = msg.kind
            if frame_type is not None:
                if frame_type == "settings_ack":
                    if kind != "settings" or not info.get("ack"):
                        return False
                elif kind != frame_type:
                    return False
            elif index is not None:
                gms = info.get("grpc_messages") if kind == "data" else None
                if not gms or all(g.index != index for g in gms):
                    return False
            elif kind not in _HEADER_KINDS or "headers" not in info:
                return False
            elif msg.direction is UPSTREAM and msg.key in streams:
                return False  # request trailers, not a call start
            if not per_stream:
                return True
            sid = msg.key
            if not sid:
                return False
            st = streams.get(sid)
            if st is None:
                if msg.direction is not UPSTREAM or "headers" not in info:
                    return False
                path, method, _ = _request_meta(info["headers"])
                hdrs = info["headers"]
            else:
                path, method, hdrs = st.path, st.method, st.headers
            if prefix is not None and not path.startswith(prefix):
                return False
            if http_method is not None and method != http_method:
                return False
            if service is not None or gmethod is not None:
                svc, _, meth = path[1:].rpartition("/")
                if service is not None and svc != service:
                    return False
                if gmethod is not None and meth != gmethod:
                    return False
            if wanted_headers:
                have = dict(hdrs)
                for name, value in wanted_headers.items():
                    if name not in have or (value is not None and have[name] != str(value)):
                        return False
            return True

        return matches

    # -- the relay -------------------------------------------------------------------------------
    def _remember(self, sid: int, st: _Stream) -> None:
        streams = self.streams
        if len(streams) >= MAX_STREAMS:
            del streams[next(iter(streams))]
        streams[sid] = st

    def _kill(self, sid: int, seen_by_server: bool) -> None:
        dead = self.dead
        if len(dead) >= MAX_STREAMS:
            del dead[next(iter(dead))]
        dead[sid] = seen_by_server
        self.streams.pop(sid, None)

    def forward(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        sid = msg.key
        kind = msg.kind
        if sid and sid in self.dead:
            self._discard(direction, msg, out)
            return
        if kind in _HEADER_KINDS or kind == "push_promise":
            info = msg.info
            assert info is not None
            if "headers" not in info:
                return  # the block is re-encoded whole when it completes
            if kind == "push_promise":
                out.append(msg)  # not re-encodable (documented limit)
                return
            if direction is UPSTREAM and sid not in self.streams and sid > self.max_forwarded:
                if self.goaway_at is not None and sid > self.goaway_at:
                    self._refuse(sid)  # after our GOAWAY: the client retries it elsewhere
                    return
                path, method, grpc = _request_meta(info["headers"])
                self._remember(sid, _Stream(path, method, grpc, info["headers"]))
                self.max_forwarded = sid
            elif direction is DOWNSTREAM:
                st = self.streams.get(sid)
                if st is not None:
                    st.responded = True
                if info.get("end_stream"):
                    self.streams.pop(sid, None)
            raw = self.codec.reencode_block(msg)
            out.append(Message(direction, kind, raw, sid, info))
            return
        if kind == "rst_stream" and sid:
            self.streams.pop(sid, None)
        out.append(msg)

    def _discard(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        """Drop a frame for good; DATA is credited back to its sender."""
        if msg.kind == "data":
            info = msg.info
            assert info is not None
            credit = self.codec.ledger.credit_dropped(direction, msg.key, info["length"])
            if credit:
                self.conn.send_raw(direction.other, credit)

    def _close_books(self, sid: int, status: str | None, detail: str | None = None) -> bytes:
        """Close the stream in the codec (its Exchange gets `status`); the RST bytes."""
        codec = self.codec
        rst = codec.inject_reset(sid, ErrorCode.CANCEL)
        if status is not None:
            for ex in reversed(codec.exchanges):
                if ex.key == sid:
                    ex.status = status
                    if detail:
                        ex.attrs["grpc_message"] = detail
                    break
        return rst

    def _refuse(self, sid: int) -> None:
        self._close_books(sid, "UNAVAILABLE")
        self._kill(sid, False)

    def drop(self, direction: Direction, msg: Message, out: list[Message], name: str) -> None:
        kind = msg.kind
        sid = msg.key
        info = msg.info or {}
        if kind == "data":
            self._discard(direction, msg, out)
        elif kind in _HEADER_KINDS:
            if "headers" not in info:
                self.forward(direction, msg, out)  # wait for the block's end
                return
            if direction is UPSTREAM and sid not in self.streams:
                # A request never sent: the client waits for its deadline.
                self._close_books(sid, "DEADLINE_EXCEEDED")
                self._kill(sid, False)
                return
            # else: a response block vanishes (the re-encoder never saw it)
        elif kind == "settings":
            self.forward(direction, msg, out)  # SETTINGS must be acked: never dropped

    def payload_span(self, msg: Message) -> tuple[int, int] | None:
        if msg.kind != "data":
            return None
        info = msg.info
        assert info is not None
        raw = msg.raw
        start, end = 9, 9 + info["length"]
        if info["flags"] & 0x8:
            start, end = 10, end - raw[9]
        st = self.streams.get(msg.key)
        if st is not None and st.grpc:
            gms = info.get("grpc_messages")
            if not gms or len(gms) != 1 or gms[0].length + 5 != end - start:
                return None  # only whole single messages: the length prefix stays intact
            start += 5
        return (start, end) if start < end else None

    # -- protocol actions ----------------------------------------------------------------------------
    def act(
        self, fault: ActiveFault, action: Action, direction: Direction, msg: Message, out: list
    ) -> bool:
        kind = action.kind
        if kind == "withhold_window_updates":
            return msg.kind == "window_update"
        if kind == "delay_settings_ack" or kind == "delay_ping":
            return False
        sid = msg.key
        name = fault.name
        if not sid:
            if kind == "goaway":
                self._goaway(action, direction, msg, out, name)
                return True
            return False
        if kind == "abort":
            self._abort(action, direction, msg, out, name)
            return True
        if kind == "rst_stream":
            self._rst(action, direction, msg, out, name)
            return True
        if kind == "goaway":
            self._goaway(action, direction, msg, out, name)
            return True
        return False

    def _inject(
        self, to: Direction, kind: str, raw: bytes, sid: int, name: str, extra: Any = None
    ) -> None:
        """Write a frame the proxy made up; the tail sees it marked with the fault."""
        frame = FrameMessage(to, kind, raw, sid, extra)
        frame.info["injected"] = name
        self.filt.injected(to, [frame])
        self.conn.send_raw(to, raw)

    def _is_call_start(self, direction: Direction, msg: Message) -> bool:
        info = msg.info or {}
        return (
            direction is UPSTREAM
            and msg.kind in _HEADER_KINDS
            and "headers" in info
            and msg.key not in self.streams
            and msg.key > self.max_forwarded
        )

    def _abort(
        self, action: Action, direction: Direction, msg: Message, out: list, name: str
    ) -> None:
        """End the call with a status; the trigger frame itself is never delivered.

        A call start is simply not forwarded (blocks are re-encoded, so a
        missing one costs nothing); otherwise the server gets RST_STREAM(CANCEL).
        """
        p = action.params
        sid = msg.key
        seen = not self._is_call_start(direction, msg)
        st = self.streams.get(sid)
        grpc = st.grpc if st is not None else _request_meta((msg.info or {}).get("headers", ()))[2]
        self._discard(direction, msg, out)
        if grpc:
            code = grpc_status(p.get("status", p.get("value", "UNAVAILABLE")))
            text: str | None = str(p.get("message", "injected by protoproxy"))
            fields = [("grpc-status", str(code)), ("grpc-message", percent_encode(text))]
            if st is None or not st.responded:
                fields = [(":status", "200"), ("content-type", "application/grpc"), *fields]
            status_str = status_name(code)
        else:
            # A plain HTTP/2 request: the bare value is the gRPC status for calls.
            http = http_status(p.get("http_status", 503))
            fields = [(":status", str(http)), ("content-length", "0")]
            status_str, text = str(http), None
        self.filt.flush(direction, out)
        rst = self._close_books(sid, status_str, text)
        if msg.info is not None:
            msg.info["not_forwarded"] = name  # for the tail, which saw the frame go by
        if seen:
            self._inject(UPSTREAM, "rst_stream", rst, sid, name)
        block = self.codec.build_headers(DOWNSTREAM, sid, fields, True)
        self._inject(DOWNSTREAM, "headers", block, sid, name, {"headers": fields})
        self._kill(sid, seen)

    def _rst(
        self, action: Action, direction: Direction, msg: Message, out: list, name: str
    ) -> None:
        """RST_STREAM to both peers. A call start is forwarded first: a reset for a
        stream the server never saw would be a connection error."""
        p = action.params
        code = h2_error(p.get("code", p.get("value")), ErrorCode.CANCEL)
        sid = msg.key
        if self._is_call_start(direction, msg):
            self.forward(direction, msg, out)
        else:
            self._discard(direction, msg, out)
        self.filt.flush(direction, out)
        rst = self.codec.inject_reset(sid, code)
        self._inject(UPSTREAM, "rst_stream", rst, sid, name)
        self._inject(DOWNSTREAM, "rst_stream", rst, sid, name)
        self._kill(sid, True)

    def _goaway(
        self, action: Action, direction: Direction, msg: Message, out: list, name: str
    ) -> None:
        """GOAWAY to the client: it finishes what the server has and retries the rest."""
        p = action.params
        code = h2_error(p.get("code", p.get("value")), ErrorCode.NO_ERROR)
        if self._is_call_start(direction, msg) and msg.kind == "headers":
            last = self.max_forwarded
            self._refuse(msg.key)
        else:
            self.forward(direction, msg, out)
            last = self.max_forwarded
        if self.goaway_at is None or last < self.goaway_at:
            self.goaway_at = last
        self.filt.flush(direction, out)
        self._inject(DOWNSTREAM, "goaway", build_goaway(last, code, b"protoproxy fault"), 0, name)
