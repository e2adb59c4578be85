"""The access log's lines against its documented format (docs/access-log.md).

The writer builds lines from cached, pre-encoded pieces, caches the text of
the current second, and has a fast int format for the common timings; these
tests parse every line it writes and compare it with the exchange it came
from, so a stale or wrongly shared cache entry, or a timing on the wrong
path, shows up as a wrong field.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import uvloop
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.config import AccessLog as AccessLogConfig
from protoproxy.observe.access_log import AccessLog
from protoproxy_codecs.base import Exchange

TIMINGS = (
    "upstream_connect",
    "request_duration",
    "upstream_service_time",
    "response_duration",
    "proxy_time",
    "fault_delay",
)
HEAD = (
    "start",
    "duration",
    *TIMINGS,
    "conn",
    "listener",
    "downstream",
    "upstream",
    "protocol",
    "operation",
    "status",
    "request_bytes",
    "response_bytes",
)
#: Optional fields in their documented order, and the protocols that carry each.
OPTIONAL = (
    ("client_id", "kafka"),
    ("record_count", "kafka"),
    ("topics", "kafka"),
    ("errors", "kafka"),
    ("request_messages", "grpc"),
    ("response_messages", "grpc"),
    ("grpc_message", "grpc"),
)
#: Protocols with a list of their own (HTTP has none); any other gets every field.
KNOWN = ("kafka", "grpc", "http", "http2")
START = re.compile(rb'^\{"start":\d+\.\d{6},"duration":-?\d+\.\d{9},')
MS = 1_000_000
S = 1_000_000_000

names = st.text(min_size=1, max_size=12)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | names,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def exchanges(draw: st.DrawFn, quantized: bool) -> Exchange:
    protocol = draw(st.sampled_from(["kafka", "grpc", "http2", "http", "other"]))
    # A few shared operations and statuses, so cached pieces get reused (and
    # an operation seen under another protocol must not reuse them).
    operation = draw(st.sampled_from(["Produce v9", "/pkg.S/M", 'GET /"q"']) | names)
    status = draw(st.sampled_from(["OK", "NONE", "200"]) | names)
    # Starts (int ns) spread over a few seconds, in any order (long calls end
    # after short ones that began later); durations: zero, tiny, usual, long.
    if quantized:  # stamps on whole milliseconds, as a coarse clock gives
        started = draw(st.integers(5_000_000, 5_004_000)) * MS
        finished = started + draw(st.integers(0, 3000)) * MS
    else:
        started = draw(st.integers(5000 * S, 5004 * S))
        finished = started + draw(
            st.sampled_from([0, S, 5 * S // 2, S - 1]) | st.integers(1, 5 * S) | st.integers(1, MS)
        )
    # The inner stamps: usually ordered inside [started, finished], sometimes
    # not (no response, a response before the request ended, a stamp missing).
    inside = st.integers(started, finished)
    written = draw(inside | st.just(0))
    response = draw(inside | st.just(0))
    proxy = draw(st.integers(0, finished - started) | st.integers(0, 2 * S))
    delay = draw(st.just(0) | st.integers(0, finished - started))
    connect = draw(st.none() | st.integers(0, 2 * S))
    attrs: dict[str, Any] = {}
    if protocol in ("grpc", "http2", "other") and draw(st.booleans()):
        attrs["request_messages"] = draw(st.integers(0, 2**31))
        attrs["response_messages"] = draw(st.integers(0, 2**31))
        if draw(st.booleans()):
            attrs["grpc_message"] = draw(st.none() | names)
    if protocol in ("kafka", "http", "other") and draw(st.booleans()):
        attrs["client_id"] = draw(st.none() | names)
        attrs["record_count"] = draw(st.integers(0, 10**6))
        attrs["topics"] = draw(st.lists(st.sampled_from(["orders", "t\u00e9"]) | names, max_size=3))
        if draw(st.booleans()):
            attrs["errors"] = draw(st.dictionaries(names, st.integers(1, 99), max_size=3))
    if draw(st.integers(0, 4)) == 0:
        attrs["fault"] = draw(json_value.filter(lambda v: v is not None))
    if draw(st.booleans()):
        attrs["service"] = "not logged"
    return Exchange(
        protocol=protocol,
        operation=operation,
        started=started,
        finished=finished,
        status=status,
        request_bytes=draw(st.integers(0, 2**40)),
        response_bytes=draw(st.integers(0, 2**40)),
        attrs=attrs,
        request_written=written,
        response_started=response,
        proxy_time=proxy,
        fault_delay=delay,
        upstream_connect=connect,
    )


def _conn(loop: asyncio.AbstractEventLoop, conn_id: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=conn_id,
        loop=loop,
        listener=SimpleNamespace(name=f"l\u00e9{conn_id}"),
        client=SimpleNamespace(peername=f"127.0.0.1:{40000 + conn_id}"),
        endpoint=SimpleNamespace(name='127.0.0.1:"9"'),
    )


def _write(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
    batches: list[tuple[int, list[Exchange]]],
) -> tuple[list[bytes], int]:
    """Log `batches` of (connection id, exchanges); the raw lines and the clock offset (ns)."""
    loop = new_loop()
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "access.log"
            log = AccessLog(AccessLogConfig(enabled=True, path=str(path)))
            for conn_id, batch in batches:
                log.observe(_conn(loop, conn_id), batch)  # type: ignore[arg-type]
            offset = log._clock_offset
            log.close()
            raw = path.read_bytes() if path.exists() else b""
            return raw.splitlines(), offset
    finally:
        loop.close()


def _ns(value: float | None) -> int | None:
    """A line's seconds back to ns (9 decimals are exact for these magnitudes)."""
    return None if value is None else round(value * S)


