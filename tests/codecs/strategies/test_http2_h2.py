"""http2_conversations against h2 (the PyPI library) as the peer, and our codec: no error.

h2 is an independent implementation, so a conversation it refuses is a bug
in the strategy (or a case worth arguing about with h2), never in our codec.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import hpack
from hypothesis import given

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.codec import Http2Codec
from protoproxy_codecs.strategies import (
    Http2Conversation,
    hpack_blocks,
    http2_conversations,
    http2_frames,
)


def _feed(conn: h2.connection.H2Connection, pieces: list[bytes]) -> list[h2.events.Event]:
    events: list[h2.events.Event] = []
    for piece in pieces:
        events += conn.receive_data(piece)  # raises h2.exceptions.ProtocolError on a violation
        conn.data_to_send()
    return events


@given(http2_conversations("client"))
def test_client_conversation_is_accepted_by_an_h2_server(conv: Http2Conversation) -> None:
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    events = _feed(server, [conv.data])
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    assert any(isinstance(e, h2.events.RequestReceived) for e in events)


@given(http2_conversations("server"))
def test_server_conversation_is_accepted_by_an_h2_client(conv: Http2Conversation) -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    for sid in conv.streams:
        assert client.get_next_available_stream_id() == sid
        headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "h")]
        client.send_headers(sid, headers, end_stream=True)
    client.data_to_send()
    events = _feed(client, [conv.data])
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    got = {e.stream_id for e in events if isinstance(e, h2.events.ResponseReceived)}
    assert got == set(conv.streams)


@given(http2_frames())
def test_every_frame_parses_as_one_frame(frame: bytes) -> None:
    length = int.from_bytes(frame[:3], "big")
    if frame[3] == F.HEADERS:  # a header block may bring CONTINUATION frames along
        assert len(frame) >= 9 + length
    else:
        assert len(frame) == 9 + length


@given(hpack_blocks())
def test_hpack_blocks_decode_in_order(blocks: list) -> None:
    decoder = hpack.Decoder()
    for b in blocks:
        assert [(n, v) for n, v in decoder.decode(b.block)] == b.headers


@given(http2_conversations("client"))
def test_client_conversation_decodes_in_our_codec(conv: Http2Conversation) -> None:
    codec = Http2Codec()
    for m in codec.feed(UPSTREAM, conv.data):  # DecodeError would fail the test
        repr(m)


@given(http2_conversations("server"))
def test_server_conversation_decodes_in_our_codec(conv: Http2Conversation) -> None:
    codec = Http2Codec()
    encoder = hpack.Encoder()
    client = bytearray(F.PREFACE + F.build_settings())
    for sid in conv.streams:
        block = encoder.encode(
            [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "h")]
        )
        client += F.build_header_block(sid, block, end_stream=True)
    codec.feed(UPSTREAM, bytes(client))
    for m in codec.feed(DOWNSTREAM, conv.data):
        repr(m)
