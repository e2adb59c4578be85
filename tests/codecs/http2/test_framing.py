"""Framing: byte-exact relay, chunking independence, every frame type."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Message, Sniff
from protoproxy_codecs.http2 import PREFACE, Http2Codec
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.strategies.http2 import chunks, client_streams


def _summary(messages: list[Message]) -> list[tuple[Any, ...]]:
    out = []
    for m in messages:
        info = dict(m.info or {})
        info.pop("grpc_messages", None)
        out.append((m.direction, m.kind, m.raw, m.key, info))
    return out


def _feed_all(codec: Http2Codec, direction, pieces: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for piece in pieces:
        out.extend(codec.feed(direction, piece))
    return out


@given(st.data())
def test_any_chunking_gives_the_same_messages_byte_exact(data: st.DataObject) -> None:
    stream = data.draw(client_streams())
    whole = Http2Codec().feed(UPSTREAM, stream)
    pieces = data.draw(chunks(stream))
    chunked = _feed_all(Http2Codec(), UPSTREAM, pieces)
    assert b"".join(m.raw for m in whole) == stream
    assert _summary(chunked) == _summary(whole)
    assert whole[0].kind == "preface"


@given(st.data())
def test_one_byte_at_a_time(data: st.DataObject) -> None:
    stream = data.draw(client_streams())
    msgs = _feed_all(Http2Codec(), UPSTREAM, [stream[i : i + 1] for i in range(len(stream))])
    assert b"".join(m.raw for m in msgs) == stream
    assert _summary(msgs) == _summary(Http2Codec().feed(UPSTREAM, stream))


def test_one_message_per_frame_with_kinds_and_keys() -> None:
    codec = Http2Codec()
    frames = [
        F.build_settings([(F.SettingId.MAX_FRAME_SIZE, 20000)]),
        F.build_ping(b"12345678"),
        F.frame(0x0C, 0, 0, b"origin"),  # ORIGIN: unknown to us, passed through
        F.build_window_update(0, 10),
        F.build_goaway(0, 0, b"bye"),
    ]
    msgs = codec.feed(UPSTREAM, PREFACE + b"".join(frames))
    assert [m.kind for m in msgs] == [
        "preface",
        "settings",
        "ping",
        "unknown",
        "window_update",
        "goaway",
    ]
    assert [m.raw for m in msgs[1:]] == frames
    assert msgs[2].info == {"type": 6, "flags": 0, "stream_id": 0, "length": 8, "ack": False}
    assert msgs[3].info["type"] == 0x0C
    assert msgs[5].info["last_stream_id"] == 0 and msgs[5].info["error_code"] == 0


def test_header_block_completes_only_at_end_headers() -> None:
    import hpack

    codec = Http2Codec()
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/x"), (":scheme", "http")])
    data = (
        PREFACE
        + F.build_settings()
        + F.frame(F.HEADERS, F.FLAG_END_STREAM, 1, block[:3])
        + F.frame(F.CONTINUATION, 0, 1, block[3:5])
        + F.frame(F.CONTINUATION, F.FLAG_END_HEADERS, 1, block[5:])
    )
    msgs = codec.feed(UPSTREAM, data)
    assert [m.kind for m in msgs] == [
        "preface",
        "settings",
        "headers",
        "continuation",
        "continuation",
    ]
    assert "headers" not in msgs[2].info and "headers" not in msgs[3].info
    assert msgs[4].info["headers"] == ((":method", "GET"), (":path", "/x"), (":scheme", "http"))
    assert msgs[4].info["end_stream"] is True


def test_sniff() -> None:
    assert Http2Codec.sniff(PREFACE + b"xyz") is Sniff.YES
    assert Http2Codec.sniff(PREFACE[:5]) is Sniff.NEED_MORE
    assert Http2Codec.sniff(b"") is Sniff.NEED_MORE
    assert Http2Codec.sniff(b"GET / HTTP/1.1\r\n") is Sniff.NO


def test_registry_picks_http2() -> None:
    from protoproxy_codecs import registry

    assert registry.get("http2") is Http2Codec
    assert registry.sniff(PREFACE) == ("http2", Sniff.YES)


def test_server_direction_needs_no_preface_but_settings_first() -> None:
    codec = Http2Codec()
    msgs = codec.feed(DOWNSTREAM, F.build_settings() + F.build_ping())
    assert [m.kind for m in msgs] == ["settings", "ping"]


def test_builders_parse_back() -> None:
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    big = bytes(range(256)) * 200  # 51200 bytes -> 4 DATA frames at 16384
    codec.feed(
        UPSTREAM,
        codec.build_headers(UPSTREAM, 1, [(":method", "POST"), (":path", "/"), ("x", "y" * 40000)]),
    )
    frames = F.build_data(1, big, end_stream=True)
    msgs = codec.feed(UPSTREAM, frames)
    assert [m.kind for m in msgs] == ["data"] * 4
    assert msgs[-1].info["end_stream"] and not msgs[0].info["end_stream"]
    assert b"".join(bytes(memoryview(m.raw)[9:]) for m in msgs) == big


def test_bytearray_and_memoryview_input() -> None:
    import hpack

    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/")])
    data = PREFACE + F.build_settings() + F.build_header_block(1, block)
    for wrap in (bytearray, memoryview):
        msgs = Http2Codec().feed(UPSTREAM, wrap(data))
        assert all(type(m.raw) is bytes for m in msgs)
        assert msgs[-1].info["headers"] == ((":method", "GET"), (":path", "/"))
