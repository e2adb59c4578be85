"""Shared builders: record batches from kafka-python's own producer-side code."""

from __future__ import annotations

from kafka.record.memory_records import MemoryRecordsBuilder

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Message
from protoproxy_codecs.kafka import KafkaCodec, framing


def record_batch(
    count: int,
    *,
    magic: int = 2,
    compression: int = 0,
    value_size: int = 16,
    transactional: bool = False,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    offset: int = 0,
) -> bytes:
    """One batch (v2) or message set (v0/v1) of `count` records, as a producer builds it."""
    builder = MemoryRecordsBuilder(
        magic,
        compression,
        batch_size=1 << 30,
        offset=offset,
        transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )
    for i in range(count):
        assert builder.append(1_700_000_000_000 + i, b"k%d" % i, b"v" * value_size) is not None
    builder.close()
    return bytes(builder.buffer())


def produce_request(
    corr: int, topics: dict[str, dict[int, bytes | None]], acks: int = -1, version: int = 9
) -> bytes:
    body = {
        "acks": acks,
        "timeout_ms": 1000,
        "topic_data": [
            {"name": t, "partition_data": [{"index": p, "records": r} for p, r in parts.items()]}
            for t, parts in topics.items()
        ],
    }
    return framing.encode_request(0, version, corr, "producer-1", body)


def feed_all(codec: KafkaCodec, up: bytes = b"", down: bytes = b"") -> list[Message]:
    out = codec.feed(UPSTREAM, up) if up else []
    if down:
        out += codec.feed(DOWNSTREAM, down)
    return out
