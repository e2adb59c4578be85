"""Kafka codec decode rate: Produce requests and Fetch responses through KafkaCodec.feed.

Prints messages/s and µs/message for the hot path (header + what metrics
need), plus the cost of the full kafka-python body decode for comparison.
Traffic is generated with kafka-python's own record builder (1 KiB batches by
default), or read from a capture: a file of concatenated request frames
(``--produce-capture``), e.g. fixtures/kafka/*.bin.

    python bench/kafka_decode.py [--seconds 2] [--batch-bytes 1024] [--partitions 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from kafka.record.memory_records import MemoryRecordsBuilder

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.kafka import KafkaCodec, framing

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kafka"


def record_batch(batch_bytes: int, records: int = 10) -> bytes:
    builder = MemoryRecordsBuilder(2, 0, batch_size=1 << 30)
    value = b"x" * max(1, batch_bytes // records - 30)
    for i in range(records):
        builder.append(1_700_000_000_000 + i, b"key-%d" % i, value)
    builder.close()
    return bytes(builder.buffer())


def produce_frames(n: int, batch: bytes, partitions: int, version: int) -> list[bytes]:
    body = {
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [
            {
                "name": "orders",
                "partition_data": [{"index": p, "records": batch} for p in range(partitions)],
            }
        ],
    }
    return [framing.encode_request(0, version, i, "bench-producer", body) for i in range(n)]


def fetch_frames(n: int, batch: bytes, partitions: int, version: int) -> list[bytes]:
    body = {
        "responses": [
            {
                "topic": "orders",
                "partitions": [
                    {"partition_index": p, "high_watermark": 1000, "records": batch}
                    for p in range(partitions)
                ],
            }
        ]
    }
    return [framing.encode_response(1, version, i, body) for i in range(n)]


def split_frames(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(blob):
        size = int.from_bytes(blob[pos : pos + 4], "big", signed=True)
        out.append(blob[pos : pos + 4 + size])
        pos += 4 + size
    return out


def rate(label: str, frames: list[bytes], run: Callable[[list[bytes]], None], seconds: float):
    """Best-of-several runs in CPU time (the box is shared); prints msg/s and µs/msg."""
    samples = []
    deadline = time.process_time() + seconds
    while time.process_time() < deadline or len(samples) < 3:
        t0 = time.process_time()
        run(frames)
        samples.append(time.process_time() - t0)
    best = min(samples)
    per = best / len(frames)
    med = statistics.median(samples) / len(frames)
    print(f"{label:<46} {1 / per:>11,.0f} msg/s  {per * 1e6:7.2f} µs/msg (median {med * 1e6:.2f})")
    return 1 / per


def bench_produce(frames: list[bytes], seconds: float) -> None:
    n = len(frames)
    version = int.from_bytes(frames[0][6:8], "big")
    ack = framing.encode_response(
        0, version, 0, {"responses": [{"name": "orders", "partition_responses": [{}]}]}
    )

    def requests_only(fs: list[bytes]) -> None:
        codec = KafkaCodec()
        feed = codec.feed
        for f in fs:
            feed(UPSTREAM, f)
            codec._pending.clear()  # measure decode, not the pending table filling up

    def requests_batched(fs: list[bytes]) -> None:
        codec = KafkaCodec()
        blob = b"".join(fs[:200])
        for _ in range(len(fs) // 200):
            codec.feed(UPSTREAM, blob)
            codec._pending.clear()

    def with_responses(fs: list[bytes]) -> None:
        codec = KafkaCodec()
        feed = codec.feed
        for f in fs:
            feed(UPSTREAM, f)
            feed(DOWNSTREAM, ack[:4] + f[8:12] + ack[8:])  # answer the frame's own id
        codec.take_exchanges()

    def full_decode(fs: list[bytes]) -> None:
        for f in fs:
            framing.decode_request(memoryview(f)[4:])

    size = len(frames[0])
    print(f"Produce v{version}, {size} B frames, {n} per run")
    rate("  codec.feed, one frame per read", frames, requests_only, seconds)
    rate("  codec.feed, 200 frames per read", frames, requests_batched, seconds)
    rate("  codec.feed request + response (Exchange)", frames, with_responses, seconds)
    rate("  framing.decode_request (header + full body)", frames, full_decode, seconds)


def bench_fetch(frames: list[bytes], seconds: float) -> None:
    version = 12
    req = framing.encode_request(1, version, 0, "c", {"topics": [{"topic": "orders"}]})

    def run(fs: list[bytes]) -> None:
        codec = KafkaCodec()
        for i, f in enumerate(fs):
            codec.feed(UPSTREAM, req[:8] + i.to_bytes(4, "big") + req[12:])
            codec.feed(DOWNSTREAM, f)
        codec.take_exchanges()

    print(f"Fetch v{version} responses, {len(frames[0])} B frames")
    rate("  codec.feed request + response (Exchange)", frames, run, seconds)


def bench_metadata_rewrite(seconds: float) -> None:
    """Metadata v12, 3 brokers and 30 partitions: the DESIGN.md reference response."""
    from protoproxy_codecs.kafka import rewrite

    body = {
        "brokers": [{"node_id": i, "host": f"broker-{i}.kafka", "port": 9092} for i in range(3)],
        "cluster_id": "bench",
        "controller_id": 0,
        "topics": [
            {
                "name": f"topic-{t}",
                "partitions": [
                    {
                        "partition_index": p,
                        "leader_id": p % 3,
                        "replica_nodes": [0, 1, 2],
                        "isr_nodes": [0, 1, 2],
                    }
                    for p in range(10)
                ],
            }
            for t in range(3)
        ],
    }
    req = framing.encode_request(3, 12, 1, "c", {"topics": None})
    resp = framing.encode_response(3, 12, 1, body)

    def run(fs: list[bytes]) -> None:
        for _ in fs:
            codec = KafkaCodec()
            codec.feed(UPSTREAM, req)
            (msg,) = codec.feed(DOWNSTREAM, resp)
            rewrite.routing(msg)
            rewrite.rewrite_response(msg, lambda n, h, p: ("127.0.0.1", 19093 + n))

    print(f"Metadata v12 response, {len(resp)} B (3 brokers, 30 partitions)")
    rate("  feed + routing + rewrite (full decode/encode)", [b""] * 500, run, seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--batch-bytes", type=int, default=1024)
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--produce-version", type=int, default=9)
    p.add_argument("--produce-capture", type=Path, help="concatenated Produce request frames")
    args = p.parse_args()

    batch = record_batch(args.batch_bytes)
    print(f"record batch: {len(batch)} bytes, 10 records")
    if args.produce_capture:
        frames = split_frames(args.produce_capture.read_bytes())
        frames = (frames * (args.count // max(1, len(frames)) + 1))[: args.count]
    else:
        frames = produce_frames(args.count, batch, args.partitions, args.produce_version)
    bench_produce(frames, args.seconds)
    bench_fetch(fetch_frames(args.count // 4, batch, args.partitions, 12), args.seconds)
    bench_metadata_rewrite(args.seconds)


if __name__ == "__main__":
    main()
