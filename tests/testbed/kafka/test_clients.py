"""Real clients against the fake cluster: produce a few thousand records to a
6-partition topic, consume them back in a group, every record exactly once and
in order per partition (checked against the client's view and the broker log)."""

from __future__ import annotations

import asyncio
import subprocess
from collections import defaultdict

from testbed.kafka import FakeKafkaCluster
from tests.integration.kafka.clients import (
    check_exactly_once_in_order,
    confluent_poll,
    kafka_python_poll,
)
from tests.tools import require_tool

N = 3000
PARTITIONS = 6


def _values() -> list[bytes]:
    return [b"value-%05d" % i for i in range(N)]


def _key(i: int) -> bytes:
    return b"key-%d" % (i % 50)


def _assert_log_matches(cluster: FakeKafkaCluster, topic: str, produced: dict[int, list[bytes]]):
    for p in range(PARTITIONS):
        assert [r.value for r in cluster.records(topic, p)] == produced.get(p, [])
    assert sum(len(v) for v in produced.values()) == N


def _kafka_python_roundtrip(bootstrap: str, topic: str) -> tuple[dict, dict]:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)  # defaults: idempotent, acks=all
    futures = [producer.send(topic, key=_key(i), value=v) for i, v in enumerate(_values())]
    producer.flush(timeout=30)
    produced: dict[int, list[bytes]] = defaultdict(list)
    for fut, value in zip(futures, _values(), strict=True):
        produced[fut.get(timeout=10).partition].append(value)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="kp-group",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    consumed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    kafka_python_poll(consumer, consumed, 0, N, 30)
    consumer.commit()
    consumer.close()
    return produced, consumed


async def test_kafka_python_produce_and_group_consume(cluster: FakeKafkaCluster):
    cluster.create_topic("kp", PARTITIONS)
    produced, consumed = await asyncio.to_thread(_kafka_python_roundtrip, cluster.bootstrap, "kp")
    check_exactly_once_in_order(consumed, produced)
    _assert_log_matches(cluster, "kp", produced)
    assert sum(cluster.committed("kp-group", "kp", p) for p in range(PARTITIONS)) == N


def _confluent_roundtrip(bootstrap: str, topic: str) -> tuple[dict, dict]:
    from confluent_kafka import Consumer, Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    produced: dict[int, list[bytes]] = defaultdict(list)
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(err)
        else:
            produced[msg.partition()].append(msg.value())

    for i, v in enumerate(_values()):
        producer.produce(topic, key=_key(i), value=v, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0 and not failures

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ck-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe([topic])
    consumed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    confluent_poll(consumer, consumed, 0, N, 30)
    consumer.commit(asynchronous=False)
    consumer.close()
    return produced, consumed


async def test_confluent_kafka_produce_and_group_consume(cluster: FakeKafkaCluster):
    cluster.create_topic("ck", PARTITIONS)
    produced, consumed = await asyncio.to_thread(_confluent_roundtrip, cluster.bootstrap, "ck")
    check_exactly_once_in_order(consumed, produced)
    _assert_log_matches(cluster, "ck", produced)
    assert sum(cluster.committed("ck-group", "ck", p) for p in range(PARTITIONS)) == N


async def test_aiokafka_produce_and_group_consume(cluster: FakeKafkaCluster):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    cluster.create_topic("aio", PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap, linger_ms=5, enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [
            await producer.send("aio", key=_key(i), value=v) for i, v in enumerate(_values())
        ]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produced: dict[int, list[bytes]] = defaultdict(list)
    for meta, value in zip(metas, _values(), strict=True):
        produced[meta.partition].append(value)

    consumer = AIOKafkaConsumer(
        "aio",
        bootstrap_servers=cluster.bootstrap,
        group_id="aio-group",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        enable_auto_commit=False,
    )
    await consumer.start()
    consumed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    try:
        total = 0
        async with asyncio.timeout(30):
            while total < N:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    consumed[tp.partition].extend((r.offset, r.value) for r in records)
                    total += len(records)
        await consumer.commit()
    finally:
        await consumer.stop()
    check_exactly_once_in_order(consumed, produced)
    _assert_log_matches(cluster, "aio", produced)
    assert sum(cluster.committed("aio-group", "aio", p) for p in range(PARTITIONS)) == N


def _kcat(kcat: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([kcat, *args], input=stdin, capture_output=True, timeout=60, check=False)


async def test_kcat_produce_then_group_consume(cluster: FakeKafkaCluster):
    kcat = require_tool("kcat")
    cluster.create_topic("kc", PARTITIONS)
    lines = b"".join(_key(i) + b":" + v + b"\n" for i, v in enumerate(_values()))
    res = await asyncio.to_thread(
        _kcat, kcat, "-P", "-b", cluster.bootstrap, "-t", "kc", "-K:", stdin=lines
    )
    assert res.returncode == 0, res.stderr
    # kcat does not tell us partitions; the log does, and send order is value order.
    produced = {p: [r.value for r in cluster.records("kc", p)] for p in range(PARTITIONS)}
    for values in produced.values():
        assert values == sorted(values)
    assert sorted(v for vs in produced.values() for v in vs) == _values()

    res = await asyncio.to_thread(
        _kcat,
        kcat,
        "-C",
        "-b",
        cluster.bootstrap,
        "-G",
        "kc-group",
        "kc",
        "-o",
        "beginning",
        "-c",
        str(N),
        "-f",
        "%p %o %s\\n",
    )
    assert res.returncode == 0, res.stderr
    consumed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for line in res.stdout.splitlines():
        p, o, v = line.split(b" ")
        consumed[int(p)].append((int(o), v))
    check_exactly_once_in_order(consumed, produced)


def _compressed_roundtrip(bootstrap: str, topic: str, n: int) -> list[bytes]:
    """librdkafka writes gzip batches; kafka-python reads them back."""
    from confluent_kafka import Producer
    from kafka import KafkaConsumer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "compression.type": "gzip", "linger.ms": 20}
    )
    for i in range(n):
        producer.produce(topic, value=b"gz-%04d" % i, partition=0)
    assert producer.flush(30) == 0
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        fetch_max_wait_ms=100,
    )
    values = []
    for record in consumer:
        values.append(record.value)
        if len(values) == n:
            break
    consumer.close()
    return values


async def test_compressed_batches_are_stored_and_served_untouched(cluster: FakeKafkaCluster):
    cluster.create_topic("gz", 1)
    n = 500
    values = await asyncio.to_thread(_compressed_roundtrip, cluster.bootstrap, "gz", n)
    expected = [b"gz-%04d" % i for i in range(n)]
    assert values == expected
    assert [r.value for r in cluster.records("gz", 0)] == expected
    assert {h.attributes & 0x07 for h in cluster.log("gz", 0).batch_headers()} == {1}  # gzip
