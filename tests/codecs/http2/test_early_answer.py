"""The two directions are independent: a server may answer a stream whose
request header block is still open (grpcio rejects oversized metadata that
way), and a gRPC-shaped request may get a plain HTTP answer."""

from __future__ import annotations

import struct

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Exchange
from protoproxy_codecs.http2 import PREFACE, Http2Codec, State
from protoproxy_codecs.http2 import frames as F

REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/pkg.Svc/Call"),
    (":authority", "example"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


def _connected() -> tuple[Http2Codec, hpack.Encoder, hpack.Encoder]:
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    codec.feed(DOWNSTREAM, F.build_settings())
    codec.feed(UPSTREAM, F.build_settings(ack=True))
    codec.feed(DOWNSTREAM, F.build_settings(ack=True))
    return codec, hpack.Encoder(), hpack.Encoder()


def _split_request(enc: hpack.Encoder, sid: int, metadata: int, end: bool) -> list[bytes]:
    """HEADERS without END_HEADERS, then CONTINUATION frames (the last ends the block)."""
    block = enc.encode([*REQUEST, ("x-big", "v" * metadata)])
    pieces = [block[i : i + 4000] for i in range(0, len(block), 4000)]
    flags = F.FLAG_END_STREAM if end else 0
    frames = [F.frame(F.HEADERS, flags, sid, pieces[0])]
    for i, piece in enumerate(pieces[1:], 2):
        frames.append(
            F.frame(F.CONTINUATION, F.FLAG_END_HEADERS if i == len(pieces) else 0, sid, piece)
        )
    return frames


def _feed_all(codec: Http2Codec, frames: list[tuple[int, bytes]]) -> list[Exchange]:
    for direction, data in frames:
        got = codec.feed(UPSTREAM if direction == 0 else DOWNSTREAM, data)
        assert b"".join(m.raw for m in got) == data  # every byte relayed
    return codec.take_exchanges()


@given(
    answer_at=st.integers(min_value=1, max_value=3),
    trailers_only=st.booleans(),
    end=st.booleans(),
)
def test_server_answers_while_request_block_is_open(
    answer_at: int, trailers_only: bool, end: bool
) -> None:
    codec, up, down = _connected()
    request = _split_request(up, 1, 15000, end)
    assert len(request) >= 4
    answer = [(":status", "200"), ("content-type", "application/grpc")]
    answer += [("grpc-status", "8"), ("grpc-message", "too big")]
    reply = F.build_header_block(1, down.encode(answer), end_stream=trailers_only)
    frames = [(0, f) for f in request]
    frames.insert(answer_at, (1, reply))
    if not trailers_only:
        frames.append((1, F.build_rst_stream(1, F.ErrorCode.CANCEL)))
    elif not end:
        frames.append((0, F.build_rst_stream(1, F.ErrorCode.CANCEL)))
    exchanges = _feed_all(codec, frames)
    (ex,) = exchanges
    assert (ex.protocol, ex.operation, ex.status) == ("grpc", "/pkg.Svc/Call", "RESOURCE_EXHAUSTED")
    assert ex.attrs["grpc_message"] == "too big"
    assert codec.stream_state(1) is State.CLOSED
    assert codec.open_streams == 0


def test_server_reset_while_request_block_is_open() -> None:
    codec, up, _ = _connected()
    request = _split_request(up, 1, 9000, True)
    frames = [(0, request[0]), (1, F.build_rst_stream(1, F.ErrorCode.REFUSED_STREAM))]
    frames += [(0, f) for f in request[1:]]
    (ex,) = _feed_all(codec, frames)
    assert ex.status == "UNAVAILABLE"  # what a gRPC client reports for REFUSED_STREAM


def _plain_answer(down: hpack.Encoder, body: bytes) -> bytes:
    head = down.encode([(":status", "200"), ("content-type", "text/html")])
    return F.build_header_block(1, head) + F.build_data(1, body, end_stream=True)


def test_grpc_request_answered_with_plain_body_is_an_http2_exchange() -> None:
    codec, up, down = _connected()
    request = F.build_header_block(1, up.encode(REQUEST)) + F.build_data(
        1, b"\0\0\0\0\3abc", end_stream=True
    )
    # A body whose first 5 bytes read as a 4 GB gRPC message.
    body = b"<html>" + b"x" * 300
    (ex,) = _feed_all(codec, [(0, request), (1, _plain_answer(down, body))])
    assert (ex.protocol, ex.operation, ex.status) == ("http2", "POST /pkg.Svc/Call", "200")
    assert ex.response_bytes == len(body)


def test_malformed_grpc_message_ends_only_its_call() -> None:
    codec, up, down = _connected()
    exchanges: list[Exchange] = []
    bad = F.build_data(1, struct.pack(">BL", 0, 2**32 - 1) + b"junk", end_stream=True)
    good = F.build_data(3, struct.pack(">BL", 0, 2) + b"ok", end_stream=True)
    exchanges += _feed_all(codec, [(0, F.build_header_block(1, up.encode(REQUEST)) + bad)])
    exchanges += _feed_all(codec, [(0, F.build_header_block(3, up.encode(REQUEST)) + good)])
    head = [(":status", "200"), ("content-type", "application/grpc")]
    for sid in (1, 3):
        answer = F.build_header_block(sid, down.encode(head)) + F.build_header_block(
            sid, down.encode([("grpc-status", "0")]), end_stream=True
        )
        exchanges += _feed_all(codec, [(1, answer)])
    one, three = exchanges
    assert one.status == "OK" and "exceeds" in one.attrs["grpc_malformed"]
    assert one.attrs["grpc_malformed"].startswith("upstream:")
    assert three.status == "OK" and "grpc_malformed" not in three.attrs
    assert three.attrs["request_messages"] == 1
    assert one.attrs["request_messages"] == 0


def test_plain_early_answer_makes_an_http2_exchange_once_the_block_completes() -> None:
    codec, up, down = _connected()
    request = _split_request(up, 1, 9000, True)
    head = down.encode([(":status", "404"), ("content-type", "text/plain")])
    frames = [(0, request[0]), (1, F.build_header_block(1, head))]
    frames += [(1, F.build_data(1, b"\xff\xff\xff\xff\xffnot found", end_stream=True))]
    frames += [(0, f) for f in request[1:]]
    (ex,) = _feed_all(codec, frames)
    assert (ex.protocol, ex.operation, ex.status) == ("http2", "POST /pkg.Svc/Call", "404")
    assert ex.attrs == {"authority": "example"}
    assert ex.response_started


def test_even_stream_from_the_client_is_refused_at_its_first_headers_frame() -> None:
    codec, up, _ = _connected()
    headers = _split_request(up, 2, 9000, True)[0]
    with pytest.raises(DecodeError, match="even stream"):
        codec.feed(UPSTREAM, headers)
