"""One tap's files: a bounded queue on the data path, drained by a writer thread.

The data path only appends events to a deque (`TapQueue.put`): no lock, no
wake-up, no I/O. When the deque holds `queue` events or `queue_bytes` bytes
the event is dropped and counted; the bytes it carried become a hole in the
sequence numbers, which Wireshark shows as "previous segment not captured".
The writer thread polls the deque, turns events into packets (`packets`),
redacts (`redact`), and writes pcapng blocks (`pcapng`) one batch per
`write`. Files rotate at `max_file_bytes`, only the newest `max_files` are
kept, and the tap stops once it has written `max_bytes` in all.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import pcapng
from .packets import Endpoint, TcpLeg
from .redact import LegRedactor, for_protocol

log = logging.getLogger("protoproxy.capture")

#: event kinds
OPEN, DATA, FIN, RST = 0, 1, 2, 3
#: legs: interface ids in every file
CLIENT_LEG, UPSTREAM_LEG = 0, 1
POLL = 0.005  # seconds the writer sleeps when the queue is empty
BATCH = 4096  # events per write

Event = tuple  # (kind, TappedConn, leg, side, ts_ns, payload | None, offset)


@dataclass(eq=False)
class TappedConn:
    """What the writer needs of one connection: its legs' addresses and protocol.

    `offsets[leg][side]` is owned by the data path: the stream offset of the
    next byte that side sends, so a dropped event leaves a hole of its size.
    """

    id: int
    protocol: str
    #: per leg: (initiator host, port), (acceptor host, port)
    addresses: list[tuple[tuple[str, int], tuple[str, int]]]
    #: per leg: the comment on its first packet ("decrypted TLS", "joined mid-stream")
    notes: list[str]
    offsets: list[list[int]] = field(default_factory=lambda: [[0, 0], [0, 0]])


@dataclass
class Limits:
    max_file_bytes: int
    max_files: int
    max_bytes: int
    queue: int
    queue_bytes: int
    redact: bool


class _LegState:
    __slots__ = ("expected", "redactor", "tcp")

    def __init__(self, tcp: TcpLeg, redactor: LegRedactor | None) -> None:
        self.tcp = tcp
        self.redactor = redactor
        self.expected = [0, 0]


class TapFiles:
    """A tap's queue and writer thread; the counters are read by the admin API."""

    def __init__(
        self,
        name: str,
        folder: Path,
        limits: Limits,
        clock_offset: int,
        report: Callable[[int, int, int], None] | None = None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.folder = folder
        self.limits = limits
        self.clock_offset = clock_offset  # wall ns - monotonic ns
        self.report = report  # (packets, bytes, budget drops) after each batch
        self.on_drop = on_drop  # (reason) on the data path, for each event it drops
        self.events: collections.deque[Event] = collections.deque()
        #: what the data path may still queue (0 once the byte budget is spent)
        self.room = limits.queue
        self.queued_bytes = 0  # data path's running total
        self.done_bytes = 0  # the writer's running total
        self.dropped = 0  # events the data path could not queue
        self.dropped_bytes = 0
        self.packets = 0
        self.bytes = 0  # written to files, in all
        self.exhausted = False
        self.files: list[Path] = []
        #: bytes of each file that are complete blocks (what a download may read)
        self.synced: dict[Path, int] = {}
        self._legs: dict[tuple[int, int], _LegState] = {}
        self._file: object = None
        self._size = 0
        self._serial = 0
        self._stop = threading.Event()
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"tap-{name}", daemon=True)
        self.lock = threading.Lock()  # files list and synced sizes vs the download
        folder.mkdir(parents=True, exist_ok=True)
        self._rotate()  # a tap that saw nothing still downloads as a valid (empty) capture
        self._file.flush()  # type: ignore[attr-defined]
        self.synced[self.files[-1]] = self._size
        self._thread.start()

    # -- the data path -----------------------------------------------------------------
    def put(self, event: Event, size: int) -> bool:
        """Queue one event; False (and counted) when the queue is full."""
        if (
            len(self.events) < self.room
            and self.queued_bytes - self.done_bytes < self.limits.queue_bytes
        ):
            self.events.append(event)
            self.queued_bytes += size
            return True
        self.dropped += 1
        self.dropped_bytes += size
        if self.on_drop is not None:
            self.on_drop("budget" if self.exhausted else "queue_full")
        return False

    # -- control ---------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait (blocking, polling) until everything queued so far is written."""
        deadline = time.monotonic() + timeout
        while self.events or self._busy:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                if not self.events:
                    if self._stop.is_set():
                        break
                    self._stop.wait(POLL)
                    continue
                self._busy = True
                try:
                    self._batch()
                finally:
                    self._busy = False
        except OSError as exc:
            log.error(
                "tap %s: cannot write into %s: %s; the tap stopped", self.name, self.folder, exc
            )
            self.room = 0
            self.exhausted = True
            self.events.clear()
        finally:
            self._close_file()

    def _batch(self) -> None:
        events = self.events
        blocks: list[bytes] = []
        nbytes = 0
        npackets = 0
        for _ in range(min(len(events), BATCH)):
            kind, conn, leg, side, ts, payload, offset = events.popleft()
            if payload is not None:
                nbytes += len(payload)
            ts += self.clock_offset
            for pkt, comment, s in self._packets(kind, conn, leg, side, payload, offset):
                flags = pcapng.INBOUND if (s == 0) == (leg == CLIENT_LEG) else pcapng.OUTBOUND
                blocks.append(pcapng.packet(leg, ts, pkt, flags, comment))
                ts += 1  # one ns apart: the packets of one event keep their order
                npackets += 1
        self.done_bytes += nbytes
        if blocks:
            self._write(blocks, npackets)

    def _packets(
        self, kind: int, conn: TappedConn, leg: int, side: int, payload: bytes | None, offset: int
    ) -> list[tuple[bytes, str | None, int]]:
        key = (conn.id, leg)
        if kind == OPEN:
            (a, b) = conn.addresses[leg]
            tcp = TcpLeg(Endpoint(*a), Endpoint(*b), key=conn.id * 2 + leg)
            redactor = for_protocol(conn.protocol) if self.limits.redact else None
            self._legs[key] = _LegState(tcp, redactor)
            note = conn.notes[leg] or None
            return [
                (p, note if i == 0 else None, s)
                for i, (p, s) in enumerate(zip(tcp.handshake(), (0, 1, 0), strict=True))
            ]
        state = self._legs.get(key)
        if state is None:
            return []
        tcp, red = state.tcp, state.redactor
        out: list[tuple[bytes, str | None, int]] = []
        if kind == DATA:
            assert payload is not None
            hole = offset - state.expected[side]
            if hole > 0:
                if red is not None:
                    held = red.sides[side].gap()
                    out += [(p, None, side) for p in tcp.data(side, held)]
                tcp.skip(side, hole)
            state.expected[side] = offset + len(payload)
            data = red.sides[side].feed(payload) if red is not None else payload
            out += [(p, None, side) for p in tcp.data(side, data)]
            return out
        if red is not None:
            out += [(p, None, side) for p in tcp.data(side, red.sides[side].close())]
        if kind == FIN:
            out += [(p, None, s) for p, s in zip(tcp.finish(side), (side, 1 - side), strict=False)]
        else:
            out += [(p, None, side) for p in tcp.abort(side)]
        if tcp.closed:
            del self._legs[key]
        return out

    def _write(self, blocks: list[bytes], npackets: int) -> None:
        data = b"".join(blocks)
        limits = self.limits
        if self.bytes + len(data) > limits.max_bytes:
            self.exhausted = True
            self.room = 0
            self.events.clear()
            log.warning(
                "tap %s: its byte budget (%d) is spent; it stopped writing",
                self.name,
                limits.max_bytes,
            )
            if self.report is not None:
                self.report(0, 0, npackets)
            return
        if self._file is None or self._size >= limits.max_file_bytes:
            self._rotate()
        f = self._file
        f.write(data)  # type: ignore[attr-defined]
        f.flush()  # type: ignore[attr-defined]
        self._size += len(data)
        self.bytes += len(data)
        self.packets += npackets
        with self.lock:
            self.synced[self.files[-1]] = self._size
        if self.report is not None:
            self.report(npackets, len(data), 0)

    def _rotate(self) -> None:
        self._close_file()
        self._serial += 1
        path = self.folder / f"{self.name}-{self._serial:04d}.pcapng"
        self._file = open(path, "wb")  # noqa: SIM115 - kept open across batches
        head = (
            pcapng.section("protoproxy tap")
            + pcapng.interface("client", "client <-> proxy")
            + pcapng.interface("upstream", "proxy <-> upstream")
        )
        self._file.write(head)  # type: ignore[attr-defined]
        self._size = len(head)
        self.bytes += len(head)
        with self.lock:
            self.files.append(path)
            self.synced[path] = 0
            while len(self.files) > self.limits.max_files:
                old = self.files.pop(0)
                self.synced.pop(old, None)
                try:
                    os.unlink(old)
                except OSError:
                    pass

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._file = None

    # -- the download -------------------------------------------------------------------------
    def parts(self) -> list[tuple[Path, int]]:
        """The kept files and how much of each holds whole blocks, oldest first."""
        with self.lock:
            return [(p, self.synced.get(p, 0)) for p in self.files]
