"""Listeners: accept sockets, terminate or pass through TLS, pick the upstream."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .config import Listener
from .connection import Connection
from .side import Role, Side
from .tls import ServerTls

if TYPE_CHECKING:
    from .proxy import Proxy
    from .upstream import Cluster

log = logging.getLogger("protoproxy.listener")


class ListenError(OSError):
    """A listener that cannot bind: says which listener and which address.

    An OSError still (same errno), so callers that handle socket errors keep
    working, but its text is what a user needs when two things want one port:
    ``listener 'kafka' cannot listen on 127.0.0.1:19092: address already in use``.
    """

    def __init__(self, what: str, host: str, port: int, exc: OSError) -> None:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # asyncio's own text repeats the address as a tuple; the errno's is enough.
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        super().__init__(exc.errno, f"{what} cannot listen on {where}: {reason}")
        self.address = where

    def __str__(self) -> str:
        return str(self.strerror)


class ListenerRuntime:
    def __init__(
        self, proxy: Proxy, config: Listener, clusters: Mapping[str, Cluster] | None = None
    ) -> None:
        """`clusters` (default: the proxy's) is where upstream names are looked up:
        a reload builds listeners against clusters it has not registered yet."""
        self.proxy = proxy
        self.config = config
        self.name = config.name
        self.tls_mode = config.tls.mode if config.tls is not None else None
        self.server_tls = (
            ServerTls(config.tls)
            if config.tls is not None and config.tls.mode == "terminate"
            else None
        )
        clusters = proxy.clusters if clusters is None else clusters
        self.default: Cluster | None = (
            clusters[config.upstream] if config.upstream is not None else None
        )
        self.by_sni: dict[str, Cluster] = {r.sni: clusters[r.upstream] for r in config.routes}
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None
        self.enabled = config.enabled

    def route(self, conn: Connection) -> Cluster | None:
        """The cluster for a connection: its SNI's route, else the default."""
        if conn.sni is not None and self.by_sni:
            cluster = self.by_sni.get(conn.sni)
            if cluster is None:
                # wildcard routes: "*.example.com"
                for pattern, c in self.by_sni.items():
                    if pattern.startswith("*.") and conn.sni.partition(".")[2] == pattern[2:]:
                        cluster = c
                        break
            if cluster is not None:
                return cluster
        return self.default

    def _accept(self) -> Side:
        conn = Connection(self.proxy, self)
        return Side(conn, Role.CLIENT)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Once bound, keep the port: a re-enabled listener must come back where it was.
        port = self.address[1] if self.address else self.config.listen.port
        try:
            self.server = await loop.create_server(
                self._accept,
                self.config.listen.host,
                port,
                reuse_address=True,
                backlog=1024,
            )
        except OSError as exc:
            raise ListenError(
                f"listener {self.name!r}", self.config.listen.host, port, exc
            ) from exc
        sock = self.server.sockets[0]
        self.address = sock.getsockname()[:2]
        for s in self.server.sockets:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("listener %s on %s:%d (%s)", self.name, *self.address, self.config.protocol)

    @property
    def port(self) -> int:
        assert self.address is not None, "listener not started"
        return int(self.address[1])

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def set_enabled(self, enabled: bool) -> None:
        """Take the listener down (close it and its connections) or bring it back.

        This is Toxiproxy's `enabled: false`: clients see connection refused.
        """
        if enabled == self.enabled:
            return
        self.enabled = enabled
        if enabled:
            await self.start()
            return
        self.stop_accepting()
        for conn in list(self.proxy.connections.values()):
            if conn.listener is self:
                conn.fail("listener_down", "listener disabled")
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None
