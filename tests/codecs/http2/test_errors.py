"""Bad bytes: only DecodeError, and the right GOAWAY for each side."""

from __future__ import annotations

import struct

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Direction, Limits
from protoproxy_codecs.http2 import PREFACE, ErrorCode, Http2Codec
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.strategies.http2 import chunks, client_streams

START = PREFACE + F.build_settings()


def _goaway(data: bytes) -> tuple[int, int, bytes]:
    assert data[3] == F.GOAWAY and data[5:9] == b"\0\0\0\0"
    last, code = struct.unpack_from(">LL", data, 9)
    return last, code, data[17:]


def _fail(codec: Http2Codec, direction: Direction, data: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.feed(direction, data)
    return info.value


def _request(sid: int, end: bool = True) -> bytes:
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "http")])
    return F.build_header_block(sid, block, end_stream=end)


def _connected() -> Http2Codec:
    codec = Http2Codec()
    codec.feed(UPSTREAM, START)
    codec.feed(DOWNSTREAM, F.build_settings())
    return codec


@given(st.binary(max_size=400), st.data())
def test_garbage_raises_only_decode_error(garbage: bytes, data: st.DataObject) -> None:
    for direction in (UPSTREAM, DOWNSTREAM):
        codec = _connected()
        fed = b""
        try:
            for piece in data.draw(chunks(garbage)):
                for m in codec.feed(direction, piece):
                    fed += m.raw
        except DecodeError as exc:
            to_offender, to_peer = codec.error_reply(direction, exc)
            assert _goaway(to_offender)[1] in set(F.REASON_CODES.values())
            assert _goaway(to_peer)[1] == _goaway(to_offender)[1]
        else:
            assert garbage.startswith(fed)


