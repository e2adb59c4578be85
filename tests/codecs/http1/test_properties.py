"""Generated conversations under arbitrary chunking: same messages, byte-exact, paired."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http1 import Http1Codec
from protoproxy_codecs.strategies.http1 import (
    Req,
    Resp,
    conversations,
    render_request,
    render_response,
)

from .helpers import cuts, heads, payload_by_key, raw_of


class Ticker:
    """A deterministic clock: every reading is one tick later."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now += 1
        return self.now


def _schedule(
    data: st.DataObject, convo: list[tuple[Req, Resp]], mode: str
) -> list[tuple[int, bytes]]:
    """(direction, bytes) feeds in an order a real connection could produce."""
    up_parts = [render_request(r) for r, _ in convo]
    down = [render_response(s) for _, s in convo]
    feeds: list[tuple[int, bytes]] = []
    if mode == "pipelined":
        for piece in data.draw(cuts(b"".join(h + b for h, b in up_parts))):
            feeds.append((UPSTREAM, piece))
        for piece in data.draw(cuts(b"".join(down))):
            feeds.append((DOWNSTREAM, piece))
    elif mode == "lockstep":
        for (h, b), d in zip(up_parts, down, strict=True):
            feeds += [(UPSTREAM, p) for p in data.draw(cuts(h + b))]
            feeds += [(DOWNSTREAM, p) for p in data.draw(cuts(d))]
    else:  # early: each response arrives before its request body
        for (h, b), d in zip(up_parts, down, strict=True):
            feeds += [(UPSTREAM, p) for p in data.draw(cuts(h))]
            feeds += [(DOWNSTREAM, p) for p in data.draw(cuts(d))]
            feeds += [(UPSTREAM, p) for p in data.draw(cuts(b))]
    return feeds


@given(
    convo=conversations(), mode=st.sampled_from(["pipelined", "lockstep", "early"]), data=st.data()
)
def test_generated_conversations(
    convo: list[tuple[Req, Resp]], mode: str, data: st.DataObject
) -> None:
    codec = Http1Codec(clock=Ticker())
    feeds = _schedule(data, convo, mode)
    out = []
    for direction, piece in feeds:
        out.extend(codec.feed(direction, piece))
    out.extend(codec.eof(DOWNSTREAM))

    # Byte-exact per direction.
    assert raw_of(out, UPSTREAM) == b"".join(p for d, p in feeds if d == UPSTREAM)
    assert raw_of(out, DOWNSTREAM) == b"".join(p for d, p in feeds if d == DOWNSTREAM)

    # Heads: right values, right keys, interim ones marked.
    req_heads = heads(out, UPSTREAM)
    assert [(m.key, m.info["method"], m.info["target"]) for m in req_heads] == [
        (i, r.method, r.target) for i, (r, _) in enumerate(convo)
    ]
    resp_heads = heads(out, DOWNSTREAM)
    expected = []
    for i, (_, s) in enumerate(convo):
        expected += [(i, st_, True) for st_ in s.interim]
        expected.append((i, s.status, False))
    assert [(m.key, m.info["status"], bool(m.info.get("interim"))) for m in resp_heads] == expected

    # Bodies, de-framed, and exactly one end per message.
    assert payload_by_key(out, UPSTREAM) == {i: r.body for i, (r, _) in enumerate(convo)}
    assert payload_by_key(out, DOWNSTREAM) == {i: s.body for i, (_, s) in enumerate(convo)}
    for direction in (UPSTREAM, DOWNSTREAM):
        ends = [m.key for m in out if m.direction == direction and m.kind == "end"]
        assert ends == list(range(len(convo)))
    # Every message belongs to the exchange whose head came before it.
    for direction in (UPSTREAM, DOWNSTREAM):
        current = None
        for m in out:
            if m.direction != direction:
                continue
            if m.kind == "head":
                current = m.key
            assert m.key == current

    # One exchange per pair, in request order, with consistent figures.
    exchanges = sorted(codec.take_exchanges(), key=lambda e: e.key)
    assert [(e.key, e.status, e.operation) for e in exchanges] == [
        (i, str(s.status), f"{r.method} {r.target.partition('?')[0]}")
        for i, (r, s) in enumerate(convo)
    ]
    for e, (r, s) in zip(exchanges, convo, strict=True):
        assert e.attrs["request_body_bytes"] == len(r.body)
        assert e.attrs["response_body_bytes"] == len(s.body)
        assert e.attrs["status_class"] == f"{s.status // 100}xx"
        assert e.finished > e.started
    assert sum(e.request_bytes for e in exchanges) == len(raw_of(out, UPSTREAM))
    assert sum(e.response_bytes for e in exchanges) == len(raw_of(out, DOWNSTREAM))


@given(convo=conversations(max_exchanges=3))
def test_credentials_never_exposed(convo: list[tuple[Req, Resp]]) -> None:
    codec = Http1Codec()
    up = b"".join(h + b for h, b in (render_request(r) for r, _ in convo))
    out = codec.feed(UPSTREAM, up) + codec.feed(
        DOWNSTREAM, b"".join(render_response(s) for _, s in convo)
    )
    for m in out:
        if m.kind == "head":
            for name, value in m.info["headers"]:
                if name in (b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"):
                    assert value == b"<redacted>"
