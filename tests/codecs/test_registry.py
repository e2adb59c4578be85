"""The registry: codecs by name, and sniffing in the fixed order."""

from __future__ import annotations

import pytest

from protoproxy_codecs import registry
from protoproxy_codecs.base import Direction, Sniff
from protoproxy_codecs.tcp import TcpCodec
from tests.codecs.test_tls_hello import real_hello


def test_by_name():
    assert registry.get("tcp") is TcpCodec
    with pytest.raises(KeyError, match="unknown codec 'nope'"):
        registry.get("nope")
    assert {"tcp", "http", "http2", "kafka"} <= set(registry.names())


def test_sniff_order_tls_first():
    assert registry.sniff(real_hello("x.example", ["h2"])) == ("tls", Sniff.YES)
    assert registry.sniff(b"") == (None, Sniff.NEED_MORE)


def test_sniff_http2_preface_before_http1():
    assert registry.sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == ("http2", Sniff.YES)


def test_sniff_http1():
    assert registry.sniff(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == ("http", Sniff.YES)


def test_sniff_kafka():
    # ApiVersions v3 request, correlation id 1, client id "c"
    body = b"\x00\x12\x00\x03\x00\x00\x00\x01\x00\x01c\x00\x02k\x021\x00"
    frame = len(body).to_bytes(4, "big") + body
    assert registry.sniff(frame) == ("kafka", Sniff.YES)


def test_tcp_codec_is_opaque_chunks():
    codec = TcpCodec()
    msgs = codec.feed(Direction.UPSTREAM, b"abc")
    assert [m.raw for m in msgs] == [b"abc"]
    assert codec.feed(Direction.DOWNSTREAM, b"") == []
    assert codec.take_exchanges() == []
