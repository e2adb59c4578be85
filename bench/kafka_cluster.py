"""How many records/s librdkafka (confluent-kafka) can produce into the fake cluster.

The cluster runs on this process's event loop; the producer runs in a child
process so that the Python loop calling `produce()` does not share a GIL with
the brokers it measures. Prints records/s, MB/s and produce requests served.

    python bench/kafka_cluster.py [--records 500000] [--size 100] [--acks -1] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import textwrap
import time

from testbed.kafka import FakeKafkaCluster

_PRODUCER = textwrap.dedent(
    """
    import json, sys, time
    from confluent_kafka import Producer
    bootstrap, topic, n, size, acks, idem, per_batch = sys.argv[1:8]
    n, size = int(n), int(size)
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "enable.idempotence": idem == "1", "batch.size": 1000000,
                  "batch.num.messages": int(per_batch), "socket.nagle.disable": True,
                  "queue.buffering.max.messages": 1000000})
    value = b"x" * size
    p.produce(topic, value=value)  # connect and fetch metadata before timing
    p.flush(10)
    errors = []
    def report(err, msg):
        if err is not None:
            errors.append(str(err))
    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, on_delivery=report)
                break
            except BufferError:
                p.poll(0.001)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed": elapsed, "left": left, "errors": errors[:3]}))
    """
)


async def run(
    records: int, size: int, acks: str, partitions: int, idempotent: bool, per_batch: int
) -> dict:
    async with FakeKafkaCluster(brokers=3, seed=1) as cluster:
        cluster.create_topic("bench", partitions)
        before = cluster.records_appended
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PRODUCER,
            cluster.bootstrap_servers,
            "bench",
            str(records),
            str(size),
            acks,
            "1" if idempotent else "0",
            str(per_batch),
            stdout=subprocess.PIPE,
        )
        started = time.perf_counter()
        cpu_before = time.process_time()
        out, _ = await proc.communicate()
        cluster_cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - started
        result = json.loads(out)
        stored = cluster.records_appended - before - 1  # minus the warm-up record
        return {
            "records": records,
            "record_bytes": size,
            "acks": acks,
            "idempotent": idempotent,
            "partitions": partitions,
            "batch_num_messages": per_batch,
            "stored": stored,
            "elapsed_s": round(result["elapsed"], 3),
            "records_per_s": round(records / result["elapsed"]),
            "mb_per_s": round(records * size / result["elapsed"] / 1e6, 1),
            "requests_handled": cluster.requests_handled,
            # CPU the cluster itself spent (this process only): what a faster
            # producer would run into first.
            "cluster_cpu_s": round(cluster_cpu, 3),
            "cluster_capacity_records_per_s": round(stored / cluster_cpu) if cluster_cpu else None,
            "unflushed": result["left"],
            "errors": result["errors"],
            "wall_s": round(wall, 3),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--acks", default="-1", choices=["0", "1", "-1"])
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--no-idempotence", action="store_true")
    ap.add_argument(
        "--batch-records",
        type=int,
        default=10_000,
        help="librdkafka batch.num.messages (its default is 10000)",
    )
    ap.add_argument("--uvloop", action="store_true", help="run the cluster on uvloop")
    args = ap.parse_args()
    coro = run(
        args.records,
        args.size,
        args.acks,
        args.partitions,
        not args.no_idempotence,
        args.batch_records,
    )
    if args.uvloop:
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
