"""A held byte is never released before its delay is over, on a loop whose clock lags.

uvloop's `loop.time()` is the loop iteration's start, in whole milliseconds:
read while handling a chunk, it can lag the real time by up to a
millisecond, and a timer set on it fires that much before a delay measured
from the chunk's arrival is over (a Toxiproxy latency of 300 ms measured
299.96 ms in a CI run). This drives the real Latency stage and message delay
gate on a stand-in loop that lags like that, with the real time under the
test's control: each chunk must leave no earlier than its arrival plus its
delay.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from protoproxy.faults import stage as stage_module
from protoproxy.faults.message_filter import Gate
from protoproxy.faults.toxics import Latency
from protoproxy_codecs.base import Direction

LAG = 0.002  # s the loop's clock lags the real one when a chunk is handled


class LaggingLoop:
    """Timers as libuv keeps them: `call_later(d)` is due at the loop's cached
    time plus d, `call_at(t)` when the loop's clock reaches t; the cache lags
    the real time while a callback runs and is fresh when timers are checked."""

    def __init__(self) -> None:
        self.real = 100.0
        self.cached = self.real - LAG
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.cached

    def call_at(self, when: float, cb: Callable[[], None]) -> Any:
        heapq.heappush(self._timers, (when, next(self._seq), cb))
        return SimpleNamespace(cancel=lambda: None)

    def call_later(self, delay: float, cb: Callable[[], None]) -> Any:
        return self.call_at(self.cached + delay, cb)

    def run(self) -> None:
        while self._timers:
            when, _, cb = heapq.heappop(self._timers)
            self.real = max(self.real, when)
            self.cached = self.real  # fresh when timers run...
            cb()
            self.cached = self.real - LAG  # ...and behind again while callbacks work


class Sink:
    def __init__(self, loop: LaggingLoop) -> None:
        self.loop = loop
        self.arrivals: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> None:
        self.arrivals.append((self.loop.real, data))

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)


def _conn(loop: LaggingLoop) -> Any:
    limits = SimpleNamespace(write_buffer_high=1 << 30, write_buffer_low=0)
    return SimpleNamespace(
        loop=loop, end_reason=None, client=None, server=None,
        proxy=SimpleNamespace(config=SimpleNamespace(limits=limits)),
    )  # fmt: skip


def _fault(attributes: dict[str, Any]) -> Any:
    return SimpleNamespace(spec=SimpleNamespace(toxic=SimpleNamespace(attributes=attributes)))


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> LaggingLoop:
    lagging = LaggingLoop()
    monkeypatch.setattr(stage_module, "clock", lambda: lagging.real, raising=False)
    return lagging


def test_latency_holds_each_chunk_for_its_whole_delay(loop: LaggingLoop) -> None:
    latency = 0.3
    stage = Latency(_conn(loop), Direction.DOWNSTREAM, _fault({"latency": 300}), random.Random(1))
    sink = stage.next = Sink(loop)  # type: ignore[assignment]
    sent = {}
    for i in range(5):
        loop.real += 0.01 * i
        loop.cached = loop.real - LAG
        sent[b"c%d" % i] = loop.real
        stage.write(b"c%d" % i)
    loop.run()
    assert [data for _, data in sink.arrivals] == list(sent)
    for at, data in sink.arrivals:
        assert at >= sent[data] + latency, (data, at - sent[data])


def test_a_message_delay_holds_what_follows_for_the_whole_delay(loop: LaggingLoop) -> None:
    gate = Gate(_conn(loop), Direction.DOWNSTREAM, _fault({}))
    sink = gate.next = Sink(loop)  # type: ignore[assignment]
    fault = SimpleNamespace(active=0)
    start = loop.real
    gate.hold(0.2, fault)  # type: ignore[arg-type]
    gate.write(b"delayed")
    loop.run()
    [(at, data)] = sink.arrivals
    assert data == b"delayed" and at >= start + 0.2 and fault.active == 0
