"""The data-path side of a tap: byte hooks on one tapped connection.

A connection no tap matches carries no hook at all: `Connection.on_data`
and the Sides' `write`, `writelines` and `write_eof` are the class's own,
so a proxy with no tap pays nothing per chunk. A tapped connection gets
instance attributes that shadow them (functions are non-data descriptors,
so the instance's wins) and call the class's after queueing one event per
tap; removing the tap deletes the attributes again.

What is recorded, per leg (side 0 initiates, side 1 accepts):
- client leg: what the proxy read from the client (`on_data` UPSTREAM) and
  what it wrote to it (`client.write*`), plaintext when TLS is terminated;
- upstream leg: what the proxy wrote to the upstream (`server.write*`) and
  read from it (`on_data` DOWNSTREAM), plaintext before upstream TLS.
Half-closes become FINs (`on_eof`, `write_eof`, a graceful `close`),
aborts and peer resets RSTs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction, now_ns

from ..connection import Connection
from ..side import Side
from .writer import CLIENT_LEG, DATA, FIN, OPEN, RST, UPSTREAM_LEG, TapFiles, TappedConn

if TYPE_CHECKING:
    from collections.abc import Callable

UPSTREAM = Direction.UPSTREAM
_SIDE_METHODS = ("write", "writelines", "write_eof", "close", "abort")
_CONN_METHODS = ("on_data", "on_eof", "side_lost")


def _address(side: Side, which: str) -> tuple[str, int]:
    transport = side.transport
    info = transport.get_extra_info(which) if transport is not None else None
    if not info:
        return ("0.0.0.0", 0)
    return (str(info[0]), int(info[1]))


class ConnTap:
    """Every tap recording one connection, and the hooks that feed them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sinks: list[tuple[TapFiles, TappedConn]] = []

    # -- taps joining and leaving --------------------------------------------------------
    def add(self, files: TapFiles, notes: list[str]) -> TappedConn:
        conn = self.conn
        client, server = conn.client, conn.server
        assert client is not None and server is not None
        tc = TappedConn(
            id=conn.id,
            protocol=conn.protocol,
            addresses=[
                (_address(client, "peername"), _address(client, "sockname")),
                (_address(server, "sockname"), _address(server, "peername")),
            ],
            notes=notes,
        )
        ts = now_ns()
        files.put((OPEN, tc, CLIENT_LEG, 0, ts, None, 0), 0)
        files.put((OPEN, tc, UPSTREAM_LEG, 0, ts, None, 0), 0)
        if conn.pending:  # client bytes waiting for the upstream: read, not yet relayed
            data = b"".join(conn.pending)
            files.put((DATA, tc, CLIENT_LEG, 0, ts, data, 0), len(data))
            tc.offsets[CLIENT_LEG][0] = len(data)
        if not self.sinks:
            self._install()
        self.sinks.append((files, tc))
        return tc

    def remove(self, files: TapFiles) -> None:
        kept = [(f, tc) for f, tc in self.sinks if f is not files]
        for f, tc in self.sinks:
            if f is files:
                ts = now_ns()
                for leg in (CLIENT_LEG, UPSTREAM_LEG):
                    for side in (0, 1):
                        f.put((FIN, tc, leg, side, ts, None, tc.offsets[leg][side]), 0)
        self.sinks[:] = kept
        if not kept:
            self._uninstall()

    # -- recording -------------------------------------------------------------------------
    def record(self, kind: int, leg: int, side: int, data: bytes | None) -> None:
        n = len(data) if data is not None else 0
        ts = now_ns()
        for files, tc in self.sinks:
            off = tc.offsets[leg]
            files.put((kind, tc, leg, side, ts, data, off[side]), n)
            off[side] += n

    def closed(self) -> None:
        """The connection is gone: whatever did not end yet ends now."""
        for leg in (CLIENT_LEG, UPSTREAM_LEG):
            for side in (0, 1):
                self.record(FIN, leg, side, None)

    # -- the hooks ----------------------------------------------------------------------------
    def _install(self) -> None:
        conn = self.conn
        record = self.record
        on_data = Connection.on_data
        on_eof = Connection.on_eof
        side_lost = Connection.side_lost

        def tapped_on_data(direction: Direction, data: bytes) -> None:
            if direction is UPSTREAM:
                record(DATA, CLIENT_LEG, 0, data)
            else:
                record(DATA, UPSTREAM_LEG, 1, data)
            on_data(conn, direction, data)

        def tapped_on_eof(direction: Direction) -> None:
            if direction is UPSTREAM:
                record(FIN, CLIENT_LEG, 0, None)
            else:
                record(FIN, UPSTREAM_LEG, 1, None)
            on_eof(conn, direction)

        def tapped_side_lost(side: Side, exc: Exception | None) -> None:
            if exc is not None:  # the peer reset
                if side is conn.client:
                    record(RST, CLIENT_LEG, 0, None)
                else:
                    record(RST, UPSTREAM_LEG, 1, None)
            side_lost(conn, side, exc)

        conn.on_data = tapped_on_data  # type: ignore[method-assign]
        conn.on_eof = tapped_on_eof  # type: ignore[method-assign]
        conn.side_lost = tapped_side_lost  # type: ignore[method-assign]
        assert conn.client is not None and conn.server is not None
        _hook_side(conn.client, record, CLIENT_LEG, 1)
        _hook_side(conn.server, record, UPSTREAM_LEG, 0)

    def _uninstall(self) -> None:
        conn = self.conn
        for name in _CONN_METHODS:
            conn.__dict__.pop(name, None)
        for side in (conn.client, conn.server):
            if side is not None:
                for name in _SIDE_METHODS:
                    side.__dict__.pop(name, None)


def _hook_side(
    side: Side, record: Callable[[int, int, int, bytes | None], None], leg: int, me: int
) -> None:
    """What the proxy writes to `side` is sent by the proxy's end of `leg` (`me`)."""

    def live() -> bool:
        t = side.transport
        return t is not None and not side.eof_sent and not t.is_closing()

    def write(data: bytes) -> None:
        if live():
            record(DATA, leg, me, bytes(data))
        Side.write(side, data)

    def writelines(chunks: list[bytes]) -> None:
        if live():
            record(DATA, leg, me, b"".join(chunks))
        Side.writelines(side, chunks)

    def write_eof() -> None:
        if live():
            record(FIN, leg, me, None)
        Side.write_eof(side)

    def close() -> None:
        if live():
            record(FIN, leg, me, None)
        Side.close(side)

    def abort() -> None:
        if side.transport is not None and not side.closed:
            record(RST, leg, me, None)
        Side.abort(side)

    side.write = write  # type: ignore[method-assign]
    side.writelines = writelines  # type: ignore[method-assign]
    side.write_eof = write_eof  # type: ignore[method-assign]
    side.close = close  # type: ignore[method-assign]
    side.abort = abort  # type: ignore[method-assign]