@given(st.data())
def test_mutated_streams_raise_only_decode_error(data: st.DataObject) -> None:
    stream = bytearray(data.draw(client_streams()))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(len(PREFACE), max(len(PREFACE), len(stream) - 1)))
        if op == "flip":
            stream[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del stream[pos : pos + data.draw(st.integers(1, 12))]
        else:
            stream[pos:pos] = data.draw(st.binary(min_size=1, max_size=12))
    codec = Http2Codec()
    fed = b""
    try:
        for piece in data.draw(chunks(bytes(stream))):
            for m in codec.feed(UPSTREAM, piece):
                fed += m.raw
    except DecodeError as exc:
        assert exc.reason in F.REASON_CODES
    else:
        assert bytes(stream).startswith(fed)


def test_frame_larger_than_the_peer_allows() -> None:
    codec = _connected()
    codec.feed(UPSTREAM, _request(1) + _request(3, end=False))
    big = F.frame(F.DATA, 0, 3, b"x" * 16385)
    exc = _fail(codec, UPSTREAM, big[:20])  # rejected from the header alone
    assert exc.reason == "frame_size_error"
    to_client, to_server = codec.error_reply(UPSTREAM, exc)
    assert _goaway(to_client) == (3, ErrorCode.FRAME_SIZE_ERROR, b"frame_size_error")
    assert _goaway(to_server)[:2] == (0, ErrorCode.FRAME_SIZE_ERROR)


def test_peer_max_frame_size_raises_the_limit() -> None:
    codec = _connected()
    codec.feed(DOWNSTREAM, F.build_settings([(F.SettingId.MAX_FRAME_SIZE, 32768)]))
    codec.feed(UPSTREAM, F.build_settings(ack=True))
    codec.feed(UPSTREAM, _request(1, end=False))
    (msg,) = codec.feed(UPSTREAM, F.frame(F.DATA, 0, 1, b"x" * 20000))
    assert msg.info["length"] == 20000
    assert _fail(codec, UPSTREAM, F.frame(F.DATA, 0, 1, b"x" * 32769)).reason == "frame_size_error"


def test_limits_bound_frames_too() -> None:
    codec = Http2Codec(limits=Limits(max_message_size=1000))
    codec.feed(UPSTREAM, START)
    assert _fail(codec, UPSTREAM, F.build_ping()[:0] + F.frame(0xEE, 0, 0, b"x" * 1001)).reason == (
        "frame_size_error"
    )


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (F.frame(F.DATA, 0, 0, b"x"), "protocol_error"),
        (F.frame(F.DATA, 0, 7, b"x"), "protocol_error"),  # idle stream
        (F.frame(F.SETTINGS, 0, 0, b"\0" * 5), "frame_size_error"),
        (F.frame(F.SETTINGS, 0, 1, b""), "protocol_error"),
        (F.frame(F.SETTINGS, F.FLAG_ACK, 0, b"\0" * 6), "frame_size_error"),
        (F.build_settings([(F.SettingId.ENABLE_PUSH, 2)]), "protocol_error"),
        (F.build_settings([(F.SettingId.INITIAL_WINDOW_SIZE, 2**31)]), "flow_control_error"),
        (F.build_settings([(F.SettingId.MAX_FRAME_SIZE, 100)]), "protocol_error"),
        (F.frame(F.PING, 0, 0, b"1234567"), "frame_size_error"),
        (F.frame(F.PING, 0, 1, b"12345678"), "protocol_error"),
        (F.frame(F.WINDOW_UPDATE, 0, 0, b"\0\0\0\0"), "protocol_error"),
        (F.frame(F.WINDOW_UPDATE, 0, 0, b"\0\0\0"), "frame_size_error"),
        (F.build_window_update(0, 2**31 - 1), "flow_control_error"),
        (F.frame(F.RST_STREAM, 0, 0, b"\0\0\0\0"), "protocol_error"),
        (F.frame(F.RST_STREAM, 0, 9, b"\0\0\0\0"), "protocol_error"),  # idle
        (F.frame(F.PRIORITY, 0, 1, b"\0" * 4), "frame_size_error"),
        (F.frame(F.PRIORITY, 0, 9, struct.pack(">LB", 9, 1)), "protocol_error"),
        (F.frame(F.GOAWAY, 0, 0, b"\0" * 7), "frame_size_error"),
        (F.frame(F.CONTINUATION, F.FLAG_END_HEADERS, 1, b""), "protocol_error"),
        (F.frame(F.PUSH_PROMISE, F.FLAG_END_HEADERS, 1, b"\0\0\0\2"), "protocol_error"),
        (F.frame(F.DATA, F.FLAG_PADDED, 1, b"\x05ab"), "protocol_error"),
        (F.frame(F.HEADERS, F.FLAG_END_HEADERS, 2, b"\x82"), "protocol_error"),  # even id
        (F.frame(F.HEADERS, F.FLAG_END_HEADERS, 1, b"\xff\xff"), "compression_error"),
    ],
)
def test_protocol_errors(frames: bytes, reason: str) -> None:
    codec = _connected()
    codec.feed(UPSTREAM, _request(1, end=False))
    assert _fail(codec, UPSTREAM, frames).reason == reason


def test_interleaved_frame_inside_header_block() -> None:
    codec = _connected()
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "http")])
    codec.feed(UPSTREAM, F.frame(F.HEADERS, 0, 1, block[:2]))
    exc = _fail(codec, UPSTREAM, F.build_ping())
    assert exc.reason == "protocol_error"
    # The other direction is not bound by this direction's block...
    codec2 = _connected()
    codec2.feed(UPSTREAM, F.frame(F.HEADERS, 0, 1, block[:2]))
    codec2.feed(DOWNSTREAM, F.build_ping())
    # ...but a CONTINUATION on another stream is an error.
    assert (
        _fail(codec2, UPSTREAM, F.frame(F.CONTINUATION, 4, 3, block[2:])).reason == "protocol_error"
    )


def test_bad_preface_and_settings_first() -> None:
    codec = Http2Codec()
    exc = _fail(codec, UPSTREAM, b"GET / HTTP/1.1\r\n")
    to_client, to_server = codec.error_reply(UPSTREAM, exc)
    # the server's SETTINGS never passed: the proxy's own (empty) comes first
    assert to_client[:9] == F.build_settings()
    assert _goaway(to_client[9:])[:2] == (0, ErrorCode.PROTOCOL_ERROR)
    assert to_server == b""  # the server never saw a preface
    codec = Http2Codec()
    assert _fail(codec, UPSTREAM, PREFACE + F.build_ping()).reason == "protocol_error"
    codec = Http2Codec()
    assert _fail(codec, DOWNSTREAM, F.build_ping()).reason == "protocol_error"


