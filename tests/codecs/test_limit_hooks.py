"""What codecs tell the runtime's memory budget and deadlines (buffered, unfinished,
limit_reply, release), driven with the codecs alone and a fake clock."""

from __future__ import annotations

import struct

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http1.codec import Http1Codec
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.codec import Http2Codec
from protoproxy_codecs.kafka.codec import KafkaCodec
from protoproxy_codecs.tcp import TcpCodec


class Clock:
    def __init__(self) -> None:
        self.now = 1000

    def __call__(self) -> int:
        return self.now


def test_kafka_partial_frame_is_buffered_and_unfinished_from_its_first_byte() -> None:
    clock = Clock()
    codec = KafkaCodec(clock=clock)
    assert codec.buffered() == 0 and codec.unfinished() is None
    codec.feed(UPSTREAM, struct.pack(">i", 1000) + b"\x00\x12")
    clock.now = 5000
    codec.feed(UPSTREAM, b"x" * 100)  # later bytes do not move the start
    assert codec.buffered() == 106
    assert codec.unfinished() == ("frame", 1000)
    codec.feed(DOWNSTREAM, b"\x00\x00")  # a partial response counts, but is no deadline
    assert codec.buffered() == 108 and codec.unfinished() == ("frame", 1000)
    codec.release()
    assert codec.buffered() == 0 and codec.unfinished() is None
    assert codec.limit_reply("frame_timeout") == (b"", b"")


def test_http1_unfinished_head_and_the_replies_it_allows() -> None:
    clock = Clock()
    codec = Http1Codec(clock=clock)
    codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: x\r\n")
    clock.now = 9000
    codec.feed(UPSTREAM, b"X-Slow: a")
    assert codec.unfinished() == ("header", 1000)
    assert codec.buffered() == len(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    to_client, to_server = codec.limit_reply("header_timeout")
    assert to_client.startswith(b"HTTP/1.1 408 ") and to_server == b""
    assert codec.limit_reply("memory_shed")[0].startswith(b"HTTP/1.1 503 ")
    codec.release()
    assert codec.buffered() == 0 and codec.unfinished() is None


def test_http1_says_nothing_while_an_earlier_request_awaits_its_response() -> None:
    codec = Http1Codec()
    codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n")
    assert codec.unfinished() is not None
    assert codec.limit_reply("header_timeout") == (b"", b"")  # it would pass for /'s answer


def test_http2_preface_settings_and_header_block() -> None:
    clock = Clock()
    codec = Http2Codec(clock=clock)
    assert codec.unfinished() == ("header", 0)  # the preface: from when the runtime saw it
    codec.feed(UPSTREAM, F.PREFACE[:10])
    assert codec.unfinished() == ("header", 0) and codec.buffered() == 10
    codec.feed(UPSTREAM, F.PREFACE[10:] + F.build_settings())
    assert codec.unfinished() is None and codec.buffered() == 0
    clock.now = 7000
    codec.feed(UPSTREAM, F.frame(F.HEADERS, 0, 1, b"\x82"))  # no END_HEADERS
    assert codec.unfinished() == ("header", 7000)
    assert codec.buffered() == 1
    to_client, to_server = codec.limit_reply("header_timeout")
    assert to_server == b""
    # the server sent no SETTINGS yet: the proxy's own (empty) precedes the GOAWAY
    assert to_client[:9] == F.build_settings()
    goaway = to_client[9:]
    assert goaway[3] == F.GOAWAY
    assert int.from_bytes(goaway[13:17], "big") == F.ErrorCode.ENHANCE_YOUR_CALM
    assert goaway[17:] == b"header_timeout"
    codec.release()
    assert codec.buffered() == 0


def test_tcp_holds_nothing() -> None:
    codec = TcpCodec()
    codec.feed(UPSTREAM, b"abc")
    assert codec.buffered() == 0 and codec.unfinished() is None and codec.release() is None
