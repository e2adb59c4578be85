"""The access log's lines against its documented format (docs/access-log.md).

The writer builds lines from cached, pre-encoded pieces and caches the text
of the current second and (on a millisecond clock) of durations; these tests
parse every line it writes and compare it with the exchange it came from, so
a stale or wrongly shared cache entry shows up as a wrong field.
"""

from __future__ import annotations

import asyncio
import json
import math
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

HEAD = (
    "start",
    "duration",
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
START = re.compile(rb'^\{"start":\d+\.\d{6},"duration":')

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
    # Starts spread over a few seconds, in any order (long calls end after
    # short ones that began later); durations: zero, tiny, usual, long.
    if quantized:  # uvloop's clock: whole milliseconds
        ms = draw(st.integers(5_000_000, 5_004_000))
        started = ms / 1000
        finished = (ms + draw(st.integers(0, 3000))) / 1000
    else:
        started = draw(st.floats(5000.0, 5004.0))
        finished = started + draw(
            st.sampled_from([0.0, 1.0, 2.5]) | st.floats(1e-9, 5.0) | st.floats(1e-4, 0.1)
        )
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
        protocol,
        operation,
        started,
        finished,
        status,
        draw(st.integers(0, 2**40)),
        draw(st.integers(0, 2**40)),
        None,
        attrs,
    )


def _conn(loop: asyncio.AbstractEventLoop, conn_id: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=conn_id,
        loop=loop,
        listener=SimpleNamespace(name=f"l\u00e9{conn_id}"),
        down=SimpleNamespace(peername=f"127.0.0.1:{40000 + conn_id}"),
        endpoint=SimpleNamespace(name='127.0.0.1:"9"'),
    )


def _write(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
    batches: list[tuple[int, list[Exchange]]],
) -> tuple[list[bytes], float, bool]:
    """Log `batches` of (connection id, exchanges); the raw lines, the clock offset
    and whether the log saw a millisecond clock."""
    loop = new_loop()
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "access.log"
            log = AccessLog(AccessLogConfig(enabled=True, path=str(path)))
            for conn_id, batch in batches:
                log.observe(_conn(loop, conn_id), batch)  # type: ignore[arg-type]
            offset, quantized = log._clock_offset, log._quantized
            log.close()
            raw = path.read_bytes() if path.exists() else b""
            return raw.splitlines(), offset, quantized
    finally:
        loop.close()


def _check(raw: bytes, ex: Exchange, conn_id: int, offset: float) -> None:
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
    assert abs(line["start"] - (ex.started + offset)) <= 0.51e-6
    assert type(line["duration"]) is float
    assert math.isclose(line["duration"], ex.finished - ex.started, rel_tol=1e-11)
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
    lines, offset, _ = _write(asyncio.new_event_loop, batches)
    flat = [(conn_id, ex) for conn_id, batch in batches for ex in batch]
    assert len(lines) == len(flat)
    for raw, (conn_id, ex) in zip(lines, flat, strict=True):
        _check(raw, ex, conn_id, offset)


@given(st.lists(st.tuples(st.integers(1, 3), st.lists(exchanges(True), max_size=6)), max_size=8))
def test_lines_on_a_millisecond_clock(batches) -> None:
    """uvloop's clock: durations repeat, and their text is cached."""
    lines, offset, quantized = _write(uvloop.new_event_loop, batches)
    flat = [(conn_id, ex) for conn_id, batch in batches for ex in batch]
    assert len(lines) == len(flat)
    if flat:
        assert quantized
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
            log.observe(conn, [Exchange("grpc", "/a/B", 5000.25, 5000.5)])  # type: ignore[arg-type]
            offset = log._clock_offset
            whole = math.ceil(5001.0 + offset)
            started = whole - offset - 0.3e-6
            assert f"{started + offset:.6f}" == f"{whole}.000000"
            edge = Exchange("grpc", "/a/B", started, started + 0.001)
            log.observe(conn, [edge, edge])  # type: ignore[arg-type]
            log.close()
            lines = path.read_bytes().splitlines()
    finally:
        loop.close()
    assert len(lines) == 3
    for raw in lines[1:]:
        assert raw.startswith(b'{"start":%d.000000,' % whole), raw
