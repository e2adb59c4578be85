"""Produce-then-consume round trips with each real client, against any bootstrap.

Each returns what the client itself saw: ``produced`` (partition -> values in
delivery order, None where the client does not report partitions) and
``consumed`` (partition -> [(offset, value)]). Loops are bounded by deadlines;
settings keep batches large and long polls short so a 10k-record round trip
takes seconds. The *Rounds classes drive the same clients in rounds, for tests
that change the cluster in between (the proxy's suites and the fake cluster's
own tests both use them).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

Produced = dict[int, list[bytes]]
Consumed = dict[int, list[tuple[int, bytes]]]

DEADLINE = 60.0


def values(n: int, prefix: bytes = b"v") -> list[bytes]:
    return [prefix + b"-%06d" % i for i in range(n)]


def key(i: int) -> bytes:
    return b"key-%d" % (i % 97)


def check_exactly_once_in_order(consumed: Consumed, produced: Produced) -> None:
    """Per partition: consumed values equal produced values, offsets strictly rising."""
    assert set(consumed) <= set(produced), (sorted(consumed), sorted(produced))
    for partition, vals in produced.items():
        got = consumed.get(partition, [])
        offsets = [o for o, _ in got]
        assert offsets == sorted(set(offsets)), f"partition {partition}: offsets not increasing"
        assert len(got) == len(vals), f"partition {partition}: {len(got)} != {len(vals)}"
        assert [v for _, v in got] == vals, f"partition {partition}: records differ"


# --------------------------------------------------------------------------- kafka-python


def wait_for_partitions(consumer: Any, topic: str) -> None:
    """Know the topic's partitions before joining: kafka-python 3.0.12 can stall
    in its second SyncGroup when its first assignment ran without them (seen
    direct to the fake cluster too, so not a proxy effect)."""
    deadline = time.monotonic() + DEADLINE
    while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.05)


def kafka_python_poll(consumer: Any, consumed: Consumed, total: int, n: int, within: float) -> int:
    """Poll into `consumed` until `n` records in all (`total` already seen) or `within`
    seconds; returns the new total, so callers can act between rounds."""
    deadline = time.monotonic() + within
    while total < n and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            consumed[tp.partition].extend((r.offset, r.value) for r in records)
            total += len(records)
    return total


class KafkaPythonRounds:
    """A kafka-python producer and consumer on one topic, driven in rounds so that a
    test can change the cluster between them (move leaders, stop a broker)."""

    def __init__(
        self, producer: Any, consumer: Any, topic: str, value: bytes, within: float = DEADLINE
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.topic = topic
        self.value = value  # a %-format of the record's index, e.g. b"m-%05d"
        self.within = within
        self.produced: Produced = defaultdict(list)
        self.consumed: Consumed = defaultdict(list)
        self.total = 0

    def send(self, start: int, n: int) -> None:
        """Records `start`..`start + n - 1`, flushed, each noted under its partition."""
        futures = [
            (self.producer.send(self.topic, value=self.value % i), self.value % i)
            for i in range(start, start + n)
        ]
        self.producer.flush(timeout=30)
        for fut, value in futures:
            self.produced[fut.get(timeout=10).partition].append(value)

    def consume_until(self, n: int) -> None:
        self.total = kafka_python_poll(self.consumer, self.consumed, self.total, n, self.within)


def kafka_python_produce(bootstrap: str, topic: str, vals: list[bytes], **extra: Any) -> Produced:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, **extra)  # defaults, as the brief asks
    futures = [producer.send(topic, key=key(i), value=v) for i, v in enumerate(vals)]
    producer.flush(timeout=DEADLINE)
    produced: Produced = defaultdict(list)
    for fut, value in zip(futures, vals, strict=True):
        produced[fut.get(timeout=10).partition].append(value)
    producer.close()
    return produced


def kafka_python_consume(bootstrap: str, topic: str, group: str, n: int, **extra: Any) -> Consumed:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        **extra,
    )
    wait_for_partitions(consumer, topic)
    consumer.subscribe([topic])
    consumed: Consumed = defaultdict(list)
    kafka_python_poll(consumer, consumed, 0, n, DEADLINE)
    # Offsets are auto-committed (the default) on close; an explicit commit()
    # here can race kafka-python's own metadata-triggered rejoin and raise
    # RebalanceInProgressError, which says nothing about the proxy.
    consumer.close()
    return consumed


# --------------------------------------------------------------------------- confluent-kafka


def confluent_poll(consumer: Any, consumed: Consumed, total: int, n: int, within: float) -> int:
    """As kafka_python_poll, for a confluent-kafka Consumer; a record error fails the test."""
    deadline = time.monotonic() + within
    while total < n and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.2):
            assert m.error() is None, m.error()
            consumed[m.partition()].append((m.offset(), m.value()))
            total += 1
    return total


class ConfluentRounds:
    """KafkaPythonRounds for librdkafka: an idempotent producer and a group consumer
    with metadata refreshes far apart, so only errors send the clients to new leaders."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, value: bytes, within: float = DEADLINE
    ) -> None:
        from confluent_kafka import Consumer, Producer

        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "enable.idempotence": True,
                "topic.metadata.refresh.interval.ms": 60000,
            }
        )
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.topic = topic
        self.value = value  # a %-format of the record's index, e.g. b"r-%05d"
        self.within = within
        self.produced: Produced = defaultdict(list)
        self.consumed: Consumed = defaultdict(list)
        self.failures: list[Any] = []
        self.total = 0

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(err)
        else:
            self.produced[msg.partition()].append(msg.value())

    def send(self, start: int, n: int, step: Callable[[], None] | None = None) -> None:
        """As KafkaPythonRounds.send; `step` runs halfway, with batches in flight."""
        for i in range(start, start + n):
            self.producer.produce(self.topic, value=self.value % i, on_delivery=self._delivered)
            self.producer.poll(0)
            if step is not None and i == start + n // 2:
                step()
        assert self.producer.flush(30) == 0

    def consume_until(self, n: int) -> None:
        self.total = confluent_poll(self.consumer, self.consumed, self.total, n, self.within)