def _check(raw: bytes, ex: Exchange, conn_id: int, offset: int) -> None:
    assert START.match(raw), raw
    line = json.loads(raw)
    protocol = ex.protocol
    optional = [
        name
        for name, owner in OPTIONAL
        if (owner == protocol or protocol not in KNOWN) and ex.attrs.get(name) is not None
    ]
    if ex.attrs.get("fault") is not None:
        optional.append("fault")
    assert list(line) == [*HEAD, *optional]
    # start, exactly: its text is the wall-clock µs, rounded half up from the ns
    m = re.match(rb'\{"start":(\d+)\.(\d{6}),', raw)
    assert m is not None
    assert int(m[1]) * 1_000_000 + int(m[2]) == (ex.started + offset + 500) // 1000
    assert type(line["duration"]) is float
    assert _ns(line["duration"]) == ex.duration
    for name in TIMINGS:
        assert _ns(line[name]) == getattr(ex, name), name
    assert line["conn"] == conn_id
    assert line["listener"] == f"l\u00e9{conn_id}"
    assert line["downstream"] == f"127.0.0.1:{40000 + conn_id}"
    assert line["upstream"] == '127.0.0.1:"9"'
    assert (line["protocol"], line["operation"], line["status"]) == (
        protocol,
        ex.operation,
        ex.status,
    )
    assert (line["request_bytes"], line["response_bytes"]) == (
        ex.request_bytes,
        ex.response_bytes,
    )
    for name in optional:
        assert line[name] == json.loads(json.dumps(ex.attrs[name])), name


@given(st.lists(st.tuples(st.integers(1, 3), st.lists(exchanges(False), max_size=6)), max_size=8))
def test_lines_carry_every_documented_field(batches) -> None:
    lines, offset = _write(asyncio.new_event_loop, batches)
    flat = [(conn_id, ex) for conn_id, batch in batches for ex in batch]
    assert len(lines) == len(flat)
    for raw, (conn_id, ex) in zip(lines, flat, strict=True):
        _check(raw, ex, conn_id, offset)


@given(st.lists(st.tuples(st.integers(1, 3), st.lists(exchanges(True), max_size=6)), max_size=8))
def test_lines_on_uvloop_with_whole_millisecond_stamps(batches) -> None:
    """Under uvloop, and with stamps that repeat (whole milliseconds), lines are the same."""
    lines, offset = _write(uvloop.new_event_loop, batches)
    flat = [(conn_id, ex) for conn_id, batch in batches for ex in batch]
    assert len(lines) == len(flat)
    for raw, (conn_id, ex) in zip(lines, flat, strict=True):
        _check(raw, ex, conn_id, offset)


def test_start_rounding_into_the_next_second() -> None:
    """A start 0.3 µs before a whole second is written as that second, .000000,
    both when it opens the second and when the second is already cached."""
    loop = asyncio.new_event_loop()
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "access.log"
            log = AccessLog(AccessLogConfig(enabled=True, path=str(path)))
            conn = _conn(loop, 1)
            first = Exchange(
                protocol="grpc",
                operation="/a/B",
                started=5000 * S + S // 4,
                finished=5000 * S + S // 2,
            )
            log.observe(conn, [first])  # type: ignore[arg-type]
            offset = log._clock_offset
            whole = -(-(5001 * S + offset) // S)  # the next whole second, in seconds
            started = whole * S - offset - 300  # 0.3 µs before it
            edge = Exchange(
                protocol="grpc", operation="/a/B", started=started, finished=started + MS
            )
            log.observe(conn, [edge, edge])  # type: ignore[arg-type]
            log.close()
            lines = path.read_bytes().splitlines()
    finally:
        loop.close()
    assert len(lines) == 3
    for raw in lines[1:]:
        assert raw.startswith(b'{"start":%d.000000,' % whole), raw
