"""HTTP/2 floods against a real proxy and a real upstream (h2, the library).

Each attack must end in GOAWAY ENHANCE_YOUR_CALM within a bounded number of
writes, reach the upstream only up to a bound (counted there), and leave a
second listener answering. Every attack is bounded to a few seconds.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator

import hpack
import pytest

from protoproxy_codecs.http2 import ErrorCode
from protoproxy_codecs.http2 import frames as F
from tests.peers import ProxyThread
from tests.tools import require_tool

from .h2peers import CountingServer, attack

REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]
RULES = {
    "reset_check_after": 100,
    "control_frames_per_s": 2000,
    "max_continuations": 32,
    "header_bytes_per_s": 4 * 1024 * 1024,
    "max_requests_per_read": 200,
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[CountingServer]:
    with CountingServer().running() as server:
        yield server


@pytest.fixture()
def proxy(upstream: CountingServer) -> Iterator[ProxyThread]:
    upstream.seen.clear()
    config = {
        "admin": {"enabled": False},
        "limits": {"http2": RULES},
        "listeners": [
            {"name": "h2", "listen": "127.0.0.1:0", "protocol": "http2", "upstream": "up"},
            {"name": "health", "listen": "127.0.0.1:0", "protocol": "http2", "upstream": "up"},
        ],
        "upstreams": [{"name": "up", "endpoints": [f"127.0.0.1:{upstream.port}"]}],
    }
    with ProxyThread(config) as running:
        yield running
        _healthy(running)


def _healthy(proxy: ProxyThread) -> None:
    """The other listener still answers (no timing asserted)."""
    out = subprocess.run(
        [require_tool("h2load"), "-n", "5", "-c", "1", f"http://127.0.0.1:{proxy.port('health')}/"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "5 succeeded" in out, out


def _closed(proxy: ProxyThread) -> dict[tuple[str, ...], float]:
    return proxy.run(lambda: dict(proxy.app.proxy.metrics.http2_flood_closed.values))  # type: ignore[no-any-return]


def _requests(enc: hpack.Encoder, first: int, n: int, reset: bool) -> bytes:
    out = []
    for sid in range(first, first + 2 * n, 2):
        out.append(F.build_header_block(sid, enc.encode(REQUEST), end_stream=not reset))
        if reset:
            out.append(F.build_rst_stream(sid, ErrorCode.CANCEL))
    return b"".join(out)


def test_rapid_reset(proxy: ProxyThread, upstream: CountingServer) -> None:
    enc = hpack.Encoder()
    batches = (_requests(enc, 1 + 40 * i, 20, reset=True) for i in range(5000))
    result = attack(proxy.port("h2"), b"", batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    assert upstream.seen["requests"] <= RULES["reset_check_after"]
    assert _closed(proxy) == {("h2", "flood_rapid_reset"): 1}


def test_ping_flood(proxy: ProxyThread, upstream: CountingServer) -> None:
    batches = itertools.repeat(F.build_ping() * 100, 100_000)
    result = attack(proxy.port("h2"), b"", batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    # one second's worth, plus what refilled while the attack ran (a few seconds at most)
    assert upstream.seen["pings"] <= 6 * RULES["control_frames_per_s"]
    assert _closed(proxy) == {("h2", "flood_control_frames"): 1}


def test_window_update_flood(proxy: ProxyThread, upstream: CountingServer) -> None:
    batches = itertools.repeat(F.build_window_update(0, 1) * 100, 100_000)
    result = attack(proxy.port("h2"), b"", batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    assert upstream.seen["window_updates"] <= 6 * RULES["control_frames_per_s"]
    assert _closed(proxy) == {("h2", "flood_control_frames"): 1}


def test_settings_flood(proxy: ProxyThread, upstream: CountingServer) -> None:
    batches = itertools.repeat(F.build_settings() * 100, 100_000)
    result = attack(proxy.port("h2"), b"", batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    # +1: the SETTINGS `attack` opens every connection with
    assert upstream.seen["settings"] <= 6 * RULES["control_frames_per_s"] + 1
    assert _closed(proxy) == {("h2", "flood_control_frames"): 1}


def test_empty_data_flood(proxy: ProxyThread, upstream: CountingServer) -> None:
    """Empty DATA costs no flow-control window, so only the control-frame rule stops it."""
    opening = F.build_header_block(1, hpack.Encoder().encode(REQUEST), end_stream=False)
    batches = itertools.repeat(F.frame(F.DATA, 0, 1, b"") * 100, 100_000)
    result = attack(proxy.port("h2"), opening, batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    assert upstream.seen["data"] <= 6 * RULES["control_frames_per_s"]
    assert _closed(proxy) == {("h2", "flood_control_frames"): 1}


def test_continuation_flood(proxy: ProxyThread, upstream: CountingServer) -> None:
    block = hpack.Encoder().encode([*REQUEST, ("x", "y" * 50)])
    opening = F.frame(F.HEADERS, F.FLAG_END_STREAM, 1, block)
    batches = itertools.repeat(F.frame(F.CONTINUATION, 0, 1, b"\x00") * 10, 100_000)
    result = attack(proxy.port("h2"), opening, batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    assert upstream.seen["requests"] == 0  # the block never completed
    assert _closed(proxy) == {("h2", "flood_continuations"): 1}


def test_hpack_bomb(proxy: ProxyThread, upstream: CountingServer) -> None:
    enc = hpack.Encoder()
    first = F.build_header_block(1, enc.encode([*REQUEST, ("bomb", "b" * 4000)]), end_stream=True)
    bomb = enc.encode(REQUEST) + bytes([0x80 | 62]) * 60  # 242 KB decoded per block
    batches = (F.build_header_block(sid, bomb, end_stream=True) for sid in range(3, 2_000_000, 2))
    result = attack(proxy.port("h2"), first, batches)
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    per_block = 60 * (4 + 4000 + 32)
    assert upstream.seen["requests"] <= 6 * RULES["header_bytes_per_s"] // per_block + 1
    reasons = _closed(proxy)
    assert reasons == {("h2", "flood_header_bytes"): 1}, reasons


def test_requests_per_read(proxy: ProxyThread, upstream: CountingServer) -> None:
    enc = hpack.Encoder()
    burst = _requests(enc, 1, 1000, reset=False)  # ~10 KB: one read
    result = attack(proxy.port("h2"), burst, iter(()))
    assert result is not None and result[0] == ErrorCode.ENHANCE_YOUR_CALM, result
    assert upstream.seen["requests"] <= RULES["max_requests_per_read"]
    assert _closed(proxy) == {("h2", "flood_requests_per_read"): 1}
