"""A recording TCP relay: what went each way on every connection, byte for byte.

Put one on each side of the proxy and compare: a transparent proxy writes
exactly what it read. The relay forwards half-closes, so connection endings
pass through it as they would without it.
"""

from __future__ import annotations

import asyncio
import contextlib


class TapConnection:
    def __init__(self) -> None:
        self.up = bytearray()  # client -> server
        self.down = bytearray()  # server -> client
        self.done = asyncio.Event()


class Tap:
    """`async with Tap(target_host, target_port) as tap:` then connect to `tap.address`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.connections: list[TapConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Tap:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_closed(self, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            for c in self.connections:
                await c.done.wait()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        rec = TapConnection()
        self.connections.append(rec)
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.close()
            rec.done.set()
            return

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, into: bytearray
        ) -> None:
            with contextlib.suppress(OSError):  # the peer may be gone by EOF time
                while data := await src.read(65536):
                    into += data
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()

        try:
            await asyncio.gather(
                pump(c_reader, u_writer, rec.up), pump(u_reader, c_writer, rec.down)
            )
        finally:
            for w in (c_writer, u_writer):
                w.close()
            rec.done.set()
            self._tasks.discard(task)
