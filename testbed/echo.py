"""A TCP echo service: the simplest upstream, for demos and transparency tests.

It honours half-close: when the client shuts down its sending side, the
echo finishes sending what it has and then shuts down its own.
"""

from __future__ import annotations

import asyncio
from typing import cast


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        if self.transport.can_write_eof():
            self.transport.write_eof()
        return True


class EchoService:
    """`async with EchoService() as echo:` then connect to `echo.address`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(_Echo, self.host, self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> EchoService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
