"""The flood rules (flood.py): each one trips on its attack, within a bounded
number of frames, before the offending read's frames are handed out; normal
traffic never trips them."""

from __future__ import annotations

import struct

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import (
    DOWNSTREAM,
    UPSTREAM,
    FloodError,
    Http2FloodLimits,
    Limits,
)
from protoproxy_codecs.http2 import PREFACE, ErrorCode, Http2Codec
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.strategies.http2 import chunks

REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]
SECOND = 1_000_000_000


class Clock:
    """The codec's injected clock: time moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = SECOND

    def __call__(self) -> int:
        return self.now


def _codec(clock: Clock | None = None, **rules: float) -> Http2Codec:
    codec = Http2Codec(Limits(http2=Http2FloodLimits(**rules)), clock or Clock())  # type: ignore[arg-type]
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    codec.feed(DOWNSTREAM, F.build_settings())
    codec.feed(UPSTREAM, F.build_settings(ack=True))
    codec.feed(DOWNSTREAM, F.build_settings(ack=True))
    return codec


def _request(enc: hpack.Encoder, sid: int, end: bool = True) -> bytes:
    return F.build_header_block(sid, enc.encode(REQUEST), end_stream=end)


def _flood(codec: Http2Codec, pieces: list[bytes], per_feed: int = 1) -> tuple[FloodError, int]:
    """Feed `pieces` upstream, `per_feed` at a time, until a rule trips:
    (the error, how many pieces went in before the feed that tripped)."""
    for i in range(0, len(pieces), per_feed):
        try:
            codec.feed(UPSTREAM, b"".join(pieces[i : i + per_feed]))
        except FloodError as exc:
            return exc, i
    raise AssertionError("no rule tripped")


def _goaway_code(codec: Http2Codec, exc: FloodError) -> tuple[int, int]:
    to_client, _ = codec.error_reply(UPSTREAM, exc)
    return struct.unpack_from(">LL", to_client, 9)  # type: ignore[return-value]


def test_rapid_reset_trips_within_the_check_window() -> None:
    codec = _codec(reset_check_after=100)
    enc = hpack.Encoder()
    pieces = [
        _request(enc, sid) + F.build_rst_stream(sid, ErrorCode.CANCEL) for sid in range(1, 20001, 2)
    ]
    exc, before = _flood(codec, pieces)
    assert exc.reason == "flood_rapid_reset"
    assert before < 100  # at most reset_check_after streams were handed out
    last, code = _goaway_code(codec, exc)
    assert code == ErrorCode.ENHANCE_YOUR_CALM
    assert last == 2 * before - 1  # the tripping read's stream is not named as processed


def test_rapid_reset_in_one_big_read_hands_nothing_out() -> None:
    codec = _codec()
    enc = hpack.Encoder()
    flood = b"".join(
        _request(enc, sid) + F.build_rst_stream(sid, ErrorCode.CANCEL) for sid in range(1, 2001, 2)
    )
    with pytest.raises(FloodError):
        codec.feed(UPSTREAM, flood)
    assert _goaway_code(codec, FloodError("x", "flood_rapid_reset"))[0] == 0


@given(resets=st.lists(st.booleans(), min_size=300, max_size=600))
def test_answered_streams_and_a_few_cancels_never_trip(resets: list[bool]) -> None:
    """A client that cancels at most half its calls before any answer is not an attacker."""
    codec = _codec(reset_check_after=100)
    up, down = hpack.Encoder(), hpack.Encoder()
    budget = 0
    for i, reset in enumerate(resets):
        sid = 2 * i + 1
        codec.feed(UPSTREAM, _request(up, sid, end=False))
        budget += 1
        if reset and budget >= 2:  # keeps premature resets <= half of the streams
            budget -= 2
            codec.feed(UPSTREAM, F.build_rst_stream(sid, ErrorCode.CANCEL))
        else:
            head = F.build_header_block(sid, down.encode([(":status", "200")]))
            codec.feed(DOWNSTREAM, head)
            codec.feed(UPSTREAM, F.build_rst_stream(sid, ErrorCode.CANCEL))  # after an answer
            codec.feed(DOWNSTREAM, F.build_data(sid, b"", end_stream=True))


def test_ping_flood_trips_after_one_seconds_worth() -> None:
    clock = Clock()
    codec = _codec(clock, control_frames_per_s=1000)
    exc, before = _flood(codec, [F.build_ping()] * 5000, per_feed=10)
    assert exc.reason == "flood_control_frames"
    assert 990 <= before <= 1000


@pytest.mark.parametrize(
    "frame",
    [
        F.build_ping(),
        F.build_settings(),
        F.build_window_update(0, 1),
        F.frame(F.PRIORITY, 0, 3, struct.pack(">LB", 0, 16)),
    ],
    ids=["ping", "settings", "window_update", "priority"],
)
def test_each_control_frame_counts(frame: bytes) -> None:
    codec = _codec(control_frames_per_s=50, max_reset_ratio=0)
    assert _flood(codec, [frame] * 100)[0].reason == "flood_control_frames"


def test_empty_data_frames_count_as_control_frames() -> None:
    codec = _codec(control_frames_per_s=50)
    codec.feed(UPSTREAM, _request(hpack.Encoder(), 1, end=False))
    assert _flood(codec, [F.build_data(1, b"")] * 100)[0].reason == "flood_control_frames"


def test_control_frames_at_the_allowed_rate_never_trip() -> None:
    clock = Clock()
    codec = _codec(clock, control_frames_per_s=1000)
    for _ in range(5000):
        clock.now += SECOND // 1000
        codec.feed(UPSTREAM, F.build_ping())


def _open_block(enc: hpack.Encoder) -> tuple[bytes, bytes]:
    block = enc.encode([*REQUEST, ("x", "y" * 100)])
    return F.frame(F.HEADERS, F.FLAG_END_STREAM, 1, block[:10]), block[10:]


def test_continuations_per_block_are_bounded() -> None:
    codec = _codec(max_continuations=8, control_frames_per_s=0)
    headers, _ = _open_block(hpack.Encoder())
    codec.feed(UPSTREAM, headers)
    exc, before = _flood(codec, [F.frame(F.CONTINUATION, 0, 1, b"")] * 100)
    assert exc.reason == "flood_continuations" and before == 8


def test_empty_continuations_are_also_control_frames() -> None:
    codec = _codec(max_continuations=0, control_frames_per_s=20)
    headers, _ = _open_block(hpack.Encoder())
    codec.feed(UPSTREAM, headers)
    exc, _ = _flood(codec, [F.frame(F.CONTINUATION, 0, 1, b"")] * 100)
    assert exc.reason == "flood_control_frames"


def test_a_block_split_in_max_continuations_passes() -> None:
    codec = _codec(max_continuations=8)
    headers, rest = _open_block(hpack.Encoder())
    codec.feed(UPSTREAM, headers)
    step = len(rest) // 8 + 1
    parts = [rest[i : i + step] for i in range(0, len(rest), step)]
    for i, part in enumerate(parts):
        flags = F.FLAG_END_HEADERS if i == len(parts) - 1 else 0
        codec.feed(UPSTREAM, F.frame(F.CONTINUATION, flags, 1, part))
    assert codec.take_exchanges() == [] and codec.open_streams == 1


def test_hpack_bomb_trips_the_decoded_bytes_rate() -> None:
    """A 4 KiB table entry named 60 times per ~100-byte block: 242 KB decoded each."""
    codec = _codec(header_bytes_per_s=4 * 1024 * 1024, max_reset_ratio=0)
    enc = hpack.Encoder()
    first = enc.encode([*REQUEST, ("bomb", "b" * 4000)])  # inserts the entry
    codec.feed(UPSTREAM, F.build_header_block(1, first, end_stream=True))
    index = 62  # the newest dynamic entry
    bombs = []
    for sid in range(3, 4001, 2):
        block = enc.encode(REQUEST) + bytes([0x80 | index]) * 60
        bombs.append(F.build_header_block(sid, block, end_stream=True))
    exc, before = _flood(codec, bombs)
    assert exc.reason == "flood_header_bytes"
    assert before <= 4 * 1024 * 1024 // (60 * 4000) + 1


def test_requests_per_read_are_bounded() -> None:
    codec = _codec(max_requests_per_read=10)
    enc = hpack.Encoder()
    requests = [_request(enc, sid) for sid in range(1, 63, 2)]  # 31
    for i in range(0, 20, 10):
        codec.feed(UPSTREAM, b"".join(requests[i : i + 10]))  # ten per read: fine
    with pytest.raises(FloodError) as info:
        codec.feed(UPSTREAM, b"".join(requests[20:]))
    assert info.value.reason == "flood_requests_per_read"


def test_zero_turns_every_rule_off() -> None:
    codec = _codec(
        max_reset_ratio=0,
        reset_check_after=0,
        control_frames_per_s=0,
        max_continuations=0,
        header_bytes_per_s=0,
        max_requests_per_read=0,
    )
    enc = hpack.Encoder()
    flood = [
        _request(enc, sid) + F.build_rst_stream(sid, 8) + F.build_ping()
        for sid in range(1, 4001, 2)
    ]
    codec.feed(UPSTREAM, b"".join(flood))


@given(st.data(), st.integers(min_value=1, max_value=300))
def test_control_budget_counts_frames_whatever_the_reads(data: st.DataObject, n: int) -> None:
    """Read boundaries do not matter: with time frozen, the budget's frame trips it."""
    budget = 100
    codec = _codec(control_frames_per_s=budget)
    fed = b""
    tripped = False
    for piece in data.draw(chunks(F.build_ping() * n)):
        try:
            out = codec.feed(UPSTREAM, piece)
        except FloodError as exc:
            assert exc.reason == "flood_control_frames"
            tripped = True
            break
        fed += b"".join(m.raw for m in out)
    assert tripped == (n > budget)
    assert len(fed) // 17 <= budget  # never more than the budget handed out
