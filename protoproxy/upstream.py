"""Upstream clusters: endpoints, round robin, connect timeout and retry."""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protoproxy_codecs.base import now_ns

from .config import Address, Upstream
from .side import Role, Side
from .tls import ClientTls, TlsError

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("protoproxy.upstream")


class ConnectError(Exception):
    """Every endpoint we tried failed; `reason` is the last failure's token."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(eq=False)
class Endpoint:
    address: Address
    connections: int = 0  # opened in total
    active: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.address)


class Cluster:
    """A named set of endpoints that a listener forwards to."""

    def __init__(self, config: Upstream, connect_timeout: float) -> None:
        self.config = config
        self.name = config.name
        self.endpoints = [Endpoint(a) for a in config.endpoints]
        self.connect_timeout = config.connect_timeout or connect_timeout
        self.attempts = config.connect_attempts or len(self.endpoints)
        self.tls = ClientTls(config.tls) if config.tls is not None else None
        self._next = 0

    def reconfigure(self, fresh: Cluster) -> None:
        """Take `fresh`'s settings (a config reload): connections made from now on
        use its endpoints, TLS and timeouts. Established ones keep the endpoint and
        TLS session they have; an endpoint in both keeps its counters."""
        kept = {e.name: e for e in self.endpoints}
        self.config = fresh.config
        self.endpoints = [kept.get(e.name, e) for e in fresh.endpoints]
        self.connect_timeout = fresh.connect_timeout
        self.attempts = fresh.attempts
        self.tls = fresh.tls
        self._next = 0

    def _order(self) -> list[Endpoint]:
        start = self._next
        self._next = (start + 1) % len(self.endpoints)
        n = len(self.endpoints)
        return [self.endpoints[(start + i) % n] for i in range(self.attempts)]

    async def connect(self, conn: Connection, alpn: tuple[str, ...]) -> tuple[Side, Endpoint]:
        """Open an upstream Side for `conn`, trying endpoints in round-robin order."""
        loop = asyncio.get_running_loop()
        last: ConnectError | None = None
        for endpoint in self._order():
            host, port = endpoint.address.host, endpoint.address.port
            engine = self.tls.engine(host, alpn) if self.tls is not None else None
            side = Side(conn, Role.SERVER, engine)
            started = now_ns()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await loop.create_connection(lambda s=side: s, host, port)
                    await side.ready
                side.connect_time = now_ns() - started
            except TimeoutError:
                side.abort()
                last = ConnectError(
                    f"connect to {endpoint.name} timed out after {self.connect_timeout:g}s",
                    "connect_timeout",
                )
            except ConnectionRefusedError:
                last = ConnectError(f"{endpoint.name} refused the connection", "upstream_refused")
            except TlsError as exc:
                side.abort()
                last = ConnectError(f"TLS to {endpoint.name} failed: {exc}", f"tls_{exc.reason}")
            except asyncio.CancelledError:
                side.abort()
                raise
            except OSError as exc:
                reason = errno.errorcode.get(exc.errno or 0, "oserror").lower()
                last = ConnectError(f"connect to {endpoint.name} failed: {exc}", reason)
            else:
                endpoint.connections += 1
                endpoint.active += 1
                return side, endpoint
            endpoint.failures[last.reason] = endpoint.failures.get(last.reason, 0) + 1
            conn.proxy.metrics.upstream_failures.inc((self.name, endpoint.name, last.reason))
            log.debug("conn %d: %s", conn.id, last)
        assert last is not None
        raise last
