"""Property: whatever batches are produced, Fetch from any offset with any size
limit walks the log back exactly (through the real listeners and the codec)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch

from protoproxy_codecs.kafka import framing
from testbed.kafka import FakeKafkaCluster, errors
from tests.peers import ServiceThread

from .helpers import make_batch


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[FakeKafkaCluster, asyncio.AbstractEventLoop]]:
    with ServiceThread(lambda: FakeKafkaCluster(brokers=2, seed=9)) as running:
        yield running.service, running.loop


class SyncClient:
    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.corr = 0

    def request(self, key: int, version: int, body: dict):
        self.corr += 1
        self.sock.sendall(framing.encode_request(key, version, self.corr, "prop", body))
        (size,) = struct.unpack(">i", self._read(4))
        corr, resp = framing.decode_response(key, version, self._read(size))
        assert corr == self.corr
        return resp

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return bytes(buf)


_topic_counter = iter(range(1_000_000))


@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=12),
    start=st.integers(0, 400),
    max_bytes=st.integers(1, 5000),
)
def test_fetch_from_any_offset_returns_the_log_in_order(running, sizes, start, max_bytes):
    cluster, loop = running
    topic = f"prop-{next(_topic_counter)}"

    async def create() -> None:
        cluster.create_topic(topic, 1)

    asyncio.run_coroutine_threadsafe(create(), loop).result(10)
    client = SyncClient(cluster.servers[cluster.leader(topic, 0)].address)
    expected: list[bytes] = []
    try:
        for size in sizes:
            values = [b"%d" % (len(expected) + i) for i in range(size)]
            resp = client.request(
                0,
                9,
                {
                    "acks": 1,
                    "timeout_ms": 1000,
                    "topic_data": [
                        {
                            "name": topic,
                            "partition_data": [{"index": 0, "records": make_batch(values)}],
                        }
                    ],
                },
            )
            part = resp.responses[0].partition_responses[0]
            assert (part.error_code, part.base_offset) == (errors.NONE, len(expected))
            expected.extend(values)
        start = min(start, len(expected))
        offset, got = start, []
        while offset < len(expected):
            resp = client.request(
                1,
                12,
                {
                    "max_wait_ms": 0,
                    "min_bytes": 0,
                    "max_bytes": max_bytes,
                    "topics": [
                        {
                            "topic": topic,
                            "partitions": [
                                {
                                    "partition": 0,
                                    "fetch_offset": offset,
                                    "partition_max_bytes": max_bytes,
                                }
                            ],
                        }
                    ],
                },
            )
            part = resp.responses[0].partitions[0]
            assert part.error_code == errors.NONE and part.high_watermark == len(expected)
            data = bytes(part.records)
            assert data, "no progress: the first batch must come even past max_bytes"
            pos = 0
            while pos < len(data):
                (length,) = struct.unpack_from(">i", data, pos + 8)
                batch = DefaultRecordBatch(data[pos : pos + 12 + length])
                assert batch.validate_crc()
                for record in batch:
                    if record.offset >= offset:
                        assert record.offset == start + len(got)  # no gap, no repeat
                        got.append(record.value)
                pos += 12 + length
            offset = start + len(got)
        assert got == expected[start:]
    finally:
        client.sock.close()
