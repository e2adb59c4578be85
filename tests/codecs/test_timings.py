"""Exchange stamping in the codecs, without sockets: a scripted nanosecond clock,
bytes cut anywhere, and the runtime's `written` report played by the test.

For every chunking, an exchange starts at the read that carried its request's
first byte (even when the message completes reads later), its response starts
at the read that carried the response's first byte, its request is written
when the last read that completed a request message was, and its proxy time
counts each read that completed one of its messages once, from read to write.
"""

from __future__ import annotations

import dataclasses
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, BaseCodec, Direction, Exchange
from protoproxy_codecs.http1 import Http1Codec
from protoproxy_codecs.http2 import Http2Codec
from protoproxy_codecs.kafka import KafkaCodec, framing

from .grpc.test_calls import grpc_request, msg
from .http2.peers import H2Pair

SENT = 3  # ns after a read: the runtime hands requests to the socket
WRITTEN = 7  # ns after a read: the runtime's reading after the write


class Clock:
    """The codec's clock, set by the test before each read."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % len(data) for c in cuts if c % len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def play(
    codec: BaseCodec,
    clock: Clock,
    direction: Direction,
    chunks: list[bytes],
    base: int,
) -> list[int]:
    """Feed `chunks` as reads at base, base + 100, ...; report each write. The read times."""
    times = []
    for i, chunk in enumerate(chunks):
        clock.now = base + 100 * i
        times.append(clock.now)
        codec.feed(direction, chunk)
        codec.written(clock.now + WRITTEN, clock.now + SENT)
    return times


def read_of(chunks: list[bytes], times: list[int], offset: int) -> int:
    """When the byte at `offset` of the joined chunks was read."""
    pos = 0
    for chunk, t in zip(chunks, times, strict=True):
        pos += len(chunk)
        if offset < pos:
            return t
    raise AssertionError(offset)


def completing(chunks: list[bytes], times: list[int], ends: list[int]) -> list[int]:
    """The reads (by time) in which some message ending at `ends` completed."""
    return sorted({read_of(chunks, times, end - 1) for end in ends})


def h2_frames(data: bytes, sid: int) -> list[tuple[int, int]]:
    """(start, end) of each HEADERS/DATA/CONTINUATION frame of stream `sid`."""
    out, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        ftype = data[pos + 3]
        stream = struct.unpack_from(">I", data, pos + 5)[0] & 0x7FFFFFFF
        end = pos + 9 + length
        if stream == sid and ftype in (0, 1, 9):
            out.append((pos, end))
        pos = end
    return out


cuts = st.lists(st.integers(0, 10_000), max_size=6)


@settings(max_examples=60, deadline=None)
@given(cuts, cuts)
def test_kafka_stamps_for_any_chunking(req_cuts: list[int], resp_cuts: list[int]) -> None:
    clock = Clock()
    codec = KafkaCodec(clock=clock)
    req = framing.encode_request(3, 12, 7, "app", {"topics": [{"name": "orders"}]})
    resp = framing.encode_response(
        3, 12, 7, {"brokers": [], "topics": [], "cluster_id": None, "controller_id": 1}
    )
    req_chunks, resp_chunks = cut(req, req_cuts), cut(resp, resp_cuts)
    req_times = play(codec, clock, UPSTREAM, req_chunks, 10_000)
    resp_times = play(codec, clock, DOWNSTREAM, resp_chunks, 50_000)
    (ex,) = codec.take_exchanges()
    assert ex.started == req_times[0]
    assert ex.request_written == req_times[-1] + SENT
    assert ex.response_started == resp_times[0]
    assert ex.finished == resp_times[-1] + WRITTEN
    # one message each way: two reads completed one, each counted once
    assert ex.proxy_time == 2 * WRITTEN
    assert ex.fault_delay == 0 and ex.upstream_connect is None
    assert ex.request_duration + ex.upstream_service_time + ex.response_duration == ex.duration


def _grpc_unary_bytes() -> tuple[H2Pair, int, bytes, bytes]:
    """A set-up connection, and a unary call's request and response bytes."""
    pair = H2Pair(codec=Http2Codec(clock=Clock()))
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, grpc_request())
    c.send_data(sid, msg(b"hello" * 50), end_stream=True)
    req = c.data_to_send()
    s.receive_data(req)
    s.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
    s.send_data(sid, msg(b"world" * 50))
    s.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    resp = s.data_to_send()
    return pair, sid, req, resp


