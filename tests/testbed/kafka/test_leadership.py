"""Leadership moves and broker stops mid-stream: clients follow, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from testbed.kafka import FakeKafkaCluster, errors
from tests.integration.kafka.clients import (
    ConfluentRounds,
    KafkaPythonRounds,
    check_exactly_once_in_order,
)

PARTITIONS = 6
HALF = 1000


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """Run a cluster control call on the cluster's loop from a client thread."""

    async def call() -> None:
        fn()

    asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)


def _move_all_leaders(cluster: FakeKafkaCluster, topic: str) -> None:
    for p in range(PARTITIONS):
        cluster.move_leader(topic, p, (cluster.leader(topic, p) + 1) % 3)


def _kafka_python_through_moves(cluster: FakeKafkaCluster, loop, topic: str):
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, linger_ms=5)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=cluster.bootstrap,
        group_id="kp-move",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        metadata_max_age_ms=60_000,
    )
    rounds = KafkaPythonRounds(producer, consumer, topic, b"m-%05d", within=30)
    rounds.send(0, HALF)
    rounds.consume_until(HALF)
    _on_loop(loop, lambda: _move_all_leaders(cluster, topic))  # consumer and producer must follow
    rounds.send(HALF, HALF)
    _on_loop(loop, lambda: _move_all_leaders(cluster, topic))
    rounds.consume_until(2 * HALF)
    consumer.close()
    producer.close()
    return rounds.produced, rounds.consumed


async def test_kafka_python_follows_leader_moves(cluster: FakeKafkaCluster):
    cluster.create_topic("moves", PARTITIONS)
    loop = asyncio.get_running_loop()
    produced, consumed = await asyncio.to_thread(
        _kafka_python_through_moves, cluster, loop, "moves"
    )
    assert sum(map(len, produced.values())) == 2 * HALF
    check_exactly_once_in_order(consumed, produced)
    assert all(cluster.leader_epoch("moves", p) == 2 for p in range(PARTITIONS))
    assert cluster.partition_errors[errors.NOT_LEADER_OR_FOLLOWER] > 0  # the moves were seen


def _librdkafka_through_moves(cluster: FakeKafkaCluster, loop, topic: str, stop_node: int):
    rounds = ConfluentRounds(cluster.bootstrap_servers, topic, "rd-move", b"r-%05d", within=30)

    def stop_broker() -> None:
        asyncio.run_coroutine_threadsafe(cluster.stop_broker(stop_node), loop).result(timeout=10)

    rounds.send(0, HALF)
    rounds.consume_until(HALF)  # both clients now know (and use) the current leaders
    _on_loop(loop, lambda: _move_all_leaders(cluster, topic))
    rounds.send(HALF, HALF, stop_broker)  # the broker goes away with batches in flight
    rounds.consume_until(2 * HALF)
    rounds.consumer.close()
    assert not rounds.failures, rounds.failures
    return rounds.produced, rounds.consumed


async def test_librdkafka_follows_leader_moves_and_a_broker_stop(cluster: FakeKafkaCluster):
    cluster.create_topic("rdmoves", PARTITIONS)
    loop = asyncio.get_running_loop()
    stop_node = 2
    produced, consumed = await asyncio.to_thread(
        _librdkafka_through_moves, cluster, loop, "rdmoves", stop_node
    )
    assert sum(map(len, produced.values())) == 2 * HALF
    check_exactly_once_in_order(consumed, produced)
    assert all(cluster.leader("rdmoves", p) != stop_node for p in range(PARTITIONS))
    assert cluster.partition_errors[errors.NOT_LEADER_OR_FOLLOWER] > 0
    assert cluster.requests_by_api[23] > 0  # it validated its positions (KIP-320)
    await cluster.start_broker(stop_node)
    assert cluster.servers[stop_node].running


async def test_stopped_broker_refuses_connections_and_leadership_moves(cluster: FakeKafkaCluster):
    cluster.create_topic("stop", PARTITIONS, replication_factor=2)
    led_by_0 = [p for p in range(PARTITIONS) if cluster.leader("stop", p) == 0]
    assert led_by_0
    address = cluster.servers[0].address
    await cluster.stop_broker(0)
    for p in led_by_0:
        assert cluster.leader("stop", p) not in (0, -1)
        assert cluster.leader_epoch("stop", p) == 1
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except ConnectionError:
        pass
    else:
        writer.close()
        raise AssertionError("stopped broker still accepts connections")
    await cluster.start_broker(0)
    assert cluster.servers[0].address == address
    # Stopping every replica of a partition leaves it leaderless until one returns.
    p0 = cluster.topology.partition("stop", 0)
    assert p0 is not None
    for node in p0.replicas:
        await cluster.stop_broker(node)
    assert cluster.leader("stop", 0) == -1
    await cluster.start_broker(p0.replicas[0])
    assert cluster.leader("stop", 0) == p0.replicas[0]


def _consume_through_coordinator_stop(cluster: FakeKafkaCluster, loop, topic: str):
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=cluster.bootstrap_servers,
        group_id="kp-coord",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        enable_auto_commit=False,
    )
    rounds = KafkaPythonRounds(producer, consumer, topic, b"c-%05d", within=30)
    rounds.send(0, HALF)
    rounds.consume_until(HALF)
    consumer.commit()
    coordinator = cluster.coordinator_for("kp-coord")
    asyncio.run_coroutine_threadsafe(cluster.stop_broker(coordinator), loop).result(timeout=10)
    rounds.send(HALF, HALF)
    rounds.consume_until(2 * HALF)  # commits go to the new coordinator
    consumer.commit()
    consumer.close()
    producer.close()
    return coordinator, rounds.produced, rounds.consumed


async def test_kafka_python_group_survives_its_coordinator_stopping(cluster: FakeKafkaCluster):
    cluster.create_topic("coord", PARTITIONS)
    loop = asyncio.get_running_loop()
    old, produced, consumed = await asyncio.to_thread(
        _consume_through_coordinator_stop, cluster, loop, "coord"
    )
    check_exactly_once_in_order(consumed, produced)
    assert cluster.coordinator_for("kp-coord") != old
    assert sum(cluster.committed("kp-coord", "coord", p) for p in range(PARTITIONS)) == 2 * HALF
