"""Upgrade, CONNECT, 100-continue and the h2c handover."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, BaseCodec, Direction, Limits, Message
from protoproxy_codecs.http1 import Http1Codec

from .helpers import cuts, raw_of

UPGRADE_REQ = b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
CONNECT_REQ = b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"


def kinds(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.direction.name, m.kind) for m in messages]


@given(
    early=st.binary(max_size=50),
    after_up=st.binary(min_size=1, max_size=50),
    after_down=st.binary(max_size=50),
    data=st.data(),
)
def test_upgrade_becomes_tunnel_both_ways(
    early: bytes, after_up: bytes, after_down: bytes, data: st.DataObject
) -> None:
    codec = Http1Codec()
    out = []
    for piece in data.draw(cuts(UPGRADE_REQ + early)):
        out += codec.feed(UPSTREAM, piece)
    # Bytes sent before the answer are forwarded at once, marked early.
    assert raw_of(out, UPSTREAM) == UPGRADE_REQ + early
    assert all(m.info == {"early": True} for m in out if m.kind == "tunnel")
    for piece in data.draw(cuts(SWITCH + after_down)):
        out += codec.feed(DOWNSTREAM, piece)
    out += codec.feed(UPSTREAM, after_up)
    # Every feed returns messages of its own direction only.
    assert raw_of(out, UPSTREAM) == UPGRADE_REQ + early + after_up
    assert raw_of(out, DOWNSTREAM) == SWITCH + after_down
    tunnel = [m for m in out if m.kind == "tunnel"]
    assert tunnel and all(m.key == 0 for m in tunnel)
    assert b"".join(m.raw for m in tunnel if m.direction == UPSTREAM) == early + after_up
    [exchange] = codec.take_exchanges()
    assert exchange.status == "101" and exchange.attrs["upgrade"] == "tunnel"
    # EOF in a tunnel is just the end of the stream.
    assert codec.eof(UPSTREAM) == [] and codec.eof(DOWNSTREAM) == []


def test_declined_upgrade_resumes_http() -> None:
    codec = Http1Codec()
    second = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    out = codec.feed(UPSTREAM, UPGRADE_REQ + second)
    # The pipelined request cannot be told from tunnel bytes yet: forwarded as early bytes.
    assert kinds(out) == [("UPSTREAM", "head"), ("UPSTREAM", "end"), ("UPSTREAM", "tunnel")]
    assert out[2].raw == second
    out = codec.feed(DOWNSTREAM, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert kinds(out) == [("DOWNSTREAM", "head"), ("DOWNSTREAM", "body"), ("DOWNSTREAM", "end")]
    # ...but once declined they are read as the request they were: the next answer pairs with it.
    out = codec.feed(DOWNSTREAM, b"HTTP/1.1 204 No Content\r\n\r\n")
    assert [(m.kind, m.key) for m in out] == [("head", 1), ("end", 1)]
    assert [(e.operation, e.status) for e in codec.take_exchanges()] == [
        ("GET /chat", "200"),
        ("GET /next", "204"),
    ]


@given(split=st.integers(1, 40), data=st.data())
def test_declined_upgrade_with_a_split_request(split: int, data: st.DataObject) -> None:
    """Early bytes end inside a request: the rest is not forwarded twice."""
    codec = Http1Codec()
    tail = b"POST /third HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    second = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    up = UPGRADE_REQ + second + tail[:split]
    out = []
    for piece in data.draw(cuts(up)):
        out += codec.feed(UPSTREAM, piece)
    out += codec.feed(DOWNSTREAM, b"HTTP/1.1 400 No\r\nContent-Length: 0\r\n\r\n")
    for piece in data.draw(cuts(tail[split:])):
        out += codec.feed(UPSTREAM, piece)
    out += codec.feed(DOWNSTREAM, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 2)
    assert raw_of(out, UPSTREAM) == UPGRADE_REQ + second + tail
    ops = [(e.operation, e.status, e.attrs["request_body_bytes"]) for e in codec.take_exchanges()]
    assert ops == [("GET /chat", "400", 0), ("GET /next", "200", 0), ("POST /third", "200", 3)]


def test_connect_tunnel() -> None:
    codec = Http1Codec()
    out = codec.feed(UPSTREAM, CONNECT_REQ + b"\x16\x03\x01early")
    assert out[0].info["method"] == "CONNECT" and out[0].info["target"] == "db.internal:5432"
    assert kinds(out)[-1] == ("UPSTREAM", "tunnel") and out[-1].raw == b"\x16\x03\x01early"
    out = codec.feed(DOWNSTREAM, b"HTTP/1.1 200 Connection Established\r\n\r\nserver-first")
    assert kinds(out) == [("DOWNSTREAM", "head"), ("DOWNSTREAM", "tunnel")]
    assert out[1].raw == b"server-first"
    assert codec.feed(UPSTREAM, b"HTTP/1.1 not parsed")[0].kind == "tunnel"
    [exchange] = codec.take_exchanges()
    assert exchange.operation == "CONNECT db.internal:5432" and exchange.status == "200"


def test_refused_connect_stays_http() -> None:
    codec = Http1Codec()
    codec.feed(UPSTREAM, CONNECT_REQ)
    out = codec.feed(DOWNSTREAM, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert kinds(out) == [("DOWNSTREAM", "head"), ("DOWNSTREAM", "end")]
    out = codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert kinds(out) == [("UPSTREAM", "head"), ("UPSTREAM", "end")]


@given(data=st.data())
def test_expect_100_continue(data: st.DataObject) -> None:
    codec = Http1Codec()
    head = b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    out = codec.feed(UPSTREAM, head)
    assert out[0].info["expect_continue"] is True
    out = codec.feed(DOWNSTREAM, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert out[0].info["interim"] is True and out[0].key == 0
    assert codec.take_exchanges() == []  # a 100 is not the response
    for piece in data.draw(cuts(b"hello")):
        codec.feed(UPSTREAM, piece)
    out = codec.feed(DOWNSTREAM, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert kinds(out) == [("DOWNSTREAM", "head"), ("DOWNSTREAM", "end")]
    [exchange] = codec.take_exchanges()
    assert exchange.status == "201" and exchange.attrs["request_body_bytes"] == 5


def test_expect_100_refused_early() -> None:
    """The server may answer the final status without reading the body."""
    codec = Http1Codec()
    codec.feed(
        UPSTREAM, b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    codec.feed(
        DOWNSTREAM, b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert codec.take_exchanges() == []  # the request has not ended yet
    codec.feed(UPSTREAM, b"hello")
    [exchange] = codec.take_exchanges()
    assert exchange.status == "413"


class RecordingH2(BaseCodec):
    """A stand-in for the HTTP/2 codec: one message per fed chunk, tagged."""

    name: ClassVar[str] = "http2"
    built: ClassVar[list[RecordingH2]] = []

    def __init__(self, limits: Limits, clock, request, settings) -> None:
        super().__init__(limits, clock)
        self.request = request
        self.settings = settings
        self.fed: list[tuple[Direction, bytes]] = []
        self.closed: list[Direction] = []
        RecordingH2.built.append(self)

    def feed(self, direction: Direction, data: bytes, at: int = 0) -> list[Message]:
        self.fed.append((direction, data))
        return [Message(direction, "h2", data)]

    def eof(self, direction: Direction) -> list[Message]:
        self.closed.append(direction)
        return []


H2C_REQ = (
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)
H2C_SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def test_h2c_upgrade_hands_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Http1Codec, "h2_factory", staticmethod(RecordingH2))
    RecordingH2.built.clear()
    codec = Http1Codec()
    codec.feed(UPSTREAM, H2C_REQ)
    out = codec.feed(DOWNSTREAM, H2C_SWITCH + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    assert [m.kind for m in out] == ["head", "h2"]
    out = codec.feed(UPSTREAM, PREFACE)
    assert [m.kind for m in out] == ["h2"]
    [h2] = RecordingH2.built
    assert h2.request[:4] == [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a"),
        (":path", "/"),
    ]
    assert (
        h2.settings == b"\x00\x03\x00\x00\x00\x64\x00\x04\x40\x00\x00\x00\x00\x02\x00\x00\x00\x00"
    )
    assert h2.fed == [(DOWNSTREAM, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), (UPSTREAM, PREFACE)]
    codec.eof(UPSTREAM)
    assert h2.closed == [UPSTREAM]
    [exchange] = codec.take_exchanges()
    assert exchange.attrs["upgrade"] == "h2c"


def test_h2c_with_the_real_http2_codec() -> None:
    """A real h2c upgrade, both ends played by the h2 library, observed by both codecs."""
    h2_config = pytest.importorskip("h2.config")
    h2_connection = pytest.importorskip("h2.connection")
    client = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
    server = h2_connection.H2Connection(h2_config.H2Configuration(client_side=False))
    settings = client.initiate_upgrade_connection()
    request = (
        b"GET /up HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
    )
    client_preface = client.data_to_send()
    server.initiate_upgrade_connection(settings)
    server.send_headers(1, [(":status", "200"), ("content-length", "2")])
    server.send_data(1, b"hi", end_stream=True)
    server_bytes = server.data_to_send()

    codec = Http1Codec()
    out = codec.feed(UPSTREAM, request)
    out += codec.feed(DOWNSTREAM, H2C_SWITCH + server_bytes)
    out += codec.feed(UPSTREAM, client_preface)
    assert raw_of(out, UPSTREAM) == request + client_preface
    assert raw_of(out, DOWNSTREAM) == H2C_SWITCH + server_bytes
    kinds_after = [m.kind for m in out if m.kind not in ("head", "end")]
    assert kinds_after and "tunnel" not in kinds_after  # HTTP/2 frames, not opaque bytes
    exchanges = codec.take_exchanges()
    assert exchanges[0].protocol == "http" and exchanges[0].attrs["upgrade"] == "h2c"
    h2 = [e for e in exchanges if e.protocol != "http"]
    assert [(e.key, e.status, e.operation) for e in h2] == [(1, "200", "GET /up")]
