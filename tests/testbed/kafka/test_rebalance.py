"""Consumer-group rebalances driven by real clients."""

from __future__ import annotations

import asyncio
from collections import Counter

from testbed.kafka import FakeKafkaCluster
from testbed.kafka.groups import GroupState

PARTITIONS = 6
N = 1200


async def _produce(cluster: FakeKafkaCluster, topic: str, start: int, n: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=b"%d" % i, partition=i % PARTITIONS)
            for i in range(start, start + n)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_two_consumers_split_partitions_and_consume_each_record_once(
    cluster: FakeKafkaCluster,
):
    from aiokafka import AIOKafkaConsumer

    cluster.create_topic("rb", PARTITIONS)
    await _produce(cluster, "rb", 0, N // 2)
    seen: Counter[bytes] = Counter()

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            "rb",
            bootstrap_servers=cluster.bootstrap,
            group_id="rb-group",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            heartbeat_interval_ms=100,
            session_timeout_ms=6000,
        )

    async def drain(c: AIOKafkaConsumer, until) -> None:
        while not until():
            for records in (await c.getmany(timeout_ms=100)).values():
                seen.update(r.value for r in records)

    a = consumer()
    await a.start()
    b = consumer()
    try:
        async with asyncio.timeout(30):
            await drain(a, lambda: sum(seen.values()) >= N // 4)
            await b.start()  # joins mid-stream: the group rebalances
            # Both keep polling (each drives its own heartbeats) until they share the topic.
            stop = asyncio.Event()

            def split() -> bool:
                sa, sb = a.assignment(), b.assignment()
                done = len(sa) == len(sb) == PARTITIONS // 2 and not sa & sb
                if done:
                    stop.set()
                return stop.is_set()

            await asyncio.gather(drain(a, split), drain(b, split))
            await _produce(cluster, "rb", N // 2, N // 2)
            total = lambda: sum(seen.values()) >= N  # noqa: E731
            await asyncio.gather(drain(a, total), drain(b, total))
    finally:
        await a.stop()
        await b.stop()
    assert sorted(seen) == sorted(b"%d" % i for i in range(N))
    assert set(seen.values()) == {1}, "some records were consumed twice"
    group = cluster.groups.groups["rb-group"]
    assert group.generation_id >= 2
    assert group.state is GroupState.EMPTY  # both left cleanly


def _librdkafka_pair(bootstrap: str, topic: str) -> tuple[int, int, set[int]]:
    """A librdkafka consumer, then a second; the first leaves and the second takes over."""
    from confluent_kafka import Consumer

    def make() -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "rd-rb",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
                "heartbeat.interval.ms": 100,
                "session.timeout.ms": 6000,
            }
        )
        c.subscribe([topic])
        return c

    import time

    first = make()
    second = make()
    deadline = time.monotonic() + 30
    sizes = (0, 0)
    while time.monotonic() < deadline:
        first.poll(0.05)
        second.poll(0.05)
        sizes = (len(first.assignment()), len(second.assignment()))
        if sizes == (3, 3):
            break
    first.close()  # LeaveGroup: the second gets everything
    while time.monotonic() < deadline and len(second.assignment()) != PARTITIONS:
        second.poll(0.05)
    final = {tp.partition for tp in second.assignment()}
    second.close()
    return sizes[0], sizes[1], final


async def test_librdkafka_consumers_rebalance_on_join_and_leave(cluster: FakeKafkaCluster):
    cluster.create_topic("rdrb", PARTITIONS)
    a, b, final = await asyncio.to_thread(_librdkafka_pair, cluster.bootstrap, "rdrb")
    assert (a, b) == (3, 3)
    assert final == set(range(PARTITIONS))
    assert cluster.groups.groups["rd-rb"].generation_id >= 3


async def test_silent_member_times_out_and_survivor_takes_all_partitions():
    """A member that stops heartbeating is dropped after its session timeout."""
    from aiokafka import AIOKafkaConsumer

    from .helpers import RawClient

    async with FakeKafkaCluster(brokers=3, seed=3, min_session_timeout_ms=100) as cluster:
        cluster.create_topic("to", PARTITIONS)
        coordinator = cluster.servers[cluster.coordinator_for("to-group")]
        ghost = await RawClient.connect(coordinator.address)
        join = {
            "group_id": "to-group",
            "session_timeout_ms": 300,
            "rebalance_timeout_ms": 300,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "roundrobin", "metadata": b""}],
        }
        first = await ghost.request(11, 5, join)
        assert first.error_code == 79  # MEMBER_ID_REQUIRED
        joined = await ghost.request(11, 5, {**join, "member_id": first.member_id})
        assert joined.error_code == 0 and joined.leader == first.member_id
        # It never syncs nor heartbeats again.
        consumer = AIOKafkaConsumer(
            "to",
            bootstrap_servers=cluster.bootstrap,
            group_id="to-group",
            heartbeat_interval_ms=100,
            session_timeout_ms=6000,
        )
        await consumer.start()
        try:
            async with asyncio.timeout(20):
                while len(consumer.assignment()) != PARTITIONS:
                    await consumer.getmany(timeout_ms=100)
        finally:
            await consumer.stop()
            await ghost.close()
        assert first.member_id not in cluster.groups.groups["to-group"].members
