"""Garbage, mutated and truncated input: DecodeError or messages, nothing else.

The deep profile (HYPOTHESIS_PROFILE=deep) runs 100k examples per test here.
Memory stays bounded because frames are capped by a small max_message_size
and the codec's buffers are checked after every feed.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Limits
from protoproxy_codecs.kafka import KafkaCodec, framing, rewrite, scanner
from protoproxy_codecs.strategies.kafka import all_versions, chunks, message_values

from .helpers import produce_request, record_batch

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
# KAFKA_FUZZ_EXAMPLES overrides the count (e.g. for a quick deep-ish local run).
_EXAMPLES = int(os.environ.get("KAFKA_FUZZ_EXAMPLES", "100000" if DEEP else "0"))
FUZZ = settings(max_examples=_EXAMPLES) if _EXAMPLES else settings()
# A 100k-example run takes many minutes: lift the default per-test timeout.
pytestmark = pytest.mark.timeout(0 if _EXAMPLES else 300)
LIMITS = Limits(max_message_size=4096, max_pending=16)

_SEEDS = [
    framing.encode_request(3, 12, 1, "c", {"topics": [{"name": "t"}]}),
    framing.encode_request(18, 3, 2, "c", {"client_software_name": "x"}),
    framing.encode_request(17, 0, 3, "c", {"mechanism": "PLAIN"}),
    produce_request(4, {"t": {0: record_batch(2)}}),
    produce_request(5, {"t": {0: record_batch(1)}}, acks=0, version=3),
    framing.encode_request(1, 12, 6, "c", {"topics": [{"topic": "t", "partitions": [{}]}]}),
]
_RESPONSES = [
    framing.encode_response(3, 12, 1, {"brokers": [{"node_id": 1, "host": "h", "port": 1}]}),
    framing.encode_response(18, 3, 2, {"api_keys": [{"api_key": 0, "max_version": 9}]}),
    framing.encode_response(17, 0, 3, {"error_code": 0, "mechanisms": ["PLAIN"]}),
    framing.encode_response(0, 9, 4, {"responses": [{"name": "t", "partition_responses": [{}]}]}),
    framing.encode_response(1, 12, 6, {"responses": [{"topic": "t", "partitions": [{}]}]}),
]


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if op == "flip" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] = draw(st.integers(0, 255))
        elif op == "cut" and buf:
            i = draw(st.integers(0, len(buf)))
            buf = buf[:i] + buf[i + draw(st.integers(0, 8)) :]
        elif op == "insert":
            i = draw(st.integers(0, len(buf)))
            buf[i:i] = draw(st.binary(max_size=8))
        elif op == "dup" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i:i] = buf[i : i + draw(st.integers(1, 16))]
    return bytes(buf)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "truncated"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    seeds = draw(st.lists(st.sampled_from(_SEEDS + _RESPONSES), min_size=1, max_size=4))
    data = b"".join(seeds)
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data)))]
    return _mutate(data, draw)


def _exercise(codec: KafkaCodec, direction, pieces: list[bytes]) -> None:
    try:
        for piece in pieces:
            for m in codec.feed(direction, piece):
                repr(m)
                _ = m.view
                if m.kind == "response":
                    rewrite.routing(m)
                    rewrite.rewrite_response(m, lambda n, h, p: ("proxy", 19092))
            assert len(codec._buf[direction]) <= LIMITS.max_message_size + 4
    except DecodeError as exc:
        assert exc.reason and str(exc)
    codec.take_exchanges()


@FUZZ
@given(streams(), streams(), st.data())
def test_only_decode_errors(up: bytes, down: bytes, data: st.DataObject) -> None:
    codec = KafkaCodec(limits=LIMITS)
    _exercise(codec, UPSTREAM, data.draw(chunks(up)))
    _exercise(codec, DOWNSTREAM, data.draw(chunks(down)))


_VERSIONS = all_versions()


@FUZZ
@given(st.sampled_from(_VERSIONS), st.booleans(), st.data())
def test_mutated_bodies_of_every_api(kv: tuple[int, int], request: bool, data: st.DataObject):
    """A valid frame of any API, then mutated: decoding its view never escapes."""
    key, version = kv
    body = data.draw(message_values(key, version, request))
    if request:
        frame = framing.encode_request(key, version, 9, "c", body)
    else:
        frame = framing.encode_response(key, version, 9, body)
    mutated = _mutate(frame[4:], data.draw)
    frame = struct.pack(">i", len(mutated)) + mutated
    codec = KafkaCodec(limits=Limits(max_message_size=1 << 16))
    if not request:  # a request must be pending for the response to decode
        pending = {"acks": 1} if key == 0 else {}  # defaults elsewhere; acks=0 wants no reply
        codec.feed(UPSTREAM, framing.encode_request(key, version, 9, "c", pending))
    _exercise(codec, UPSTREAM if request else DOWNSTREAM, [frame])
    try:
        if request:
            framing.decode_request(frame[4:])
        else:
            framing.decode_response(key, version, frame[4:])
    except DecodeError:
        pass
    # The hot-path scanner on every API's body, whatever the codec eagerly scans.
    start = data.draw(st.integers(4, max(4, len(frame))))
    try:
        scanner.scan(key, version, request, memoryview(frame), start)
    except scanner.ScanError:
        pass


def _uvarint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def test_tagged_field_bomb_is_linear() -> None:
    """Many tiny tagged sections: kafka-python would copy the frame at each one.

    The scanner still counts the records; the lazy view refuses to decode.
    pytest-timeout, not a timing assert, is what catches a regression here.
    """
    n = 50_000
    batch = record_batch(1)
    part = struct.pack(">i", 0) + _uvarint(len(batch) + 1) + batch + b"\x01\x09\x00"  # one tag
    body = b"\x00" + struct.pack(">hi", 1, 1000) + b"\x02\x02t" + _uvarint(n + 1) + part * n
    body += b"\x00\x00"
    head = struct.pack(">hhih", 0, 9, 1, 1) + b"c" + b"\x00"
    frame = struct.pack(">i", len(head) + len(body)) + head + body
    codec = KafkaCodec(limits=Limits(max_message_size=len(frame)))
    (m,) = codec.feed(UPSTREAM, frame)
    assert m.info["record_count"] == n  # totals count every partition entry
    assert m.view is None
    assert codec.undecodable[(0, 9, "request")] == 1
