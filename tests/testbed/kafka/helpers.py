"""Shared helpers for the fake-cluster tests: batches and a raw protocol client."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder

from protoproxy_codecs.kafka import framing


def make_batch(
    values: list[bytes],
    *,
    producer_id: int = -1,
    epoch: int = -1,
    base_sequence: int = -1,
    keys: list[bytes | None] | None = None,
    timestamp: int = 1_700_000_000_000,
) -> bytes:
    """One uncompressed RecordBatch v2 as a producer would send it (base offset 0)."""
    builder = DefaultRecordBatchBuilder(2, 0, False, producer_id, epoch, base_sequence, 1 << 20)
    for i, value in enumerate(values):
        key = keys[i] if keys else None
        builder.append(i, timestamp + i, key, value, [])
    return bytes(builder.build())


class RawClient:
    """A minimal Kafka client speaking frames through the project's codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._corr = 0

    @classmethod
    async def connect(cls, address: str) -> RawClient:
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send_raw(self, frame: bytes) -> bytes:
        """Write one framed request; return the response frame without its size."""
        self.writer.write(frame)
        await self.writer.drain()
        (size,) = struct.unpack(">i", await self.reader.readexactly(4))
        return await self.reader.readexactly(size)

    async def request(self, api_key: int, version: int, body: dict[str, Any]) -> Any:
        self._corr += 1
        frame = framing.encode_request(api_key, version, self._corr, "raw-test", body)
        payload = await self.send_raw(frame)
        corr, response = framing.decode_response(api_key, version, payload)
        assert corr == self._corr
        return response

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
