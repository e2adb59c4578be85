"""Differential test of head parsing against h11 on the same (often invalid) bytes.

The codec has its own parser because it is several times faster than driving
h11 (bench/http1_decode.py); this test is what keeps it h11's twin: for every
input, both accept or both reject, and when both accept they read the same
fields. The one deliberate difference, a request with both Content-Length and
Transfer-Encoding (a smuggling vector a byte-exact proxy cannot repair), is
excluded here and tested in test_errors.
"""

from __future__ import annotations

import h11
from hypothesis import example, given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Direction
from protoproxy_codecs.http1 import Http1Codec


def pick(valid: list[bytes], invalid: list[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly valid pieces, so that heads are often valid but for one detail."""
    return st.sampled_from(valid * 8 + invalid)


METHOD = pick([b"GET", b"POST", b"M-SEARCH"], [b"get", b"G ET", b"", b"GE\x00T", b"PRI"])
TARGET = pick([b"/", b"/a?b=c", b"*", b"http://h/x"], [b"/a b", b"/\x7f", b"/\xe9", b""])
VERSION = pick([b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/11", b"http/1.1", b"HTTP/1.1 ", b"HTTP/2.0"])
SEP = pick([b" "], [b"  ", b"\t"])
NAME = pick(
    [
        b"Host",
        b"X-A",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Connection",
        b"Expect",
        b"Upgrade",
    ],
    [b"X A", b"", b"X\x00", b"\xe9"],
)
COLON = pick([b":", b": ", b":\t", b":  "], [b" :"])
VALUE = pick(
    [
        b"v",
        b"a b",
        b"v ",
        b"",
        b"\x01",
        b"5",
        b"5, 5",
        b"chunked",
        b"Chunked",
        b"\xff",
        b"close",
        b"100-continue",
    ],
    [b"\x00", b"5, 6", b"-1", b"gzip, chunked", b"a\rb", b"1" * 21],
)
EOL = pick([b"\r\n", b"\n"], [b"\r\r\n"])


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 9)) == 0:
            out += draw(st.sampled_from([b" folded", b"\tx"])) + draw(EOL)
        else:
            out += draw(NAME) + draw(COLON) + draw(VALUE) + draw(EOL)
    return out + draw(EOL)


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=60)) + b"\r\n\r\n"
    line = draw(METHOD) + draw(SEP) + draw(TARGET) + draw(SEP) + draw(VERSION) + draw(EOL)
    host = draw(st.sampled_from([b"Host: a\r\n"] * 4 + [b""]))
    return line + host + draw(header_blocks())


@st.composite
def response_heads(draw: st.DrawFn) -> bytes:
    status = draw(pick([b"200", b"404", b"204"], [b"99", b"2000", b"20x"]))
    reason = draw(pick([b" OK", b"", b" ", b" Not\tFound", b" \xe9"], [b" a\x00b", b"OK"]))
    return draw(VERSION) + b" " + status + reason + draw(EOL) + draw(header_blocks())


def _codec_first_head(direction: Direction, data: bytes, codec: Http1Codec) -> object:
    """The first head the codec reports, "reject", or None if it wants more bytes."""
    try:
        for i in range(len(data)):
            for m in codec.feed(direction, data[i : i + 1]):
                if m.kind == "head":
                    return m.info
    except DecodeError as e:
        return ("reject", e.reason)
    return None


def _h11_first(conn: h11.Connection, data: bytes) -> object:
    try:
        conn.receive_data(data)
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return "reject"
    return None if event is h11.NEED_DATA else event


def _names_like_h11(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Header names as h11 lists them.

    h11 keeps only the first of repeated equal Content-Length fields; the
    codec reports what was on the wire.
    """
    names = [n for n, _ in headers]
    while names.count(b"content-length") > 1:
        del names[len(names) - 1 - names[::-1].index(b"content-length")]
    return names


def _smuggling(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {n for n, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


@given(request_heads())
@example(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n")
@example(b"GET / HTTP/1.1\r\n folded\r\nHost: a\r\n\r\n")
@example(b"GET / HTTP/1.0\r\n\r\n")
@example(
    data=b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length:5\r\nContent-Length:5\r\n\r\n",
).via("discovered failure")
def test_request_heads_agree_with_h11(data: bytes) -> None:
    theirs = _h11_first(h11.Connection(h11.SERVER), data)
    ours = _codec_first_head(UPSTREAM, data, Http1Codec())
    if theirs == "reject":
        assert isinstance(ours, tuple), (data, ours)
        return
    if isinstance(ours, tuple) and ours[1] == "smuggling":
        assert isinstance(theirs, h11.Request) and _smuggling(list(theirs.headers))
        return
    if theirs is None:
        assert ours is None, (data, ours)
        return
    assert isinstance(ours, dict), (data, ours)
    assert ours["method"].encode() == theirs.method
    assert ours["target"].encode() == theirs.target
    assert ours["version"].encode() == theirs.http_version
    assert _names_like_h11(ours["headers"]) == [n for n, _ in theirs.headers]


@given(response_heads())
@example(b"HTTP/1.1 200\r\n\r\n")
@example(b"HTTP/1.1 200 OK\r\nContent-Length:5\r\nContent-Length:5\r\n\r\n")
def test_response_heads_agree_with_h11(data: bytes) -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    theirs = _h11_first(client, data)
    codec = Http1Codec()
    codec.feed(UPSTREAM, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    ours = _codec_first_head(DOWNSTREAM, data, codec)
    if theirs == "reject":
        assert isinstance(ours, tuple), (data, ours)
        return
    if theirs is None:
        assert ours is None, (data, ours)
        return
    assert isinstance(ours, dict), (data, ours)
    assert ours["status"] == theirs.status_code
    assert ours["reason"].encode("latin-1") == theirs.reason
    assert _names_like_h11(ours["headers"]) == [n for n, _ in theirs.headers]
