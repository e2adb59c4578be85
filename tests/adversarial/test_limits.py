"""limits.memory, timeouts.header and timeouts.frame against the attacks of issue 12.

Each test runs a real proxy on loopback with small limits (32 MiB, a 1 s
header deadline), attacks it, waits for the proxy's reaction by polling its
counters, then checks that every listener still answers and that the
process's RSS stayed within a bound the attack would blow without the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protoproxy_codecs.http2 import frames as F
from tests.adversarial.conftest import (
    Upstreams,
    config,
    counter,
    every_listener_answers,
    poll,
    rss,
)
from tests.peers import ProxyThread

MiB = 1024 * 1024
BUDGET = 32 * MiB


@dataclass
class Attack:
    """Attack connections run on their own loop in a thread; the test polls this."""

    n: int
    #: connections whose setup phase finished (filled, or closed by the proxy first)
    ready: int = 0
    #: connections the proxy closed, and the first bytes each got back
    closed: int = 0
    replies: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    peak_rss: int = 0
    _started: int = 0

    def index(self) -> int:
        """Which connection this is (0, 1, ...), for attacks that mix kinds."""
        self._started += 1
        return self._started - 1

    def run(self, one: Callable[[Attack], Awaitable[None]]) -> threading.Thread:
        async def main() -> None:
            await asyncio.gather(*(one(self) for _ in range(self.n)))

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        return thread

    def watch(self) -> None:
        self.peak_rss = max(self.peak_rss, rss())


async def _until_closed(attack: Attack, reader: asyncio.StreamReader, got: bytearray) -> bool:
    """Read what the proxy sends for a moment; True once it closed the connection."""
    try:
        data = await asyncio.wait_for(reader.read(65536), 0.2)
    except TimeoutError:
        return False
    except OSError:
        return True
    if not data:
        return True
    got += data
    return False


async def _trickle(
    attack: Attack, port: int, setup: bytes, trickle: bytes, step: int = 65536
) -> None:
    """Send `setup` (drained chunk by chunk), then one byte of `trickle` per 0.2 s
    until the proxy closes the connection or the test says stop."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = bytearray()
    closed = False
    try:
        for i in range(0, len(setup), step):
            writer.write(memoryview(setup)[i : i + step])
            await writer.drain()
    except OSError:
        closed = True
    attack.ready += 1
    i = 0
    while not closed and not attack.stop.is_set():
        if trickle:  # else: just wait
            with contextlib.suppress(OSError):
                writer.write(trickle[i % len(trickle) : i % len(trickle) + 1])
            i += 1
        closed = await _until_closed(attack, reader, got)
    if closed:
        attack.closed += 1
        attack.replies.append(bytes(got))
    writer.close()


def _kafka_partial(frame: int, fill: int) -> bytes:
    """A frame header saying `frame` bytes follow, and the first `fill` of them."""
    body = b"\x00\x00\x00\x09" + b"\x00\x00\x00\x01" + b"\x00\x04test"  # Produce v9 header
    return struct.pack(">i", frame) + body + bytes(fill - len(body))


def _gauge(proxy: ProxyThread) -> float:
    return counter(proxy, "protoproxy_memory_buffered_bytes").get((), 0)


def _recount(proxy: ProxyThread) -> int:
    return proxy.run(lambda: proxy.proxy.memory.recount())  # type: ignore[union-attr]


def test_partial_kafka_frames_are_shed_to_the_budget(upstreams: Upstreams) -> None:
    n, frame, fill = 60, 8 * MiB, 6 * MiB  # 360 MiB wanted, 32 MiB allowed
    with ProxyThread(config(upstreams)) as proxy:
        before = rss()
        attack = Attack(n)
        setup = _kafka_partial(frame, fill)  # one copy for all: the attacker's RSS is ours too
        thread = attack.run(lambda a: _trickle(a, proxy.port("kafka"), setup, b"\x00"))
        # `ready` counts what the kernel's socket buffers took too: the proxy
        # pauses reading past the budget, so those bytes wait there.
        assert poll(lambda: attack.watch() or attack.ready == n, 60), attack
        shed_total = "protoproxy_memory_shed_total"
        assert poll(lambda: counter(proxy, shed_total).get(("kafka",), 0) >= 1, 20)
        # What is left is within the budget, and the proxy knows it.
        assert poll(lambda: attack.watch() or _recount(proxy) <= BUDGET, 10)
        shed = counter(proxy, shed_total)[("kafka",)]
        assert poll(lambda: attack.closed >= shed, 20)
        assert poll(lambda: _gauge(proxy) <= BUDGET, 5)
        every_listener_answers(proxy)  # while the rest still trickle
        attack.watch()
        attack.stop.set()
        thread.join(30)
        # The slack is the issue's own (budget + 200 MiB): a sample step and a read
        # per connection, and the allocator's heap, which this process shares with
        # the attacker and which moves run to run (peaks of +135 to +177 MiB seen).
        # Unbounded, the 60 connections would hold 360 MiB on top of `before`.
        assert attack.peak_rss - before <= BUDGET + 200 * MiB, (attack.peak_rss - before) / MiB
        shed = counter(proxy, shed_total)[("kafka",)]
        assert (
            counter(proxy, "protoproxy_connection_errors_total")[("kafka", "memory_shed")] == shed
        )
        every_listener_answers(proxy)


