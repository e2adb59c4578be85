"""Switching a direction to re-encoding, against real h2 receivers."""

from __future__ import annotations

import h2.events

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Message

from .peers import H2Pair


def _request(i: int) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", f"/svc/{i % 5}"),
        (":authority", "a"),
        ("x-id", str(i)),
        ("x-pad", "p" * (i * 37 % 300)),
    ]


def _response(i: int) -> list[tuple[str, str]]:
    return [(":status", "200"), ("x-resp", str(i % 7)), ("x-n", str(i))]


def _reencoding(pair: H2Pair, drop_streams: set[int] | None = None):
    def hook(msg: Message) -> bytes | None:
        if drop_streams is not None and msg.key in drop_streams:
            return b""  # dropped: safe, the destination follows our encoder now
        if msg.kind in ("headers", "continuation"):
            if msg.info and "headers" in msg.info:
                return pair.codec.reencode_block(msg)
            return b""  # a block's earlier frames are replaced as a whole
        return None

    return hook


def test_reencoded_requests_decode_at_the_real_server() -> None:
    pair = H2Pair()
    c, s = pair.client, pair.server
    for i in range(150):
        if i == 20:
            pair.filters[UPSTREAM] = _reencoding(pair)
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, _request(i), end_stream=True)
        pair.pump()
        s.send_headers(sid, _response(i), end_stream=True)
        pair.pump()
    received = [
        list(e.headers) for e in pair.server_events if isinstance(e, h2.events.RequestReceived)
    ]
    assert received == [_request(i) for i in range(150)]


def test_dropped_and_injected_responses_in_a_reencoding_direction() -> None:
    pair = H2Pair()
    c, s = pair.client, pair.server
    error = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "14")]
    injected: set[int] = set()
    expected: dict[int, list[tuple[str, str]]] = {}
    for i in range(120):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, _request(i), end_stream=True)
        pair.pump()
        if i == 10:
            pair.filters[DOWNSTREAM] = _reencoding(pair, injected)
        if i > 10 and i % 3 == 0:
            injected.add(sid)  # the server's answer is dropped, ours sent instead
            pair.inject(
                DOWNSTREAM, pair.codec.build_headers(DOWNSTREAM, sid, error, end_stream=True)
            )
            expected[sid] = error
        else:
            expected[sid] = _response(i)
        s.send_headers(sid, _response(i), end_stream=True)
        pair.pump()
    got = {
        e.stream_id: list(e.headers)
        for e in pair.client_events
        if isinstance(e, h2.events.ResponseReceived)
    }
    assert got == expected
