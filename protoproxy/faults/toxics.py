"""The seven Toxiproxy stream toxics, as Outlet stages.

Names, attributes and units are Toxiproxy's, so that a test written against
Toxiproxy means the same here: milliseconds for `latency`, `jitter`,
`delay` (slow_close) and `timeout`; KB/s (1000 bytes) for `rate`;
microseconds for the slicer's `delay`; bytes for sizes. A missing attribute
is 0, as in Toxiproxy.
"""

from __future__ import annotations

import logging
import socket
import struct
from random import Random
from typing import TYPE_CHECKING

from .stage import Stage, TimedStage, clock

if TYPE_CHECKING:
    from collections.abc import Callable

    from protoproxy_codecs.base import Direction

    from ..connection import Connection
    from .engine import ActiveFault

log = logging.getLogger("protoproxy.faults")


class Latency(TimedStage):
    """Each chunk is released `latency ± jitter` ms after it arrived.

    Measured from arrival, not from the previous release (like Toxiproxy), so
    a stream's latency does not add up; order is kept, so a short draw never
    overtakes a long one.
    """

    kind = "latency"

    def write(self, data: bytes) -> None:
        latency = float(self.attrs.get("latency", 0))
        jitter = float(self.attrs.get("jitter", 0))
        if jitter > 0:
            latency += self.rng.uniform(-jitter, jitter)
        self.enqueue(clock() + max(latency, 0.0) / 1000.0, data)


class Bandwidth(TimedStage):
    """At most `rate` KB/s; bytes leave in 100 ms slices at the end of their slot."""

    kind = "bandwidth"

    def __init__(
        self, conn: Connection, direction: Direction, fault: ActiveFault, rng: Random
    ) -> None:
        super().__init__(conn, direction, fault, rng)
        self.free_at = 0.0  # when the link is next idle (loop time)

    def write(self, data: bytes) -> None:
        rate = float(self.attrs.get("rate", 0)) * 1000.0  # bytes per second
        if rate <= 0:
            self.enqueue(clock(), data)
            return
        step = max(1, int(rate / 10))  # 100 ms worth
        t = max(clock(), self.free_at)
        if len(data) <= step:
            t += len(data) / rate
            self.enqueue(t, data)
        else:
            view = memoryview(data)
            for pos in range(0, len(data), step):
                piece = bytes(view[pos : pos + step])
                t += len(piece) / rate
                self.enqueue(t, piece)
        self.free_at = t


class Slicer(TimedStage):
    """Cut each chunk into slices of `average_size ± size_variation` bytes,
    `delay` µs apart, so a peer sees many small reads."""

    kind = "slicer"

    def write(self, data: bytes) -> None:
        avg = int(self.attrs.get("average_size", 0))
        if avg <= 0 or len(data) <= avg:
            self.enqueue(clock(), data)
            return
        var = min(int(self.attrs.get("size_variation", 0)), avg - 1)
        gap = float(self.attrs.get("delay", 0)) / 1e6
        t = max(clock(), self.last_due + gap if self.queue else 0.0)
        view = memoryview(data)
        pos, n = 0, len(data)
        rng = self.rng
        while pos < n:
            size = rng.randint(avg - var, avg + var) if var else avg
            self.enqueue(t, bytes(view[pos : pos + size]))
            pos += size
            t += gap


class SlowClose(Stage):
    """Hold the EOF (the close) for `delay` ms; data passes untouched."""

    kind = "slow_close"

    def __init__(
        self, conn: Connection, direction: Direction, fault: ActiveFault, rng: Random
    ) -> None:
        super().__init__(conn, direction, fault, rng)
        self._timer: object | None = None
        self.eof_pending = False

    @property
    def holding(self) -> bool:
        return self.eof_pending

    def writelines(self, chunks: list[bytes]) -> None:
        assert self.next is not None
        self.next.writelines(chunks)

    def write_eof(self) -> None:
        if self.eof_pending:
            return
        self.eof_pending = True
        delay = float(self.attrs.get("delay", 0)) / 1000.0
        self._timer = self.loop.call_later(delay, self._release)

    def _release(self) -> None:
        self._timer = None
        if not self.eof_pending or not self.alive:
            return
        self.eof_pending = False
        assert self.next is not None
        self.next.write_eof()
        self._drained()

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # type: ignore[attr-defined]
            self._timer = None
        if self.eof_pending:
            self.eof_pending = False
            assert self.next is not None
            self.next.write_eof()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # type: ignore[attr-defined]
            self._timer = None
        self.eof_pending = False


