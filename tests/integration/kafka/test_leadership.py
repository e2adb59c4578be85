"""Acceptance: a partition leader moves mid-stream; kafka-python and librdkafka follow it
through the proxy (new Metadata, rewritten to the new leader's broker listener)
and no record is lost or duplicated."""

from __future__ import annotations

import time

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
    clients.wait_for_partitions(consumer, topic)
    consumer.subscribe([topic])
    rounds = clients.KafkaPythonRounds(producer, consumer, topic, b"m-%05d")
    try:
        rounds.send(0, HALF)
        rounds.consume_until(HALF)
        _move_all_leaders(rig, topic)  # both clients must find the new leaders
        rounds.send(HALF, HALF)
        _move_all_leaders(rig, topic)
        rounds.consume_until(2 * HALF)
    finally:
        consumer.close()
        producer.close()
    assert sum(map(len, rounds.produced.values())) == 2 * HALF
    clients.check_exactly_once_in_order(rounds.consumed, rounds.produced)
    _check_error_counts(rig)  # the moves were met, and counted
    assert _leaders_seen(rig, topic) == _cluster_leaders(rig, topic)
    rig.assert_no_bypass()


def test_librdkafka_follows_a_leader_move(rig: KafkaRig) -> None:
    topic = "rd-move"
    rig.create_topic(topic, PARTITIONS)
    rounds = clients.ConfluentRounds(rig.bootstrap, topic, "rd-move", b"r-%05d")
    try:
        rounds.send(0, HALF)
        rounds.consume_until(HALF)  # both clients now use the current leaders
        # mid-stream, with batches in flight
        rounds.send(HALF, HALF, step=lambda: _move_all_leaders(rig, topic))
        rounds.consume_until(2 * HALF)
    finally:
        rounds.consumer.close()
    assert not rounds.failures, rounds.failures[:5]
    assert sum(map(len, rounds.produced.values())) == 2 * HALF
    clients.check_exactly_once_in_order(rounds.consumed, rounds.produced)
    _check_error_counts(rig)
    assert _leaders_seen(rig, topic) == _cluster_leaders(rig, topic)
    rig.assert_no_bypass()