def confluent_produce(
    bootstrap: str, topic: str, vals: list[bytes], config: dict[str, Any] | None = None
) -> Produced:
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
        | (config or {})
    )
    produced: Produced = defaultdict(list)
    failures: list[object] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(err)
        else:
            produced[msg.partition()].append(msg.value())

    for i, v in enumerate(vals):
        producer.produce(topic, key=key(i), value=v, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(DEADLINE) == 0
    assert not failures, failures[:5]
    return produced


def confluent_consume(
    bootstrap: str, topic: str, group: str, n: int, config: dict[str, Any] | None = None
) -> Consumed:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
        | (config or {})
    )
    consumer.subscribe([topic])
    consumed: Consumed = defaultdict(list)
    confluent_poll(consumer, consumed, 0, n, DEADLINE)
    consumer.commit(asynchronous=False)
    consumer.close()
    return consumed


# --------------------------------------------------------------------------- aiokafka


async def _aiokafka(bootstrap: str, topic: str, vals: list[bytes], group: str):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key(i), value=v) for i, v in enumerate(vals)]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produced: Produced = defaultdict(list)
    for meta, value in zip(metas, vals, strict=True):
        produced[meta.partition].append(value)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        enable_auto_commit=False,
    )
    await consumer.start()
    consumed: Consumed = defaultdict(list)
    try:
        total = 0
        async with asyncio.timeout(DEADLINE):
            while total < len(vals):
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    consumed[tp.partition].extend((r.offset, r.value) for r in records)
                    total += len(records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return produced, consumed


def aiokafka_roundtrip(
    bootstrap: str, topic: str, vals: list[bytes], group: str
) -> tuple[Produced, Consumed]:
    """On a loop of its own: the proxy's loop stays the proxy's alone."""
    return asyncio.run(_aiokafka(bootstrap, topic, vals, group))


# --------------------------------------------------------------------------- kcat


def kcat_produce(kcat: str, bootstrap: str, topic: str, vals: list[bytes]) -> None:
    subprocess.run(
        [kcat, "-b", bootstrap, "-P", "-t", topic, "-K", ":", "-X", "linger.ms=5"],
        input=b"".join(key(i) + b":" + v + b"\n" for i, v in enumerate(vals)),
        check=True,
        timeout=DEADLINE,
        capture_output=True,
    )


def kcat_consume(kcat: str, bootstrap: str, topic: str, group: str, n: int) -> Consumed:
    out = subprocess.run(
        [
            kcat,
            "-b",
            bootstrap,
            "-C",
            "-G",
            group,
            "-c",
            str(n),
            "-f",
            "%p %o %s\\n",
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "fetch.wait.max.ms=100",
            topic,
        ],
        check=True,
        timeout=DEADLINE,
        capture_output=True,
    ).stdout
    consumed: Consumed = defaultdict(list)
    for line in out.splitlines():
        p, o, v = line.split(b" ", 2)
        consumed[int(p)].append((int(o), v))
    return consumed
