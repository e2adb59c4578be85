"""h2c upgrade handover: stream 1 is the upgraded request, the preface still follows."""

from __future__ import annotations

import base64

import pytest

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError
from protoproxy_codecs.http2 import Http2Codec, State
from protoproxy_codecs.http2 import frames as F

from .peers import H2Pair, new_client


def _upgraded_pair() -> H2Pair:
    client = new_client()
    header = client.initiate_upgrade_connection()
    settings = base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4))
    codec = Http2Codec(
        upgraded=True,
        upgrade_request=[(":method", "GET"), (":path", "/upgraded"), (":authority", "h")],
        upgrade_settings=settings,
    )
    return H2Pair(codec=codec, client=client, upgrade_header=header)


def test_h2c_upgrade_response_on_stream_1() -> None:
    pair = _upgraded_pair()
    assert pair.messages[0].kind == "preface" and pair.messages[0].direction is UPSTREAM
    assert pair.codec.stream_state(1) is State.HALF_CLOSED_UP
    pair.server.send_headers(1, [(":status", "200")])
    pair.server.send_data(1, b"upgraded body", end_stream=True)
    pair.pump()
    (ex,) = pair.codec.take_exchanges()
    assert (ex.operation, ex.status, ex.response_bytes) == ("GET /upgraded", "200", 13)
    assert pair.codec.stream_state(1) is State.CLOSED
    # Next client stream is 3 and works as usual.
    sid = pair.client.get_next_available_stream_id()
    assert sid == 3
    pair.client.send_headers(
        sid,
        [(":method", "GET"), (":path", "/n"), (":scheme", "http"), (":authority", "h")],
        end_stream=True,
    )
    pair.pump()
    assert pair.codec.stream_state(3) is State.HALF_CLOSED_UP


def test_upgraded_stream_1_is_closed_to_client_data() -> None:
    codec = Http2Codec(upgraded=True)
    codec.feed(UPSTREAM, F.PREFACE + F.build_settings())
    codec.feed(DOWNSTREAM, F.build_settings())
    with pytest.raises(DecodeError):
        codec.feed(UPSTREAM, F.build_data(1, b"x"))


def test_default_codec_is_what_alpn_h2_picks() -> None:
    codec = Http2Codec()
    assert codec.stream_state(1) is State.IDLE