def test_server_offender_gets_its_own_last_stream_id() -> None:
    codec = _connected()
    codec.feed(UPSTREAM, _request(1) + _request(3) + _request(5, end=False))
    exc = _fail(codec, DOWNSTREAM, F.frame(F.DATA, 0, 0, b""))
    to_server, to_client = codec.error_reply(DOWNSTREAM, exc)
    assert _goaway(to_server)[:2] == (0, ErrorCode.PROTOCOL_ERROR)
    assert _goaway(to_client)[:2] == (5, ErrorCode.PROTOCOL_ERROR)


def test_open_streams_are_bounded() -> None:
    codec = Http2Codec(limits=Limits(max_pending=2))
    codec.feed(UPSTREAM, START)
    codec.feed(UPSTREAM, _request(1, end=False) + _request(3, end=False))
    exc = _fail(codec, UPSTREAM, _request(5, end=False))
    assert exc.reason == "too_many_streams"
    to_client = codec.error_reply(UPSTREAM, exc)[0]
    assert to_client[:9] == F.build_settings()  # no server SETTINGS passed yet
    assert _goaway(to_client[9:])[1] == ErrorCode.ENHANCE_YOUR_CALM


def test_a_goaway_to_the_client_never_comes_before_a_settings() -> None:
    """RFC 9113 3.4: a server's first frame is SETTINGS. A GOAWAY of the proxy's
    own that beats the server's SETTINGS to the client follows an empty SETTINGS;
    once the server's has passed, it goes alone. A server SETTINGS parsed in the
    read that failed never reached the client, so it does not count."""
    codec = Http2Codec()
    codec.feed(UPSTREAM, START)
    exc = _fail(codec, DOWNSTREAM, F.build_settings() + F.frame(F.DATA, 0, 0, b""))
    to_server, to_client = codec.error_reply(DOWNSTREAM, exc)
    assert (
        to_client[:9] == F.build_settings()
        and _goaway(to_client[9:])[1] == ErrorCode.PROTOCOL_ERROR
    )
    assert _goaway(to_server)[1] == ErrorCode.PROTOCOL_ERROR
    for reply in (codec.internal_error_reply()[0], codec.limit_reply("idle_timeout")[0]):
        assert reply[:9] == F.build_settings() and _goaway(reply[9:])
    codec = _connected()  # the server's SETTINGS passed
    for reply in (
        codec.internal_error_reply()[0],
        codec.limit_reply("idle_timeout")[0],
        codec.error_reply(UPSTREAM, _fail(codec, UPSTREAM, F.frame(F.DATA, 0, 0, b"")))[0],
    ):
        assert _goaway(reply)


def test_closed_streams_are_forgotten_and_late_frames_relayed() -> None:
    codec = _connected()
    codec.feed(UPSTREAM, _request(1, end=False))
    codec.feed(UPSTREAM, F.build_rst_stream(1, ErrorCode.CANCEL))
    assert codec.open_streams == 0
    # Frames the server sent before it saw the RST_STREAM still pass.
    late = F.build_header_block(1, b"\x88") + F.build_data(1, b"abc", end_stream=True)
    assert [m.kind for m in codec.feed(DOWNSTREAM, late)] == ["headers", "data"]
    assert codec.open_streams == 0


def test_header_list_size_is_bounded() -> None:
    codec = Http2Codec(limits=Limits(max_header_list_size=1000))
    codec.feed(UPSTREAM, START)
    block = hpack.Encoder().encode([(":method", "GET"), ("x-big", "v" * 2000)])
    exc = _fail(codec, UPSTREAM, F.build_header_block(1, block, max_frame_size=500))
    assert exc.reason == "header_list_too_large"


def test_goaway_does_not_name_streams_lost_with_the_bad_chunk() -> None:
    """A stream opened in the same read as the bad frame was never forwarded:
    the GOAWAY must leave the client free to retry it."""
    codec = _connected()
    codec.feed(UPSTREAM, _request(1))
    exc = _fail(codec, UPSTREAM, _request(3) + F.frame(F.DATA, 0, 0, b""))
    to_client, _ = codec.error_reply(UPSTREAM, exc)
    assert _goaway(to_client)[0] == 1
