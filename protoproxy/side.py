"""One socket of a proxied connection (asyncio Protocol), and THE crash boundary.

A Side knows its `role` (the accepted client socket, or the server socket we
opened); the direction of the bytes it reads follows from it (`reads`). It
lives apart from `connection` so that `upstream` can make server Sides
without importing the connection (no import cycle).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from protoproxy_codecs.base import Direction

from .tls import TlsEngine, TlsError

if TYPE_CHECKING:
    from .connection import Connection

UPSTREAM = Direction.UPSTREAM
DOWNSTREAM = Direction.DOWNSTREAM


class Role(enum.Enum):
    """Which socket of the pair: the one a client opened to us, or ours to the server."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def reads(self) -> Direction:
        """A client sends requests (UPSTREAM-bound), a server responses."""
        return UPSTREAM if self is Role.CLIENT else DOWNSTREAM


class Side(asyncio.Protocol):
    """One socket of a proxied connection, optionally wrapped in TLS.

    THE crash boundary: every asyncio callback that enters the connection
    (connection_made, data_received, eof_received, connection_lost,
    pause/resume_writing) catches any exception the connection lets out,
    which is by then a bug (a filter, an observer, a codec raising something
    other than DecodeError, a LifecycleError), and hands it to
    `Connection.crashed`: one log line with the traceback, one
    ``internal_error`` count, that connection closed in its protocol's way.
    The other place is the upstream connect task (`Connection._connect_task`).
    Nowhere else on the data path catches everything; `try` costs nothing
    until something raises.
    """

    def __init__(self, conn: Connection, role: Role, tls: TlsEngine | None = None) -> None:
        self.conn = conn
        self.role = role
        #: the direction of the bytes this socket delivers (derived from role)
        self.reads = role.reads
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.eof_sent = False
        self.eof_seen = False
        self.closed = False
        self.paused = False  # our reading is paused by backpressure
        #: ns the connect (and TLS handshake) took, for a server socket
        self.connect_time = 0
        self._sink: Callable[[bytes], None] = self._deliver

    # -- asyncio callbacks: the crash boundary ------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        try:
            # uvloop's transports are not asyncio.Transport subclasses; same interface.
            self.transport = cast(asyncio.Transport, transport)
            limits = self.conn.proxy.config.limits
            self.transport.set_write_buffer_limits(
                limits.write_buffer_high, limits.write_buffer_low
            )
            if self.role is Role.SERVER:
                if self.tls is not None:
                    self.transport.write(self.tls.start())
                else:
                    self.ready.set_result(None)
            else:
                self.conn.accepted(self)
        except Exception as exc:
            self.conn.crashed(exc)

    def data_received(self, data: bytes) -> None:
        try:
            tls = self.tls
            if tls is None:
                self.conn.on_data(self.reads, data)
                return
            self._tls_received(tls, data)
        except Exception as exc:
            self.conn.crashed(exc)

    def _tls_received(self, tls: TlsEngine, data: bytes) -> None:
        was_ready = tls.handshaked
        try:
            out = tls.receive(data, self._sink)
        except TlsError as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
                self.ready.exception()  # consumed by whoever awaits; don't warn
            self.conn.tls_failed(self, exc)
            return
        if out and self.transport is not None:
            self.transport.write(out)
        if not was_ready and tls.handshaked:
            if self.role is Role.SERVER:
                if not self.ready.done():
                    self.ready.set_result(None)
            else:
                self.conn.downstream_tls_ready(self)
        if tls.eof and not self.eof_seen:
            self.eof_received()

    def _deliver(self, plain: bytes) -> None:
        self.conn.on_data(self.reads, plain)

    def eof_received(self) -> bool:
        try:
            if not self.eof_seen:
                self.eof_seen = True
                self.conn.on_eof(self.reads)
        except Exception as exc:
            self.conn.crashed(exc)
        return True  # keep the transport open: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed during setup"))
            self.ready.exception()
        try:
            self.conn.side_lost(self, exc)
        except Exception as error:
            self.conn.crashed(error)

    def pause_writing(self) -> None:
        try:
            self.conn.backpressure(self, True)
        except Exception as exc:
            self.conn.crashed(exc)

    def resume_writing(self) -> None:
        try:
            self.conn.backpressure(self, False)
        except Exception as exc:
            self.conn.crashed(exc)

    # -- used by the connection --------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is None or self.eof_sent:
            return
        if self.tls is not None:
            data = self.tls.send(data)
        self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if self.transport is None or self.eof_sent:
            return
        if self.tls is not None:
            self.transport.write(self.tls.send(b"".join(chunks)))
        else:
            self.transport.writelines(chunks)

    def when_sent(self, callback: Callable[[], None]) -> None:
        if self.transport is not None and not self.eof_sent and not self.transport.is_closing():
            callback()

    def write_eof(self) -> None:
        if self.eof_sent or self.transport is None or self.transport.is_closing():
            return
        self.eof_sent = True
        if self.tls is not None:
            self.transport.write(self.tls.close_notify())
        elif self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except OSError:
                # asyncio's transport shuts the socket down at once and raises
                # ENOTCONN when the peer already reset: that is a reset, not a bug
                self.transport.abort()
        else:
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def peername(self) -> str:
        if self.transport is None:
            return "-"
        peer = self.transport.get_extra_info("peername")
        if not peer:
            return "-"
        return f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
