"""A tiny TCP relay that runs Http1Codec on live traffic (test helper only).

It forwards each message's `raw` toward the receiver of the message's
direction (the codec only ever returns messages of the fed direction).
"""

from __future__ import annotations

import asyncio
import contextlib

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Direction, Exchange, Message
from protoproxy_codecs.http1 import Http1Codec


class CodecRelay:
    def __init__(self, upstream: tuple[str, int], read_size: int = 7) -> None:
        self.upstream = upstream
        self.read_size = read_size  # small on purpose: heads split across reads
        self.messages: list[Message] = []
        self.exchanges: list[Exchange] = []
        self.errors: list[DecodeError] = []
        self.read = {UPSTREAM: bytearray(), DOWNSTREAM: bytearray()}
        self.written = {UPSTREAM: bytearray(), DOWNSTREAM: bytearray()}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CodecRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        u_reader, u_writer = await asyncio.open_connection(*self.upstream)
        codec = Http1Codec()
        writers = {UPSTREAM: u_writer, DOWNSTREAM: c_writer}

        def deliver(messages: list[Message]) -> None:
            for m in messages:
                self.messages.append(m)
                self.written[m.direction] += m.raw
                writers[m.direction].write(m.raw)
            self.exchanges.extend(codec.take_exchanges())

        async def pump(direction: Direction, reader: asyncio.StreamReader) -> None:
            try:
                while data := await reader.read(self.read_size):
                    self.read[direction] += data
                    deliver(codec.feed(direction, data))
                deliver(codec.eof(direction))
                peer = writers[direction]
                if peer.can_write_eof():
                    peer.write_eof()
            except DecodeError as e:
                self.errors.append(e)
                to_sender, to_peer = codec.error_reply(direction, e)
                writers[direction.other].write(to_sender)
                writers[direction].write(to_peer)
                for w in writers.values():
                    w.close()

        try:
            await asyncio.gather(pump(UPSTREAM, c_reader), pump(DOWNSTREAM, u_reader))
        except asyncio.CancelledError:
            pass  # the relay is shutting down; asyncio's stream callback must not see it
        finally:
            self._tasks.discard(task)
            for w in writers.values():
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()
