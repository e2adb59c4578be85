"""The process-wide memory budget (``limits.memory``): account, pause, shed.

Why: every per-connection bound (a 16 MiB Kafka frame, a 256 KiB HTTP/1 head,
a 1 MiB write buffer) is reasonable alone, and ruinous times thousands of
connections. One accountant per Proxy adds up what connections hold: the
codec's unfinished units (`buffered()`), the bytes waiting for the upstream
(`pending`, the ClientHello `head`) and both transports' write buffers.

Cost: nothing per byte. A connection is sampled when it has read another
`SAMPLE_STEP` bytes (one comparison in `Connection.on_data`) and by the
periodic sweep (`Proxy._sweep_limits`, every 250 ms at most); `total` is the
sum of the last samples, so it lags growth by at most one step per
connection plus one sweep.

Past the budget, the side whose read crossed it stops reading, and the
connections holding the most (oldest first among equals) are closed with
their protocol's goodbye (`Connection.overstep`, MEMORY_SHED: HTTP/1 503,
HTTP/2 GOAWAY ENHANCE_YOUR_CALM, Kafka and TCP a close) until the total is
under `LOW_WATER` of the budget (headroom, so one more read does not shed
again); paused sides read again as soon as the total is under the budget
(checked by the sweep), so a connection is never left paused while nothing
is shed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction

from .connection_state import LIVE, Event

if TYPE_CHECKING:
    from .connection import Connection
    from .proxy import Proxy
    from .side import Side

#: bytes a connection reads between two samples of what it holds
SAMPLE_STEP = 64 * 1024
#: the same for an opaque connection (tcp, no filter): its codec holds nothing,
#: and its write buffers are bounded by backpressure, so bulk relays pay less
OPAQUE_STEP = 1024 * 1024
#: shedding stops under this fraction of the budget
LOW_WATER = 0.9


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's malloc_trim(0), or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


#: hand freed heap pages back to the OS after an attack: without it glibc keeps
#: most of what shed connections held (RSS stays high long after)
TRIM = _malloc_trim()


def held(conn: Connection) -> int:
    """Bytes `conn` holds now: codec units, pre-upstream bytes, write buffers."""
    total = conn.pending_size + len(conn.head)
    buffered = getattr(conn.codec, "buffered", None)  # stand-in codecs may lack it
    if buffered is not None:
        total += buffered()
    return total + _write_buffered(conn)


def _write_buffered(conn: Connection) -> int:
    total = 0
    for side in (conn.client, conn.server):
        if side is not None and side.transport is not None:
            total += side.transport.get_write_buffer_size()
    return total


class MemoryAccountant:
    """`limits.memory` for one Proxy: the sum of what its connections hold."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.budget = proxy.config.limits.memory
        #: bytes held, as of each connection's last sample
        self.total = 0
        #: connections whose reading this accountant paused, by id
        self.paused: dict[int, tuple[Connection, Side]] = {}
        self._shed_scheduled = False
        #: the total went past half the budget since the last trim
        self._high = False
        stats = proxy.stats
        self.shed_total = stats.counter(
            "protoproxy_memory_shed_total",
            "Connections closed because the proxy was over limits.memory",
            ("listener",),
        )
        self.buffered_gauge = stats.gauge(
            "protoproxy_memory_buffered_bytes",
            "Bytes connections hold (codec buffers, pending bytes, write buffers)",
            (),
        )
        self.buffered_gauge.set((), 0)

    # -- the read path ------------------------------------------------------------
    def sample(self, conn: Connection, direction: Direction) -> None:
        """`conn` read another SAMPLE_STEP bytes: update its share, act if over."""
        budgets = conn.budgets
        now_held = held(conn)
        self.total += now_held - budgets.held
        budgets.held = now_held
        counts = conn.bytes
        budgets.sample_at = counts[0] + counts[1] + (OPAQUE_STEP if conn.opaque else SAMPLE_STEP)
        if self.total <= self.budget:
            return
        reader = conn.client if direction is Direction.UPSTREAM else conn.server
        if reader is not None:
            self._pause(conn, reader)
        if not self._shed_scheduled:  # once per loop turn, however many reads cross
            self._shed_scheduled = True
            conn.loop.call_soon(self.shed)

    def _pause(self, conn: Connection, side: Side) -> None:
        side.pause_reading()
        conn.budgets.paused = True
        self.paused[conn.id] = (conn, side)

    # -- the sweep ------------------------------------------------------------------
    def recount(self) -> int:
        """Sample every live connection afresh.

        Ended ones are left out: their buffers go with them once their sockets
        are gone, and counting them would shed more connections for nothing.
        """
        total = 0
        for conn in self.proxy.connections.values():
            budgets = conn.budgets
            if conn.machine.state not in LIVE:
                budgets.held = 0
                continue
            budgets.held = held(conn)
            total += budgets.held
        self.total = total
        self.buffered_gauge.set((), total)
        return total

    def sweep(self) -> None:
        """Periodic: recount, shed when over, resume paused sides when under."""
        total = self.recount()
        if total > self.budget:
            self.shed()
        elif self.paused:
            self._resume_if_under()
        if total > self.budget // 2:
            self._high = True
        elif self._high and total < self.budget // 10:
            self._high = False
            if TRIM is not None:
                TRIM()  # once per high-then-low swing: milliseconds, not per sweep

    def shed(self) -> None:
        """Close the biggest holders (oldest first among equals) until under LOW_WATER."""
        self._shed_scheduled = False
        total = self.recount()
        if total > self.budget:
            floor = self.budget * LOW_WATER
            conns = sorted(
                (c for c in self.proxy.connections.values() if c.budgets.held),
                key=lambda c: (-c.budgets.held, c.started),
            )
            for conn in conns:
                if total <= floor:
                    break
                total -= conn.budgets.held
                self._close(conn)
            self.total = total
            self.buffered_gauge.set((), total)
        self._resume_if_under()

    def _close(self, conn: Connection) -> None:
        amount = conn.budgets.held
        conn.budgets.held = 0
        self.paused.pop(conn.id, None)
        self.shed_total.inc((conn.listener.name,))
        # A big write buffer would be flushed (and held) by a graceful close,
        # maybe forever to a peer that does not read: abort those.
        graceful = _write_buffered(conn) < SAMPLE_STEP
        conn.overstep(
            Event.MEMORY_SHED,
            f"held {amount} bytes while the proxy was over limits.memory ({self.budget})",
            graceful=graceful,
        )

    def _resume_if_under(self) -> None:
        if self.total >= self.budget or not self.paused:
            return
        high = self.proxy.config.limits.write_buffer_high
        for conn, side in list(self.paused.values()):
            conn.budgets.paused = False
            if conn.machine.state not in LIVE:
                continue
            # Leave transport backpressure in force: the other side may still be full.
            other = conn.server if side is conn.client else conn.client
            transport = other.transport if other is not None else None
            if transport is not None and transport.get_write_buffer_size() >= high:
                continue
            side.resume_reading()
        self.paused.clear()