def test_partial_kafka_frames_are_closed_by_the_frame_deadline(upstreams: Upstreams) -> None:
    n = 60  # 60 x 256 KiB fits the budget: only the deadline ends them
    cfg = config(upstreams, timeouts={"frame": "1500ms"})
    with ProxyThread(cfg) as proxy:
        before = rss()
        attack = Attack(n)
        setup = _kafka_partial(4 * MiB, 256 * 1024)
        thread = attack.run(lambda a: _trickle(a, proxy.port("kafka"), setup, b"\0"))
        expired = "protoproxy_deadline_timeouts_total"
        assert poll(lambda: counter(proxy, expired).get(("kafka", "frame"), 0) == n, 30)
        assert poll(lambda: attack.watch() or attack.closed == n, 10)
        thread.join(10)
        assert attack.replies == [b""] * n  # Kafka has no goodbye: just the close
        assert counter(proxy, "protoproxy_memory_shed_total").get(("kafka",), 0) == 0
        assert attack.peak_rss - before <= BUDGET + 64 * MiB
        every_listener_answers(proxy)


def test_http1_slowloris_gets_408_at_the_header_deadline(upstreams: Upstreams) -> None:
    n, sniffed = 200, 20
    with ProxyThread(config(upstreams)) as proxy:
        before = rss()
        attack = Attack(n + sniffed)
        trickle = b"X-Slow: " + b"a" * 1000
        http, auto = proxy.port("http"), proxy.port("auto")

        async def one(a: Attack) -> None:
            if a.index() < n:
                await _trickle(a, http, b"GET / HTTP/1.1\r\nHost: x\r\n", trickle)
            else:  # before the codec is known: the sniffer waits for "GET "
                await _trickle(a, auto, b"G", b"ET / HTTP/1.1\r\n" + trickle)

        thread = attack.run(one)
        expired = "protoproxy_deadline_timeouts_total"
        assert poll(lambda: counter(proxy, expired).get(("http", "header"), 0) == n, 30)
        assert poll(lambda: counter(proxy, expired).get(("auto", "header"), 0) == sniffed, 10)
        assert poll(lambda: attack.watch() or attack.closed == n + sniffed, 10)
        thread.join(10)
        assert all(r.startswith(b"HTTP/1.1 408 ") for r in attack.replies), attack.replies[:3]
        assert attack.peak_rss - before <= 64 * MiB
        every_listener_answers(proxy)


def _goaway_codes(data: bytes) -> list[int]:
    codes, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        if data[pos + 3] == F.GOAWAY:
            codes.append(int.from_bytes(data[pos + 13 : pos + 17], "big"))
        pos += 9 + length
    return codes


def test_http2_unfinished_preface_and_header_block_are_closed(upstreams: Upstreams) -> None:
    # HEADERS on stream 1 without END_HEADERS: a block the client never ends
    headers = F.frame(F.HEADERS, 0, 1, b"\x82")
    with ProxyThread(config(upstreams)) as proxy:
        before = rss()
        attack = Attack(2)
        port = proxy.port("h2")

        async def one(a: Attack) -> None:
            if a.index() == 0:  # a preface that stops halfway
                await _trickle(a, port, F.PREFACE[:10], b"")
            else:
                await _trickle(a, port, F.PREFACE + F.build_settings() + headers, b"")

        thread = attack.run(one)
        expired = "protoproxy_deadline_timeouts_total"
        assert poll(lambda: counter(proxy, expired).get(("h2", "header"), 0) == 2, 20)
        assert poll(lambda: attack.closed == 2, 10)
        thread.join(10)
        for reply in attack.replies:
            assert _goaway_codes(reply) == [F.ErrorCode.ENHANCE_YOUR_CALM]
        assert rss() - before <= 64 * MiB
        every_listener_answers(proxy)


def test_http1_big_unfinished_heads_are_shed_with_503(upstreams: Upstreams) -> None:
    n = 200  # 200 x 200 KiB heads (under max_header_list_size each): 40 MiB > 32 MiB
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 * 1024)
    with ProxyThread(config(upstreams, timeouts={"header": "60s"})) as proxy:
        before = rss()
        attack = Attack(n)
        thread = attack.run(lambda a: _trickle(a, proxy.port("http"), head, b"a"))
        shed_total = "protoproxy_memory_shed_total"
        assert poll(lambda: counter(proxy, shed_total).get(("http",), 0) >= 1, 30)
        assert poll(lambda: attack.watch() or attack.ready == n, 30)
        assert poll(lambda: attack.watch() or _recount(proxy) <= BUDGET, 10)
        shed = counter(proxy, shed_total)[("http",)]
        assert poll(lambda: attack.closed >= shed, 10)
        every_listener_answers(proxy)
        attack.stop.set()
        thread.join(30)
        shed_replies = attack.replies[: int(shed)]
        assert all(r.startswith(b"HTTP/1.1 503 ") for r in shed_replies), shed_replies[:3]
        assert attack.peak_rss - before <= BUDGET + 96 * MiB
