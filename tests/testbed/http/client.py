"""Clients for tests against the fake service: a minimal h11-based asyncio client, and curl."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11

from tests.tools import require_tool


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    """Run curl (silent but for errors, 20 s cap) with `args`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        require_tool("curl"),
        "-sS",
        "--max-time",
        "20",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    interim: list[int]

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


class H11Client:
    """One keep-alive connection; `request()` runs one exchange at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> H11Client:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def _event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(65536))

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        wait_for_continue: bool = False,
    ) -> Response:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        hs = [("host", "fake.test"), *(headers or [])]
        if body and not any(k.lower() == "content-length" for k, _ in hs):
            hs.append(("content-length", str(len(body))))
        self.writer.write(self.conn.send(h11.Request(method=method, target=target, headers=hs)))
        interim: list[int] = []
        if wait_for_continue:
            event = await self._event()
            assert isinstance(event, h11.InformationalResponse), event
            interim.append(event.status_code)
        if body:
            self.writer.write(self.conn.send(h11.Data(data=body)))
        self.writer.write(self.conn.send(h11.EndOfMessage()))
        await self.writer.drain()
        while True:
            event = await self._event()
            if isinstance(event, h11.InformationalResponse):
                interim.append(event.status_code)
                continue
            assert isinstance(event, h11.Response), event
            break
        data = bytearray()
        while True:
            ev = await self._event()
            if isinstance(ev, h11.EndOfMessage):
                break
            assert isinstance(ev, h11.Data), ev
            data += ev.data
        return Response(event.status_code, list(event.headers), bytes(data), interim)
