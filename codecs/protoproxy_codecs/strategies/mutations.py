"""Protocol-valid abuse: frames whose framing holds but whose insides lie.

A fuzzer that sends random bytes mostly tests the first length check. These
mutations keep the outer frame right (the Kafka size prefix, the gRPC
length prefix, the HTTP/2 frame header's length are recomputed after every
change), so the bytes get past framing and reach the field parsers, where
they carry the values that break them: lengths and counts of -1, 0 and
2**31-1, over-long and unterminated varints, invalid UTF-8, and fields cut
short or duplicated. The header (Kafka's api key, version and correlation id;
HTTP/2's type and stream id) is left alone, so the receiver parses the body
with the schema it expects.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import strategies as st

from ..kafka import framing as kafka_framing
from .grpc import GrpcFrame
from .kafka import KafkaFrame

#: bad values to write over (or into) a body, by the field kind they imitate
BAD_VALUES: tuple[bytes, ...] = (
    struct.pack(">i", -1),  # null / "no length" where none is allowed
    struct.pack(">i", -2),
    struct.pack(">i", 2**31 - 1),  # an array or bytes length far past the frame
    struct.pack(">i", -(2**31)),
    struct.pack(">h", -1),
    struct.pack(">h", 2**15 - 1),
    struct.pack(">h", -(2**15)),
    b"\x00",  # a compact length of 0 (null)
    b"\xff\xff\xff\xff\x0f",  # the biggest 5-byte unsigned varint
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a 10-byte varint
    b"\x80\x80\x80\x80\x80\x80",  # an unterminated varint
    b"\xff\xfe\xc0\xaf",  # invalid UTF-8
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
)


def _mutate_body(draw: st.DrawFn, body: bytes) -> bytes:
    buf = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["overwrite", "insert", "cut", "dup", "flip"]))
        at = draw(st.integers(0, len(buf)))
        if op in ("overwrite", "insert"):
            value = draw(st.sampled_from(BAD_VALUES))
            end = at + len(value) if op == "overwrite" else at
            buf[at:end] = value
        elif op == "cut" and buf:
            del buf[at : at + draw(st.integers(1, 8))]
        elif op == "dup" and buf:
            buf[at:at] = buf[at : at + draw(st.integers(1, 16))]
        elif op == "flip" and at < len(buf):
            buf[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(buf)


def _kafka_body_at(f: KafkaFrame) -> int:
    raw = memoryview(f.frame)
    if f.is_request:
        return kafka_framing.parse_request_header(raw, 4, len(raw))[4]
    return kafka_framing.parse_response_header(raw, 4, len(raw), f.api_key, f.version)[1]


def _mutate(draw: st.DrawFn, item: Any) -> Any:
    if isinstance(item, KafkaFrame):
        at = _kafka_body_at(item)
        inside = item.frame[4:at] + _mutate_body(draw, item.frame[at:])
        return item._replace(frame=struct.pack(">i", len(inside)) + inside)
    if isinstance(item, GrpcFrame):
        payload = _mutate_body(draw, item.frame[5:])
        return item._replace(frame=item.frame[:1] + struct.pack(">L", len(payload)) + payload)
    if isinstance(item, bytes | bytearray):
        return _mutate_http2(draw, bytes(item))
    raise TypeError(
        f"mutations knows KafkaFrame, GrpcFrame and HTTP/2 frame bytes, not {type(item).__name__}"
    )


def _mutate_http2(draw: st.DrawFn, data: bytes) -> bytes:
    """Frames back to back (no preface): one frame's payload mutated, its length fixed."""
    spans = []
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        spans.append((pos, pos + 9 + length))
        pos += 9 + length
    if not spans or pos != len(data):
        raise ValueError("HTTP/2 mutations want whole frames, back to back, without a preface")
    start, end = draw(st.sampled_from(spans))
    payload = _mutate_body(draw, data[start + 9 : end])[: (1 << 24) - 1]
    head = len(payload).to_bytes(3, "big") + data[start + 3 : start + 9]
    return data[:start] + head + payload + data[end:]


def mutations(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`strategy`'s frames with bad values inside and their framing intact.

    Takes `kafka_requests()`/`kafka_responses()` (KafkaFrame: `.frame` mutated,
    `.value` is what it was before), `grpc_messages()` (GrpcFrame), or
    `http2_frames()` (bytes).
    """

    @st.composite
    def mutated(draw: st.DrawFn) -> Any:
        return _mutate(draw, draw(strategy))

    return mutated()