class _Timed(Stage):
    """A stage with one timer that ends the connection."""

    def __init__(
        self, conn: Connection, direction: Direction, fault: ActiveFault, rng: Random
    ) -> None:
        super().__init__(conn, direction, fault, rng)
        self._timer: object | None = None
        self.dropped = 0

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def when_sent(self, callback: Callable[[], None]) -> None:
        """Dropped: the bytes written before it went nowhere."""

    def _arm(self, ms: float) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(max(ms, 0.0) / 1000.0, self._fire)

    def _fire(self) -> None:
        self._timer = None

    def detach(self) -> None:
        self.cancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # type: ignore[attr-defined]
            self._timer = None


class Timeout(_Timed):
    """Drop every byte; with `timeout` > 0 close the connection that many ms
    after the toxic started. With 0, data stops until the toxic is removed."""

    kind = "timeout"

    def start(self) -> None:
        timeout = float(self.attrs.get("timeout", 0))
        if timeout > 0:
            self._arm(timeout)

    def write(self, data: bytes) -> None:
        self.dropped += len(data)

    def _fire(self) -> None:
        self._timer = None
        if self.alive:
            log.info("conn %d: toxic %s: timeout, closing", self.conn.id, self.fault.name)
            self.conn.close("toxic_timeout")


class ResetPeer(_Timed):
    """On the first data (or EOF), wait `timeout` ms, then reset the
    connection with a TCP RST (SO_LINGER 0) on both sockets. Data from that
    first chunk on is not delivered."""

    kind = "reset_peer"

    def write(self, data: bytes) -> None:
        self.dropped += len(data)
        self._arm(float(self.attrs.get("timeout", 0)))

    def write_eof(self) -> None:
        self._arm(float(self.attrs.get("timeout", 0)))

    def _fire(self) -> None:
        self._timer = None
        if not self.alive:
            return
        linger = struct.pack("ii", 1, 0)
        for side in (self.conn.client, self.conn.server):
            sock = side.transport.get_extra_info("socket") if side and side.transport else None
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                except OSError:
                    pass  # already gone: there is nothing left to reset
        self.conn.fail("toxic_reset_peer", f"toxic {self.fault.name} reset the connection")


class LimitData(Stage):
    """Pass `bytes` bytes (counted from when the toxic started), then close."""

    kind = "limit_data"

    def __init__(
        self, conn: Connection, direction: Direction, fault: ActiveFault, rng: Random
    ) -> None:
        super().__init__(conn, direction, fault, rng)
        self.passed = 0
        self.cut = False

    def write(self, data: bytes) -> None:
        if self.cut:
            return
        limit = int(self.attrs.get("bytes", 0))
        room = limit - self.passed
        assert self.next is not None
        if len(data) < room:
            self.passed += len(data)
            self.next.write(data)
            return
        if room > 0:
            self.next.write(data[:room])
            self.passed = limit
        self.cut = True
        # Close after the current batch has been written: the relay that
        # called us is still running.
        self.loop.call_soon(self._close)

    def when_sent(self, callback: Callable[[], None]) -> None:
        if not self.cut:  # past the cut, the bytes before it did not all pass
            assert self.next is not None
            self.next.when_sent(callback)

    def _close(self) -> None:
        if self.alive:
            self.conn.close("toxic_limit_data")


STAGES: dict[str, type[Stage]] = {
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}
