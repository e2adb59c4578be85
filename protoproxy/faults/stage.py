"""The Outlet wrapper every stream toxic is built on.

A stage sits in front of one direction's next outlet (another stage or the
receiving Side). It can be linked in and out of a live connection: on
removal it hands everything it still holds, EOF included, to the next
outlet, as Toxiproxy does ("don't drop any data on the floor").

A stage that holds bytes pauses the *source* Side's reading once it holds
more than the write-buffer high-water mark, and resumes it below the
low-water mark, so a slow toxic costs at most about one high-water mark of
memory per connection and direction. While it holds bytes or a delayed EOF
it reports `busy`, and calls `conn.outlet_drained()` when it has let go.

`when_sent` callbacks travel through a stage in order with the bytes, so a
caller learns when what it wrote has really left the proxy's hands; a stage
that drops bytes drops the callbacks behind them too (see `Outlet`).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import Direction

#: The clock of held bytes' due times: monotonic seconds, read fresh each time
#: (not the loop's, which uvloop caches per iteration in whole milliseconds).
clock = time.monotonic

if TYPE_CHECKING:
    import asyncio

    from ..connection import Connection, Outlet, Side
    from .engine import ActiveFault


class Stage:
    """Pass-through stage; subclasses override what their toxic changes."""

    kind = "noop"

    def __init__(
        self, conn: Connection, direction: Direction, fault: ActiveFault, rng: random.Random
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.fault = fault
        self.rng = rng
        self.attrs: dict[str, Any] = dict(fault.spec.toxic.attributes) if fault.spec.toxic else {}
        self.next: Outlet | None = None
        self.loop = conn.loop
        #: peak bytes held at once (for tests and /connections)
        self.peak = 0
        self._paused_source = False

    # -- the Outlet interface ------------------------------------------------
    def write(self, data: bytes) -> None:
        assert self.next is not None
        self.next.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        assert self.next is not None
        self.next.write_eof()

    def when_sent(self, callback: Callable[[], None]) -> None:
        assert self.next is not None
        self.next.when_sent(callback)

    @property
    def busy(self) -> bool:
        return self.holding or bool(getattr(self.next, "busy", False))

    # -- lifecycle -------------------------------------------------------------
    @property
    def holding(self) -> bool:
        """This stage itself holds bytes or an EOF."""
        return False

    def start(self) -> None:
        """Linked into a live connection (timers that start with the toxic start here)."""

    def detach(self) -> None:
        """Unlinked: hand over whatever is held, cancel timers."""

    def cancel(self) -> None:
        """The connection is gone: drop everything, cancel timers."""

    # -- helpers -----------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.conn.end_reason is None

    def _source(self) -> Side | None:
        return self.conn.client if self.direction is Direction.UPSTREAM else self.conn.server

    def _sink(self) -> Side | None:
        return self.conn.server if self.direction is Direction.UPSTREAM else self.conn.client

    def _held_changed(self, held: int) -> None:
        """Backpressure on the source by what this stage holds."""
        limits = self.conn.proxy.config.limits
        if held > self.peak:
            self.peak = held
        if held > limits.write_buffer_high:
            src = self._source()
            if src is not None:
                src.pause_reading()  # idempotent; re-asserted on every write
                self._paused_source = True
        elif self._paused_source and held <= limits.write_buffer_low:
            self._paused_source = False
            src, sink = self._source(), self._sink()
            if src is None:
                return
            transport = sink.transport if sink is not None else None
            # Leave it paused if the socket behind us is itself full: its
            # resume_writing will resume the source.
            if transport is None or transport.get_write_buffer_size() <= limits.write_buffer_high:
                src.resume_reading()

    def _drained(self) -> None:
        if self.alive:
            self.conn.outlet_drained()


class TimedStage(Stage):
    """A stage that releases bytes at due times, in order (latency, bandwidth,
    slicer, and the message-delay gate).

    Queue items are bytes, `when_sent` callbacks, or whatever a subclass
    queues itself (`_passed` handles those).
    """

    def __init__(
        self, conn: Connection, direction: Direction, fault: ActiveFault, rng: random.Random
    ) -> None:
        super().__init__(conn, direction, fault, rng)
        self.queue: deque[tuple[float, Any]] = deque()
        self.held = 0
        self.last_due = 0.0
        self.eof_pending = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        return bool(self.queue) or self.eof_pending

    def enqueue(self, due: float, data: bytes) -> None:
        """Release `data` at `due` (`clock()` time), never before earlier data."""
        if due < self.last_due:
            due = self.last_due
        self.last_due = due
        if not self.queue and due <= clock():
            assert self.next is not None
            self.next.write(data)
            return
        self.queue.append((due, data))
        self.held += len(data)
        self._held_changed(self.held)
        if self._timer is None:
            self._arm(self.queue[0][0])

    def _arm(self, due: float) -> None:
        """Fire at `due` or later. The loop's own clock may lag (uvloop's is the
        loop iteration's start, in whole ms), so a timer set on it can fire a
        little before a delay measured from when the bytes came in is over;
        `_fire` then finds nothing due and arms again for the rest."""
        self._timer = self.loop.call_later(max(due - clock(), 0.0), self._fire)

    def when_sent(self, callback: Callable[[], None]) -> None:
        if self.queue:
            self.queue.append((self.last_due, callback))
        else:
            assert self.next is not None
            self.next.when_sent(callback)

    def write_eof(self) -> None:
        if self.queue:
            self.eof_pending = True
        else:
            super().write_eof()

    def _passed(self, item: Any) -> None:
        """A queued item that is not bytes reached the head of the queue."""
        assert self.next is not None
        self.next.when_sent(item)

    def _fire(self) -> None:
        self._timer = None
        if not self.alive:
            self.cancel()
            return
        now = clock()
        queue = self.queue
        nxt = self.next
        assert nxt is not None
        out: list[bytes] = []
        released = 0
        while queue and queue[0][0] <= now:
            item = queue.popleft()[1]
            if type(item) is bytes:
                out.append(item)
                released += len(item)
                continue
            if out:
                nxt.writelines(out)
                out = []
            self._passed(item)
        if out:
            if len(out) == 1:
                nxt.write(out[0])
            else:
                nxt.writelines(out)
        if released:
            self.held -= released
            self._held_changed(self.held)
        if queue:
            self._arm(queue[0][0])
        elif self.eof_pending:
            self.eof_pending = False
            nxt.write_eof()
            self._drained()

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        nxt = self.next
        assert nxt is not None
        while self.queue:
            item = self.queue.popleft()[1]
            if type(item) is bytes:
                nxt.write(item)
            else:
                self._passed(item)
        if self.held:
            self.held = 0
            self._held_changed(0)
        if self.eof_pending:
            self.eof_pending = False
            nxt.write_eof()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.queue.clear()
        self.held = 0
        self.eof_pending = False