@settings(max_examples=60, deadline=None)
@given(cuts, cuts)
def test_grpc_call_stamps_for_any_chunking(req_cuts: list[int], resp_cuts: list[int]) -> None:
    pair, sid, req, resp = _grpc_unary_bytes()
    codec = pair.codec
    clock = codec.clock
    assert isinstance(clock, Clock)
    req_chunks, resp_chunks = cut(req, req_cuts), cut(resp, resp_cuts)
    req_times = play(codec, clock, UPSTREAM, req_chunks, 10_000)
    resp_times = play(codec, clock, DOWNSTREAM, resp_chunks, 50_000)
    (ex,) = codec.take_exchanges()
    req_frames, resp_frames = h2_frames(req, sid), h2_frames(resp, sid)
    up = completing(req_chunks, req_times, [end for _, end in req_frames])
    down = completing(resp_chunks, resp_times, [end for _, end in resp_frames])
    assert ex.started == read_of(req_chunks, req_times, req_frames[0][0])
    assert ex.request_written == up[-1] + SENT
    assert ex.response_started == read_of(resp_chunks, resp_times, resp_frames[0][0])
    assert ex.finished == down[-1] + WRITTEN
    assert ex.proxy_time == WRITTEN * (len(up) + len(down))
    assert ex.proxy_time <= ex.duration


def test_http1_stamps_a_head_that_trickles_in() -> None:
    clock = Clock()
    codec = Http1Codec(clock=clock)
    req = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    # head split in three reads, the body in a fourth; the response in two
    req_times = play(codec, clock, UPSTREAM, [req[:5], req[5:20], req[20:-4], req[-4:]], 1000)
    resp_times = play(codec, clock, DOWNSTREAM, [resp[:10], resp[10:]], 9000)
    (ex,) = codec.take_exchanges()
    assert ex.started == req_times[0]  # the head's first byte, three reads before it completed
    assert ex.request_written == req_times[3] + SENT
    assert ex.response_started == resp_times[0]
    assert ex.finished == resp_times[1] + WRITTEN
    # reads that completed a message: the head, the body; the response (head and body)
    assert ex.proxy_time == 3 * WRITTEN


def test_without_written_reports_stamps_are_read_times() -> None:
    """A driver that never reports writes (the testbed's fakes) gets read times."""
    clock = Clock()
    codec = KafkaCodec(clock=clock)
    clock.now = 100
    codec.feed(UPSTREAM, framing.encode_request(18, 3, 1, "app", {}))
    clock.now = 250
    codec.feed(
        DOWNSTREAM,
        framing.encode_response(18, 3, 1, {"error_code": 0, "api_keys": [], "throttle_time_ms": 0}),
    )
    (ex,) = codec.take_exchanges()
    assert (ex.started, ex.request_written, ex.response_started, ex.finished) == (
        100,
        100,
        250,
        250,
    )
    assert ex.duration == 150 and ex.proxy_time == 0


def test_a_hold_is_fault_delay_not_proxy_time() -> None:
    """What the runtime does for bytes a fault stage held: `written` at the write,
    `held` when the stage let them go."""
    clock = Clock()
    codec = KafkaCodec(clock=clock)
    clock.now = 1_000
    codec.feed(UPSTREAM, framing.encode_request(18, 3, 1, "app", {}))
    touched = codec.written(1_040)  # the Gate took the request 40 ns after the read...
    BaseCodec.held(touched, UPSTREAM, 1_040, 201_040)  # ...and released it 200 µs later
    clock.now = 300_000
    codec.feed(
        DOWNSTREAM,
        framing.encode_response(18, 3, 1, {"error_code": 0, "api_keys": [], "throttle_time_ms": 0}),
    )
    codec.written(300_010)
    (ex,) = codec.take_exchanges()
    assert ex.fault_delay == 200_000
    assert ex.proxy_time == 40 + 10
    assert ex.request_written == 201_040  # when the request really left
    assert ex.request_duration == 200_040 and ex.upstream_service_time == 300_000 - 201_040


def test_exchange_takes_keywords_only() -> None:
    ex = Exchange(protocol="kafka", operation="Produce v9", started=5, finished=12)
    assert ex.duration == 7 and ex.upstream_service_time is None and ex.response_duration is None
    try:
        Exchange("kafka", "Produce v9", 5, 12)  # type: ignore[misc]
    except TypeError:
        pass
    else:
        raise AssertionError("positional Exchange fields")


def test_begin_is_the_keyword_constructor() -> None:
    """Exchange.begin sets every field itself: a field it forgot (or set differently)
    would show here, not as an AttributeError in some observer."""
    fast = Exchange.begin("grpc", "/pkg.S/M", 7, 1234)
    slow = Exchange(protocol="grpc", operation="/pkg.S/M", key=7, started=1234)
    for f in dataclasses.fields(Exchange):
        assert getattr(fast, f.name) == getattr(slow, f.name), f.name
    assert fast == slow
    assert fast.attrs is not Exchange.begin("grpc", "/pkg.S/M", 7, 1234).attrs  # each its own
