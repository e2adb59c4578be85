"""mutations keep framing: our codecs decode the result or raise DecodeError, nothing else."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Limits
from protoproxy_codecs.grpc.framing import MessageReader
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.codec import Http2Codec
from protoproxy_codecs.kafka import KafkaCodec, framing
from protoproxy_codecs.strategies import (
    KafkaFrame,
    grpc_messages,
    http2_frames,
    kafka_requests,
    kafka_responses,
    mutations,
)

LIMITS = Limits(max_message_size=1 << 20)


def _size_is_right(frame: bytes) -> None:
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4


@given(mutations(kafka_requests()))
def test_mutated_requests(f: KafkaFrame) -> None:
    _size_is_right(f.frame)
    codec = KafkaCodec(limits=LIMITS)
    try:
        (m,) = codec.feed(UPSTREAM, f.frame)
        _ = m.view  # the lazy body decode is part of "decodes it"
        repr(m)
    except DecodeError as exc:
        assert exc.reason
    try:
        header, _ = framing.decode_request(f.frame[4:])
        assert (header.api_key, header.api_version) == (f.api_key, f.version)
    except DecodeError as exc:
        assert exc.reason


@given(mutations(kafka_responses()))
def test_mutated_responses(f: KafkaFrame) -> None:
    _size_is_right(f.frame)
    codec = KafkaCodec(limits=LIMITS)
    pending = {"acks": 1} if f.api_key == 0 else {}
    codec.feed(
        UPSTREAM, framing.encode_request(f.api_key, f.version, f.correlation_id, "c", pending)
    )
    try:
        for m in codec.feed(DOWNSTREAM, f.frame):
            _ = m.view
            repr(m)
    except DecodeError as exc:
        assert exc.reason
    try:
        framing.decode_response(f.api_key, f.version, f.frame[4:])
    except DecodeError as exc:
        assert exc.reason


@given(st.data())
def test_mutated_grpc_messages(descriptor_set, data: st.DataObject) -> None:
    f = data.draw(mutations(grpc_messages(descriptor_set, "fuzz.v1.Catalog/GetItem")))
    assert struct.unpack(">L", f.frame[1:5])[0] == len(f.frame) - 5
    (m,) = MessageReader(UPSTREAM, 1, max_size=1 << 20).feed(memoryview(f.frame))
    assert m.length == len(f.frame) - 5


@given(mutations(http2_frames()))
def test_mutated_http2_frames(frame: bytes) -> None:
    pos = 0
    while pos < len(frame):  # every frame header's length still fits
        pos += 9 + int.from_bytes(frame[pos : pos + 3], "big")
    assert pos == len(frame)
    codec = Http2Codec(limits=LIMITS)
    stream = F.PREFACE + F.build_settings() + frame
    try:
        for m in codec.feed(UPSTREAM, stream):
            repr(m)
    except DecodeError as exc:
        assert exc.reason
