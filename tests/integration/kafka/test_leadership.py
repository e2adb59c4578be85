"""Acceptance: a partition leader moves mid-stream; kafka-python and librdkafka follow it
through the proxy (new Metadata, rewritten to the new leader's broker listener)
and no record is lost or duplicated."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from testbed.kafka import errors

from . import clients
from .rig import KafkaRig

PARTITIONS = 6
HALF = 2000


def _move_all_leaders(rig: KafkaRig, topic: str) -> None:
    cluster = rig.cluster
    assert cluster is not None

    def move() -> None:
        for p in range(PARTITIONS):
            cluster.move_leader(topic, p, (cluster.leader(topic, p) + 1) % 3)

    rig.run(move)


def _leaders_seen(rig: KafkaRig, topic: str) -> dict[int, int]:
    return rig.run(lambda: dict(rig.component.tables["kafka"].leaders.get(topic, {})))


def _cluster_leaders(rig: KafkaRig, topic: str) -> dict[int, int]:
    cluster = rig.cluster
    assert cluster is not None
    return rig.run(lambda: {p: cluster.leader(topic, p) for p in range(PARTITIONS)})


def _check_error_counts(rig: KafkaRig) -> None:
    """The proxy counted every NOT_LEADER_OR_FOLLOWER the cluster answered, by name."""
    cluster = rig.cluster
    assert cluster is not None
    deadline = time.monotonic() + 10
    while True:
        seen = sum(
            v
            for (_l, _api, name), v in rig.family("protoproxy_kafka_errors_total").items()
            if name == "NOT_LEADER_OR_FOLLOWER"
        )
        answered = rig.run(lambda: cluster.partition_errors[errors.NOT_LEADER_OR_FOLLOWER])
        if seen == answered or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answered > 0 and seen == answered


def test_kafka_python_follows_a_leader_move(rig: KafkaRig) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = "kp-move"
    rig.create_topic(topic, PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=rig.bootstrap, linger_ms=5)
    consumer = KafkaConsumer(
        bootstrap_servers=rig.bootstrap,
        group_id="kp-move",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    deadline = time.monotonic() + clients.DEADLINE
    while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.05)
    consumer.subscribe([topic])
    produced: dict[int, list[bytes]] = defaultdict(list)
    consumed: clients.Consumed = defaultdict(list)
    total = 0

    def send(start: int) -> None:
        futures = [
            (producer.send(topic, value=b"m-%05d" % i), b"m-%05d" % i)
            for i in range(start, start + HALF)
        ]
        producer.flush(timeout=30)
        for fut, value in futures:
            produced[fut.get(timeout=10).partition].append(value)

    def consume_until(n: int) -> None:
        nonlocal total
        deadline = time.monotonic() + clients.DEADLINE
        while total < n and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                consumed[tp.partition].extend((r.offset, r.value) for r in records)
                total += len(records)

    try:
        send(0)
        consume_until(HALF)
        _move_all_leaders(rig, topic)  # both clients must find the new leaders
        send(HALF)
        _move_all_leaders(rig, topic)
        consume_until(2 * HALF)
    finally:
        consumer.close()
        producer.close()
    assert sum(map(len, produced.values())) == 2 * HALF
    clients.check_exactly_once_in_order(consumed, produced)
    _check_error_counts(rig)  # the moves were met, and counted
    assert _leaders_seen(rig, topic) == _cluster_leaders(rig, topic)
    rig.assert_no_bypass()


def test_librdkafka_follows_a_leader_move(rig: KafkaRig) -> None:
    from confluent_kafka import Consumer, Producer

    topic = "rd-move"
    rig.create_topic(topic, PARTITIONS)
    producer = Producer(
        {
            "bootstrap.servers": rig.bootstrap,
            "linger.ms": 5,
            "enable.idempotence": True,
            "topic.metadata.refresh.interval.ms": 60000,
        }
    )
    consumer = Consumer(
        {
            "bootstrap.servers": rig.bootstrap,
            "group.id": "rd-move",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    produced: dict[int, list[bytes]] = defaultdict(list)
    consumed: clients.Consumed = defaultdict(list)
    failures: list[Any] = []
    total = 0

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(err)
        else:
            produced[msg.partition()].append(msg.value())

    def send(start: int, move_at: int | None = None) -> None:
        for i in range(start, start + HALF):
            producer.produce(topic, value=b"r-%05d" % i, on_delivery=delivered)
            producer.poll(0)
            if i == move_at:
                _move_all_leaders(rig, topic)  # mid-stream, with batches in flight
        assert producer.flush(30) == 0

    def consume_until(n: int) -> None:
        nonlocal total
        deadline = time.monotonic() + clients.DEADLINE
        while total < n and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.2):
                assert m.error() is None, m.error()
                consumed[m.partition()].append((m.offset(), m.value()))
                total += 1

    try:
        send(0)
        consume_until(HALF)  # both clients now use the current leaders
        send(HALF, move_at=HALF + HALF // 2)
        consume_until(2 * HALF)
    finally:
        consumer.close()
    assert not failures, failures[:5]
    assert sum(map(len, produced.values())) == 2 * HALF
    clients.check_exactly_once_in_order(consumed, produced)
    _check_error_counts(rig)
    assert _leaders_seen(rig, topic) == _cluster_leaders(rig, topic)
    rig.assert_no_bypass()
