"""gRPC calls and plain HTTP/2 requests as Exchanges, through real h2 peers."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http2 import ErrorCode, Http2Codec

from ..http2.peers import H2Pair


class Ticks:
    """A clock that moves one second per reading: Exchange times become checkable."""

    def __init__(self) -> None:
        self._n = itertools.count()

    def __call__(self) -> int:
        return next(self._n)


def grpc_request(path: str = "/demo.Echo/Say", **extra: str) -> list[tuple[str, str]]:
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "svc"),
        ("content-type", "application/grpc+proto"),
        ("te", "trailers"),
    ]
    headers += list(extra.items())
    return [(k.replace("_", "-"), v) for k, v in headers]


def msg(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BL", flag, len(payload)) + payload


def _pair() -> H2Pair:
    return H2Pair(codec=Http2Codec(clock=Ticks()))


def test_unary_call_ok() -> None:
    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request(grpc_timeout="250m", grpc_encoding="identity"))
    c.send_data(sid, msg(b"hello"), end_stream=True)
    pair.pump()
    s.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
    s.send_data(sid, msg(b"wor")[:4])
    s.send_data(sid, msg(b"wor")[4:] + msg(b"ld", flag=1))
    s.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    pair.pump()
    (ex,) = pair.codec.take_exchanges()
    assert (ex.protocol, ex.operation, ex.status, ex.key) == ("grpc", "/demo.Echo/Say", "OK", sid)
    assert ex.started < ex.finished
    assert ex.attrs["service"] == "demo.Echo" and ex.attrs["method"] == "Say"
    assert ex.attrs["request_messages"] == 1 and ex.attrs["response_messages"] == 2
    assert ex.attrs["request_message_bytes"] == 5 and ex.attrs["response_message_bytes"] == 5
    assert ex.attrs["grpc_encoding"] == "identity" and ex.attrs["timeout"] == 0.25
    assert ex.request_bytes == 10 and ex.response_bytes == 15
    events = [e for m in pair.of_kind("data", DOWNSTREAM) for e in m.info.get("grpc_messages", [])]
    assert [(e.index, e.compressed, bytes(e.payload)) for e in events] == [
        (0, 0, b"wor"),
        (1, 1, b"ld"),
    ]
    assert pair.codec.take_exchanges() == []


def test_trailers_only_error_with_percent_encoded_message() -> None:
    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request("/a.B/C"))
    c.send_data(sid, msg(b"x"), end_stream=True)
    pair.pump()
    s.send_headers(
        sid,
        [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-message", "backend%20down"),
        ],
        end_stream=True,
    )
    pair.pump()
    (ex,) = pair.codec.take_exchanges()
    assert ex.status == "UNAVAILABLE" and ex.attrs["grpc_message"] == "backend down"
    assert ex.attrs["response_messages"] == 0


def _reset_call(code: int, by_client: bool) -> str:
    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request())
    pair.pump()
    s.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
    pair.pump()
    (c if by_client else s).reset_stream(sid, code)
    pair.pump()
    (ex,) = pair.codec.take_exchanges()
    return ex.status


def test_rst_stream_without_trailers_is_the_status_clients_see() -> None:
    assert _reset_call(ErrorCode.CANCEL, by_client=True) == "CANCELLED"
    assert _reset_call(ErrorCode.CANCEL, by_client=False) == "CANCELLED"
    assert _reset_call(ErrorCode.INTERNAL_ERROR, by_client=False) == "INTERNAL"
    assert _reset_call(ErrorCode.REFUSED_STREAM, by_client=False) == "UNAVAILABLE"


def test_missing_grpc_status_maps_the_http_status() -> None:
    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request(), end_stream=True)
    pair.pump()
    s.send_headers(sid, [(":status", "503")], end_stream=True)
    pair.pump()
    assert pair.codec.take_exchanges()[0].status == "UNAVAILABLE"


def test_streaming_call_counts_many_messages() -> None:
    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request("/chat.Room/Talk"))
    s_msgs = b"".join(msg(bytes([i]) * i) for i in range(50))
    pair.pump()
    c.send_data(sid, s_msgs[:7000])
    c.send_data(sid, s_msgs[7000:], end_stream=True)
    s.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
    for i in range(30):
        s.send_data(sid, msg(b"r" * i))
    s.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    pair.pump()
    (ex,) = pair.codec.take_exchanges()
    assert ex.attrs["request_messages"] == 50 and ex.attrs["response_messages"] == 30
    assert ex.attrs["request_message_bytes"] == sum(range(50))


def test_plain_http2_request_is_an_http2_exchange() -> None:
    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":path", "/index.html"), (":authority", "w")],
        end_stream=True,
    )
    pair.pump()
    s.send_headers(sid, [(":status", "100")])
    s.send_headers(sid, [(":status", "404")])
    s.send_data(sid, b"nope", end_stream=True)
    pair.pump()
    (ex,) = pair.codec.take_exchanges()
    assert (ex.protocol, ex.operation, ex.status) == ("http2", "GET /index.html", "404")
    assert ex.response_bytes == 4 and ex.attrs["authority"] == "w"


def test_open_calls_end_as_unavailable_at_eof() -> None:
    pair = _pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_headers(sid, grpc_request())
    pair.pump()
    assert pair.codec.eof(UPSTREAM) == []
    (ex,) = pair.codec.take_exchanges()
    assert ex.status == "UNAVAILABLE"


def test_injected_trailers_only_error_reaches_the_client() -> None:
    """DESIGN's injected gRPC error: a trailers-only response downstream, built
    context-free so the relayed HPACK state stays valid for later blocks."""
    pair = _pair()
    c, s = pair.client, pair.server
    first = c.get_next_available_stream_id()
    c.send_headers(first, grpc_request(), end_stream=True)
    pair.pump()
    s.send_headers(
        first, [(":status", "200"), ("content-type", "application/grpc"), ("x-keep", "1")]
    )
    pair.pump()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request(), end_stream=True)
    pair.pump()
    frames = pair.codec.build_headers(
        DOWNSTREAM,
        sid,
        [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-message", "injected"),
        ],
        end_stream=True,
    )
    pair.inject(DOWNSTREAM, frames)
    ends = [e for e in pair.client_events if getattr(e, "stream_id", None) == sid]
    assert any(("grpc-status", "14") in getattr(e, "headers", []) for e in ends)
    # The relayed direction still decodes: the server's next block uses its table.
    s.send_headers(first, [("grpc-status", "0"), ("x-keep", "1")], end_stream=True)
    pair.pump()
    assert ("x-keep", "1") in pair.client_events[-2].headers


def test_injected_reset_ends_the_call_in_the_codec() -> None:
    pair = _pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_headers(sid, grpc_request())
    pair.pump()
    rst = pair.codec.inject_reset(sid)
    pair.inject(UPSTREAM, rst)
    pair.inject(DOWNSTREAM, rst)
    (ex,) = pair.codec.take_exchanges()
    assert ex.status == "CANCELLED"
    assert pair.codec.open_streams == 0
    assert pair.codec.ledger.tracks(sid) is False


@given(
    st.lists(st.binary(max_size=3000), min_size=1, max_size=8),
    st.lists(st.integers(1, 5000), min_size=1, max_size=10),
    st.randoms(use_true_random=False),
)
def test_messages_and_exchange_survive_any_framing_and_chunking(
    payloads: list[bytes], frame_sizes: list[int], rnd
) -> None:
    def chunker(data: bytes) -> list[bytes]:
        cuts = (
            sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, 6))) if len(data) > 1 else []
        )
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    pair = H2Pair(codec=Http2Codec(clock=Ticks()), chunker=chunker)
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request("/x.Y/Z"))
    wire = b"".join(msg(p, flag=i % 2) for i, p in enumerate(payloads))
    pos, i = 0, 0
    while pos < len(wire):
        size = frame_sizes[i % len(frame_sizes)]
        c.send_data(sid, wire[pos : pos + size])
        pos += size
        i += 1
        pair.pump()
    c.end_stream(sid)
    pair.pump()
    s.send_headers(sid, [(":status", "200"), ("grpc-status", "0")], end_stream=True)
    pair.pump()
    events = [e for m in pair.of_kind("data", UPSTREAM) for e in m.info.get("grpc_messages", [])]
    assert [(e.index, e.compressed, bytes(e.payload)) for e in events] == [
        (i, i % 2, p) for i, p in enumerate(payloads)
    ]
    (ex,) = pair.codec.take_exchanges()
    assert ex.attrs["request_messages"] == len(payloads)
    assert ex.attrs["request_message_bytes"] == sum(map(len, payloads))
    assert b"".join(m.raw for m in pair.messages if m.direction is UPSTREAM) == bytes(
        pair.raw[UPSTREAM]
    )


def test_injected_grpc_error_is_the_calls_status() -> None:
    """DESIGN's injected gRPC error: trailers-only downstream, RST_STREAM(CANCEL)
    upstream. The Exchange reports what the client saw, once."""
    pair = _pair()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_headers(sid, grpc_request(), end_stream=True)
    pair.pump()
    error = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "14"),
        ("grpc-message", "injected%20fault"),
    ]
    pair.inject(DOWNSTREAM, pair.codec.build_headers(DOWNSTREAM, sid, error, end_stream=True))
    pair.inject(UPSTREAM, pair.codec.inject_reset(sid))
    (ex,) = pair.codec.take_exchanges()
    assert ex.status == "UNAVAILABLE" and ex.attrs["grpc_message"] == "injected fault"
    assert pair.codec.open_streams == 0
    ends = [e for e in pair.client_events if getattr(e, "stream_id", None) == sid]
    assert any(type(e).__name__ == "StreamEnded" for e in ends)


def test_server_push_is_its_own_http2_exchange() -> None:
    from protoproxy_codecs.http2 import State

    pair = _pair()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "w")],
        end_stream=True,
    )
    pair.pump()
    pushed = s.get_next_available_stream_id()
    s.push_stream(
        sid,
        pushed,
        [(":method", "GET"), (":scheme", "http"), (":path", "/style.css"), (":authority", "w")],
    )
    pair.pump()
    assert pair.codec.stream_state(pushed) is State.RESERVED
    s.send_headers(pushed, [(":status", "200")])
    s.send_data(pushed, b"body{}", end_stream=True)
    s.send_headers(sid, [(":status", "200")], end_stream=True)
    pair.pump()
    ops = sorted((e.operation, e.status, e.key) for e in pair.codec.take_exchanges())
    assert ops == [("GET /", "200", sid), ("GET /style.css", "200", pushed)]
    assert pair.codec.open_streams == 0
    (promise,) = pair.of_kind("push_promise", DOWNSTREAM)
    assert promise.info["promised_stream_id"] == pushed
