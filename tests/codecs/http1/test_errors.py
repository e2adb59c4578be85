"""Bad bytes raise DecodeError and nothing else; limits hold; error replies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Limits, Sniff
from protoproxy_codecs.http1 import Http1Codec
from protoproxy_codecs.strategies.http1 import conversations, render_request, render_response

from .helpers import cuts


@given(garbage=st.binary(max_size=400), data=st.data())
def test_garbage_only_raises_decode_error(garbage: bytes, data: st.DataObject) -> None:
    for direction in (UPSTREAM, DOWNSTREAM):
        codec = Http1Codec()
        if direction == DOWNSTREAM:
            codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        seen = b""
        try:
            for piece in data.draw(cuts(garbage)):
                seen += b"".join(m.raw for m in codec.feed(direction, piece))
            codec.eof(direction)
        except DecodeError as e:
            assert e.reason
        assert garbage.startswith(seen)


@given(convo=conversations(max_exchanges=3), data=st.data())
def test_mutated_streams_only_raise_decode_error(convo, data: st.DataObject) -> None:
    up = b"".join(h + b for h, b in (render_request(r) for r, _ in convo))
    down = b"".join(render_response(s) for _, s in convo)
    which = data.draw(st.sampled_from([UPSTREAM, DOWNSTREAM]))
    target = bytearray(up if which == UPSTREAM else down)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, max(0, len(target) - 1)))
        if op == "flip" and target:
            target[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            target[i:i] = data.draw(
                st.sampled_from([b"\r\n", b"\n", b":", b" ", b"0", b"\x00", b";"])
            )
        elif target:
            del target[i]
    up_bytes, down_bytes = (bytes(target), down) if which == UPSTREAM else (up, bytes(target))
    codec = Http1Codec()
    seen = {UPSTREAM: b"", DOWNSTREAM: b""}
    try:
        for direction, payload in ((UPSTREAM, up_bytes), (DOWNSTREAM, down_bytes)):
            for piece in data.draw(cuts(payload)):
                for m in codec.feed(direction, piece):
                    seen[m.direction] += m.raw
        codec.eof(DOWNSTREAM)
    except DecodeError:
        pass
    assert up_bytes.startswith(seen[UPSTREAM])
    assert down_bytes.startswith(seen[DOWNSTREAM])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "bad_host"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "bad_host"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "bad_content_length",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "smuggling",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "bad_transfer_encoding",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad_chunk"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy", "bad_chunk"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", "bad_header"),
        (b"GET /\x00 HTTP/1.1\r\n\r\n", "bad_request_line"),
        (b"\x16\x03\x01\x00", "bad_start"),
    ],
)
def test_rejections(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        Http1Codec().feed(UPSTREAM, data)
    assert info.value.reason == reason


def test_limits() -> None:
    codec = Http1Codec(Limits(max_header_list_size=100))
    with pytest.raises(DecodeError, match="head larger"):
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nX: " + b"a" * 200)
    codec = Http1Codec(max_headers=3)
    with pytest.raises(DecodeError) as info:
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 3 + b"\r\n")
    assert info.value.reason == "too_many_headers"
    codec = Http1Codec(Limits(max_message_size=10))
    with pytest.raises(DecodeError) as info:
        codec.feed(
            UPSTREAM, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n"
        )
    assert info.value.reason == "chunk_too_large"
    codec = Http1Codec(max_line=16)
    with pytest.raises(DecodeError) as info:
        codec.feed(
            UPSTREAM,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 20,
        )
    assert info.value.reason == "bad_chunk"
    codec = Http1Codec(Limits(max_pending=2))
    with pytest.raises(DecodeError) as info:
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
    assert info.value.reason == "too_many_pending"


def test_no_parsing_after_an_error() -> None:
    codec = Http1Codec()
    with pytest.raises(DecodeError):
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\nBad\r\n\r\n")
    with pytest.raises(DecodeError) as info:
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert info.value.reason == "bad_header"


def test_truncation_at_eof() -> None:
    codec = Http1Codec()
    codec.feed(UPSTREAM, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(DecodeError) as info:
        codec.eof(UPSTREAM)
    assert info.value.reason == "truncated"


def test_close_delimited_response_ends_at_eof() -> None:
    codec = Http1Codec()
    codec.feed(UPSTREAM, b"GET / HTTP/1.0\r\n\r\n")
    out = codec.feed(DOWNSTREAM, b"HTTP/1.0 200 OK\r\n\r\nall of it")
    assert [m.kind for m in out] == ["head", "body"]
    assert codec.take_exchanges() == []
    assert [m.kind for m in codec.eof(DOWNSTREAM)] == ["end"]
    [exchange] = codec.take_exchanges()
    assert exchange.attrs["response_body_bytes"] == 9


def test_unsolicited_response_and_bad_switch() -> None:
    with pytest.raises(DecodeError) as info:
        Http1Codec().feed(DOWNSTREAM, b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert info.value.reason == "unsolicited_response"
    codec = Http1Codec()
    codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(DecodeError) as info:
        codec.feed(DOWNSTREAM, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert info.value.reason == "bad_switch"


def test_error_replies() -> None:
    codec = Http1Codec()
    try:
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    except DecodeError as e:
        to_client, to_server = codec.error_reply(UPSTREAM, e)
    assert to_client.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n" in to_client and to_server == b""

    codec = Http1Codec()
    codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    try:
        codec.feed(DOWNSTREAM, b"HTTP/1.1 2000 Huh\r\n\r\n")
    except DecodeError as e:
        to_server, to_client = codec.error_reply(DOWNSTREAM, e)
    assert to_client.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and to_server == b""
    # A bad request behind one still awaiting its response: a 400 would answer the wrong one.
    codec = Http1Codec()
    try:
        codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nBad\r\n\r\n")
    except DecodeError as e:
        assert codec.error_reply(UPSTREAM, e) == (b"", b"")
    # The reply is itself a valid, complete response.
    check = Http1Codec()
    check.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [m.kind for m in check.feed(DOWNSTREAM, to_client)] == ["head", "body", "end"]

    codec = Http1Codec()
    codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    codec.feed(DOWNSTREAM, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        codec.feed(DOWNSTREAM, b"zz\r\n")
    except DecodeError as e:
        # Mid-response there is no second status line to give: just close.
        assert codec.error_reply(DOWNSTREAM, e) == (b"", b"")


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (b"GET / HTTP/1.1", Sniff.YES),
        (b"OPTIONS * HTTP/1.1", Sniff.YES),
        (b"CONNECT a:1 HTTP/1.1", Sniff.YES),
        (b"PATCH ", Sniff.YES),
        (b"", Sniff.NEED_MORE),
        (b"GE", Sniff.NEED_MORE),
        (b"DELETE", Sniff.NEED_MORE),
        (b"PRI * HTTP/2.0\r\n", Sniff.NO),
        (b"GETX / HTTP/1.1", Sniff.NO),
        (b"get / HTTP/1.1", Sniff.NO),
        (b"\x16\x03\x01", Sniff.NO),
        (b"\x00\x00\x00\x10", Sniff.NO),
    ],
)
def test_sniff(head: bytes, verdict: Sniff) -> None:
    assert Http1Codec.sniff(head) is verdict


def test_registry_finds_the_codec() -> None:
    from protoproxy_codecs import registry

    assert registry.get("http") is Http1Codec
    assert registry.sniff(b"POST /x HTTP/1.1\r\n") == ("http", Sniff.YES)
