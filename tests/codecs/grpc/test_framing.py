"""gRPC length-prefixed messages: reassembly, splitting, bounds; status helpers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError
from protoproxy_codecs.grpc import (
    Budget,
    MessageReader,
    decode_message,
    parse_timeout,
    rst_status,
    split_path,
    status_name,
)
from protoproxy_codecs.grpc.status import http_status
from protoproxy_codecs.strategies.http2 import chunks


def _encode(messages: list[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack(">BL", flag, len(p)) + p for flag, p in messages)


@given(st.lists(st.tuples(st.integers(0, 1), st.binary(max_size=300)), max_size=12), st.data())
def test_messages_reassembled_across_frames_and_split_within(
    messages: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    wire = _encode(messages)
    budget = Budget(10_000)
    reader = MessageReader(UPSTREAM, 5, max_size=1000, budget=budget)
    got = []
    for frame in data.draw(chunks(wire)):
        got.extend(reader.feed(memoryview(frame)))
    assert [(m.compressed, bytes(m.payload)) for m in got] == messages
    assert [m.index for m in got] == list(range(len(messages)))
    assert all(m.stream_id == 5 and m.direction is UPSTREAM for m in got)
    assert reader.count == len(messages)
    assert reader.bytes == sum(len(p) for _, p in messages)
    assert reader.pending == 0
    assert budget.left == 10_000  # every reservation was given back
    assert all(not m.truncated and m.length == len(m.payload) for m in got)


def test_message_in_one_frame_is_a_view_not_a_copy() -> None:
    frame = _encode([(0, b"abc"), (1, b"defg")])
    got = MessageReader(DOWNSTREAM, 1, 100).feed(memoryview(frame))
    assert [type(m.payload) for m in got] == [memoryview, memoryview]
    assert got[1].compressed == 1 and bytes(got[1].payload) == b"defg"


def test_message_size_is_bounded_before_buffering() -> None:
    reader = MessageReader(UPSTREAM, 1, max_size=10)
    with pytest.raises(DecodeError) as info:
        reader.feed(memoryview(struct.pack(">BL", 0, 11) + b"x"))
    assert info.value.reason == "message_too_large"
    reader = MessageReader(UPSTREAM, 1, max_size=10)
    reader.feed(memoryview(b"\0\0\0"))
    with pytest.raises(DecodeError):
        reader.feed(memoryview(b"\0\x0b"))


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0x8, "CANCELLED"),
        (0x7, "UNAVAILABLE"),
        (0x2, "INTERNAL"),
        (0x0, "INTERNAL"),
        (0x1, "INTERNAL"),
        (0xB, "RESOURCE_EXHAUSTED"),
        (0xC, "PERMISSION_DENIED"),
        (0x99, "INTERNAL"),
    ],
)
def test_rst_stream_mapping(code: int, status: str) -> None:
    assert rst_status(code) == status


def test_small_helpers() -> None:
    assert status_name(14) == "UNAVAILABLE" and status_name(99) == "UNKNOWN"
    assert decode_message("no%20such%20thing%3A%20%E2%9C%93") == "no such thing: \u2713"
    assert decode_message("bad%zzescape%") == "bad%zzescape%"
    assert parse_timeout("100m") == pytest.approx(0.1)
    assert parse_timeout("2H") == 7200.0
    assert parse_timeout("12345678n") == pytest.approx(0.012345678)
    assert parse_timeout("123456789S") is None
    assert parse_timeout("1x") is None and parse_timeout("S") is None
    assert split_path("/pkg.Svc/Get") == ("pkg.Svc", "Get")
    assert split_path("weird") == ("", "weird")
    assert http_status("404") == "UNIMPLEMENTED" and http_status("200") == "UNKNOWN"


def test_budget_bounds_what_all_streams_hold_together() -> None:
    budget = Budget(100)
    a = MessageReader(UPSTREAM, 1, max_size=1000, budget=budget)
    b = MessageReader(UPSTREAM, 3, max_size=1000, budget=budget)
    wire = _encode([(0, b"a" * 80)])
    assert a.feed(memoryview(wire[:10])) == []
    assert budget.left == 20 and a.pending == 5
    assert b.feed(memoryview(wire[:10])) == []  # 80 > 20 left: counted, not kept
    assert b.pending == 0
    (got_b,) = b.feed(memoryview(wire[10:]))
    assert got_b.truncated and got_b.length == 80 and got_b.payload == b""
    (got_a,) = a.feed(memoryview(wire[10:]))
    assert not got_a.truncated and bytes(got_a.payload) == b"a" * 80
    assert budget.left == 100
    a.feed(memoryview(wire[:10]))
    a.release()  # the call ended mid-message
    assert budget.left == 100 and a.pending == 0
    assert a.bytes == 80 and b.bytes == 80
