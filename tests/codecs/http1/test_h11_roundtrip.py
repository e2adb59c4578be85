"""Round trips through an h11 client/server pair: the codec must see what h11 saw.

h11 writes the bytes (its own framing choices: chunked when no length is
given, Content-Length when it is), h11 reads them on the other side, and the
codec, fed the same wire bytes in arbitrary pieces, must report the same heads
and bodies.
"""

from __future__ import annotations

import h11
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http1 import Http1Codec

from .helpers import H11Pair, cuts, feed_pieces, heads, payload_by_key, raw_of

SECRETS = {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
NAMES = st.sampled_from([b"X-Thing", b"accept", b"Cookie", b"Authorization", b"User-Agent"])
VALUES = st.sampled_from([b"v", b"a b", b"", b"\x01ctl", b"\xff\xfe", b"x=1; y=2"])


@st.composite
def exchange_events(draw: st.DrawFn) -> tuple[list[object], list[object]]:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE"]))
    headers = [(b"Host", b"example.test"), *draw(st.lists(st.tuples(NAMES, VALUES), max_size=3))]
    body = draw(st.lists(st.binary(min_size=1, max_size=50), max_size=3))
    sized = draw(st.booleans())
    if sized:
        headers.append((b"Content-Length", str(sum(map(len, body))).encode()))
    else:  # h11 frames a request without either header as empty
        headers.append((b"Transfer-Encoding", b"chunked"))
    req: list[object] = [h11.Request(method=method, target=b"/p?q=1", headers=headers)]
    req += [h11.Data(data=d) for d in body]
    trailers = [] if sized else draw(st.lists(st.tuples(st.just(b"X-T"), VALUES), max_size=2))
    req.append(h11.EndOfMessage(headers=trailers))

    status = draw(st.sampled_from([200, 204, 304, 404, 503]))
    interim = [
        h11.InformationalResponse(status_code=s, headers=[])
        for s in draw(st.lists(st.sampled_from([100, 103]), max_size=2))
    ]
    rheaders = draw(
        st.lists(st.tuples(st.sampled_from([b"Set-Cookie", b"X-R"]), VALUES), max_size=2)
    )
    rbody = (
        []
        if (method == b"HEAD" or status in (204, 304))
        else draw(st.lists(st.binary(min_size=1, max_size=50), max_size=3))
    )
    if draw(st.booleans()) and status != 204:
        rheaders.append((b"Content-Length", str(sum(map(len, rbody))).encode()))
    resp: list[object] = [*interim, h11.Response(status_code=status, headers=rheaders)]
    resp += [h11.Data(data=d) for d in rbody]
    resp.append(h11.EndOfMessage())
    return req, resp


def _h11_heads(events: list[object]) -> list[tuple[object, ...]]:
    out = []
    for e in events:
        if isinstance(e, h11.Request | h11.Response | h11.InformationalResponse):
            hs = [(n, b"<redacted>" if n in SECRETS else v) for n, v in e.headers]
            first = (e.method, e.target) if isinstance(e, h11.Request) else (e.status_code,)
            out.append((*first, hs))
    return out


def _codec_heads(messages: list[object]) -> list[tuple[object, ...]]:
    out = []
    for m in messages:
        i = m.info
        first = (i["method"].encode(), i["target"].encode()) if "method" in i else (i["status"],)
        # h11 normalises these two values; everything else must be identical.
        hs = [(n, v.lower() if n == b"transfer-encoding" else v) for n, v in i["headers"]]
        out.append((*first, hs))
    return out


@given(exchanges=st.lists(exchange_events(), min_size=1, max_size=4), data=st.data())
def test_h11_pair_round_trip(exchanges, data) -> None:
    pair = H11Pair()
    seen_up: list[object] = []
    seen_down: list[object] = []
    for req, resp in exchanges:
        seen_up += pair.request(*req)
        seen_down += pair.respond(*resp)
        pair.next_cycle()
    codec = Http1Codec()
    up = bytes(pair.wire[UPSTREAM])
    down = bytes(pair.wire[DOWNSTREAM])
    out = feed_pieces(codec, UPSTREAM, data.draw(cuts(up)))
    out += feed_pieces(codec, DOWNSTREAM, data.draw(cuts(down)))

    assert raw_of(out, UPSTREAM) == up
    assert raw_of(out, DOWNSTREAM) == down
    assert _codec_heads(heads(out, UPSTREAM)) == _h11_heads(seen_up)
    assert _codec_heads(heads(out, DOWNSTREAM)) == _h11_heads(seen_down)

    def bodies(events: list[object]) -> dict[int, bytes]:
        result: dict[int, bytes] = {}
        key = -1
        for e in events:
            if isinstance(e, h11.Request | h11.Response):
                key += 1
                result[key] = b""
            elif isinstance(e, h11.Data):
                result[key] += e.data
        return result

    assert payload_by_key(out, UPSTREAM) == bodies(seen_up)
    assert payload_by_key(out, DOWNSTREAM) == bodies(seen_down)
    trailers = [m.info["trailers"] for m in out if m.kind == "end" and m.info]
    assert trailers == [
        list(e.headers) for e in seen_up if isinstance(e, h11.EndOfMessage) and e.headers
    ]
    assert len(codec.take_exchanges()) == len(exchanges)
