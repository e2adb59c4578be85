"""The recording filter: copies what a recorded connection carries, nothing more.

It runs only on connections of listeners with ``record`` (the factory answers
None otherwise, so other listeners pay nothing per message). Per message it
copies payload bytes and header lists into the `model` dataclasses; when an
exchange completes it hands the result to the listener's `RecordWriter`, whose
queue is bounded. Decoding happens in the writer, never here.

Memory: each open exchange holds at most ``record.max_exchange_bytes`` (past
it, the exchange is given up and counted as ``too_large``), and a connection
tracks at most `MAX_OPEN` exchanges at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from protoproxy_codecs.base import Direction, Message
from protoproxy_codecs.kafka.api_keys import ApiKey

from .model import GrpcCall, Headers, HttpExchange, ProduceRequest, Recording

if TYPE_CHECKING:
    from ..connection import Connection

#: Exchanges one connection may have open in the recorder at once.
MAX_OPEN = 1024
_PRODUCE = int(ApiKey.PRODUCE)
_DATA = 0
_FLAG_PADDED = 0x8
_UP = Direction.UPSTREAM


class Sink(Protocol):
    max_exchange_bytes: int

    def submit(self, item: Recording, listener: str) -> None: ...

    def drop(self, reason: str, listener: str, n: int = 1) -> None: ...


def _text_headers(headers: Any) -> Headers:
    out: Headers = []
    for name, value in headers:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        out.append((name.lower(), value))
    return out


def _header(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v
    return None


class _H2Stream:
    __slots__ = ("body", "call", "grpc", "method", "path", "req_body", "size", "status", "trailer")

    def __init__(self, headers: Headers) -> None:
        self.path = _header(headers, ":path") or "/"
        self.method = _header(headers, ":method") or "GET"
        ctype = _header(headers, "content-type") or ""
        self.grpc = ctype.startswith("application/grpc")
        self.call = GrpcCall(self.path, headers)
        self.req_body = bytearray()
        self.body = bytearray()
        self.size = 0
        self.status = 0
        self.trailer = False  # the final response head was seen: the next block is trailers


class _H1Request:
    __slots__ = (
        "chunked",
        "headers",
        "method",
        "req_body",
        "resp_body",
        "resp_chunked",
        "resp_headers",
        "size",
        "status",
        "url",
    )

    def __init__(self, info: dict[str, Any]) -> None:
        self.method: str = info["method"]
        self.url: str = info["target"]
        self.headers = _text_headers(info["headers"])
        self.chunked = "chunked" in (_header(self.headers, "transfer-encoding") or "").lower()
        self.req_body = bytearray()
        self.resp_body = bytearray()
        self.resp_headers: Headers = []
        self.resp_chunked = False
        self.status = 0
        self.size = 0


class ConnectionCapture:
    """The FilterSlot.RECORD filter of one recorded connection."""

    def __init__(self, sink: Sink, protocol: str, listener: str) -> None:
        self.listener = listener
        self.sink = sink
        self.protocol = protocol
        self.limit = sink.max_exchange_bytes
        self._h2: dict[int, _H2Stream | None] = {}  # None: given up (too large)
        self._h1: dict[int, _H1Request | None] = {}

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        protocol = self.protocol
        if protocol == "http2":
            for msg in messages:
                if msg.key:
                    self._h2_frame(direction, msg)
        elif protocol == "http":
            for msg in messages:
                self._h1_message(direction, msg)
        elif protocol == "kafka" and direction is _UP:
            for msg in messages:
                info = msg.info
                if msg.kind == "request" and info is not None and info.get("api_key") == _PRODUCE:
                    self.sink.submit(
                        ProduceRequest(
                            bytes(msg.raw), info["api_version"], info["header_size"] + 4
                        ),
                        self.listener,
                    )
        return messages

    # -- HTTP/2 and gRPC ------------------------------------------------------------
    def _h2_frame(self, direction: Direction, msg: Message) -> None:
        sid = msg.key
        streams = self._h2
        kind = msg.kind
        if kind == "rst_stream":
            streams.pop(sid, None)  # reset: no answer to replay
            return
        extra = getattr(msg, "extra", None)
        headers = extra.get("headers") if extra else None
        if sid not in streams:
            if direction is not _UP or headers is None:
                return
            if len(streams) >= MAX_OPEN:
                self.sink.drop("too_many_open", self.listener)
                return
            streams[sid] = _H2Stream(_text_headers(headers))
            self._h2_end(sid, msg, direction)
            return
        st = streams[sid]
        if st is None:
            if direction is not _UP and msg.info.get("end_stream"):
                del streams[sid]
            return
        if headers is not None:
            if direction is _UP:
                pass  # request trailers: not part of what a stub matches
            elif st.trailer:
                st.call.trailers = _text_headers(headers)
            else:
                hs = _text_headers(headers)
                status = _header(hs, ":status")
                if status is not None and status.startswith("1"):
                    return  # interim
                st.status = int(status) if status and status.isdigit() else 0
                st.call.response_headers = hs
                st.trailer = True
                if st.grpc and not (_header(hs, "content-type") or "").startswith(
                    "application/grpc"
                ):
                    st.grpc = False
        elif kind == "data":
            if st.grpc:
                events = extra.get("grpc_messages") if extra else None
                if events:
                    call = st.call
                    for ev in events:
                        if ev.truncated:
                            self._give_up(sid)
                            return
                        payload = bytes(ev.payload)
                        st.size += len(payload)
                        if direction is _UP:
                            call.requests.append((ev.compressed, payload))
                        else:
                            call.responses.append((ev.compressed, payload))
            else:
                raw = msg.raw
                length = (raw[0] << 16) | (raw[1] << 8) | raw[2]
                start, end = 9, 9 + length
                if raw[4] & _FLAG_PADDED and length:
                    start, end = 10, end - raw[9]
                chunk = raw[start:end]
                st.size += len(chunk)
                (st.req_body if direction is _UP else st.body).extend(chunk)
            if st.size > self.limit:
                self._give_up(sid)
                return
        self._h2_end(sid, msg, direction)

    def _give_up(self, sid: int) -> None:
        self._h2[sid] = None
        self.sink.drop("too_large", self.listener)

    def _h2_end(self, sid: int, msg: Message, direction: Direction) -> None:
        if direction is _UP or msg.kind not in ("headers", "continuation", "data"):
            return
        if not msg.info.get("end_stream"):
            return
        st = self._h2.pop(sid, None)
        if st is None:
            return
        if st.grpc:
            self.sink.submit(st.call, self.listener)
        else:
            call = st.call
            self.sink.submit(
                HttpExchange(
                    st.method,
                    st.path,
                    call.request_headers,
                    bytes(st.req_body),
                    st.status,
                    call.response_headers,
                    bytes(st.body),
                ),
                self.listener,
            )

    # -- HTTP/1.1 -----------------------------------------------------------------
    def _h1_message(self, direction: Direction, msg: Message) -> None:
        kind = msg.kind
        key = msg.key
        pending = self._h1
        if kind == "head":
            info = msg.info or {}
            if direction is _UP:
                if len(pending) >= MAX_OPEN:
                    self.sink.drop("too_many_open", self.listener)
                    return
                pending[key] = _H1Request(info)
                return
            rq = pending.get(key)
            if rq is None or info.get("interim"):
                return
            rq.status = info["status"]
            rq.resp_headers = _text_headers(info["headers"])
            rq.resp_chunked = (
                "chunked" in (_header(rq.resp_headers, "transfer-encoding") or "").lower()
            )
            if rq.status == 101 or (rq.method == "CONNECT" and rq.status < 300):
                pending.pop(key, None)  # a tunnel: nothing a mapping can replay
            return
        rq = pending.get(key)
        if rq is None:
            return
        if kind == "body":
            rq.size += len(msg.raw)
            if rq.size > self.limit:
                pending[key] = None
                self.sink.drop("too_large", self.listener)
                return
            (rq.req_body if direction is _UP else rq.resp_body).extend(msg.raw)
        elif kind == "end" and direction is not _UP:
            del pending[key]
            self.sink.submit(
                HttpExchange(
                    rq.method,
                    rq.url,
                    rq.headers,
                    dechunk(bytes(rq.req_body)) if rq.chunked else bytes(rq.req_body),
                    rq.status,
                    rq.resp_headers,
                    dechunk(bytes(rq.resp_body)) if rq.resp_chunked else bytes(rq.resp_body),
                ),
                self.listener,
            )
        elif kind == "tunnel":
            pending.pop(key, None)


def dechunk(data: bytes) -> bytes:
    """The payload of chunked framing the codec already checked (up to the last-chunk)."""
    out = bytearray()
    pos = 0
    n = len(data)
    while pos < n:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        size = int(size_text, 16) if size_text else 0
        if size == 0:
            break
        out += data[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)
