"""Kafka transactions through the proxy: real transactional clients against the
testbed's fake cluster, with the journal's exact counts.

Every wait is on a client event: a transactional call returns when the broker
answered, and consumers read until librdkafka's partition-EOF event (which,
under read_committed, comes at the last stable offset).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as TP

from testbed.harness import Testbed
from testbed.kafka import FakeKafkaCluster
from testbed.scenario import Scenario

DEADLINE = 30.0


def _scenario(brokers: int, topics: dict[str, int]) -> Scenario:
    return Scenario.ephemeral(
        grpc={"enabled": False},
        http={"enabled": False},
        echo={"enabled": False},
        kafka={"brokers": brokers, "topics": topics, "auto_create": False},
    )


@pytest.fixture
async def tb() -> AsyncIterator[Testbed]:
    async with Testbed(_scenario(3, {"t": 1, "in": 2, "out": 2, "fx": 1})) as bed:
        yield bed


def _producer(bootstrap: str, txn_id: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "linger.ms": 5,
            "transaction.timeout.ms": 60000,
        }
    )


def _read_all(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[bytes]:
    """Every value from the beginning to partition EOF (the LSO under read_committed)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{isolation}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.assign([TP(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: list[bytes] = []
    at_eof: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    try:
        while len(at_eof) < partitions and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                at_eof.add(msg.partition())
                continue
            value = msg.value()
            assert value is not None
            values.append(value)
    finally:
        consumer.close()
    assert len(at_eof) == partitions, "no EOF before the deadline"
    return values


def _abort_then_commit(bootstrap: str) -> None:
    producer = _producer(bootstrap, "tx-acceptance")
    producer.init_transactions(DEADLINE)
    producer.begin_transaction()
    for v in (b"aborted-1", b"aborted-2"):
        producer.produce("t", v, partition=0)
    producer.flush(DEADLINE)
    producer.abort_transaction(DEADLINE)
    producer.begin_transaction()
    for v in (b"committed-1", b"committed-2", b"committed-3"):
        producer.produce("t", v, partition=0)
    producer.commit_transaction(DEADLINE)


def _journal_over_http(tb: Testbed, query: str) -> dict[str, Any]:
    assert tb.app is not None and tb.app.admin is not None
    with urllib.request.urlopen(f"{tb.app.admin.url}/testbed/journal?{query}", timeout=10) as r:
        return dict(json.load(r))


@pytest.mark.parametrize("brokers", [1, 3])
async def test_read_committed_sees_only_the_committed_transaction(brokers: int) -> None:
    async with Testbed(_scenario(brokers, {"t": 1})) as tb:
        await _abort_then_commit_and_read(tb)


async def _abort_then_commit_and_read(tb: Testbed) -> None:
    bootstrap = tb.addresses["kafka"]
    await asyncio.to_thread(_abort_then_commit, bootstrap)
    committed = await asyncio.to_thread(_read_all, bootstrap, "t", 1, "read_committed")
    uncommitted = await asyncio.to_thread(_read_all, bootstrap, "t", 1, "read_uncommitted")
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    assert uncommitted == [
        b"aborted-1",
        b"aborted-2",
        b"committed-1",
        b"committed-2",
        b"committed-3",
    ]

    cluster: FakeKafkaCluster = tb.services["kafka"]
    log = cluster.log("t", 0)
    # 2 records, abort marker, 3 records, commit marker: nothing left open.
    assert log.high_watermark == 7 and log.last_stable_offset == 7
    produced = tb.journal.kafka(topic="t", operation="produce")
    assert [e.value for e in produced] == [b.decode() for b in uncommitted]
    assert {e.transactional_id for e in produced} == {"tx-acceptance"}
    assert [e.offset for e in produced] == [0, 1, 3, 4, 5]
    # Five records and the two transactions' begins (on t[0]).
    assert tb.journal.kafka(topic="t").count() == 7
    assert tb.journal.kafka(operation="txn_begin").count() == 2
    assert tb.journal.kafka(operation="txn_abort").count() == 1
    assert tb.journal.kafka(operation="txn_commit").count() == 1
    tb.journal.kafka(operation="txn_commit").assert_called(
        times=1, where=lambda e: e.transactional_id == "tx-acceptance"
    )
    # The same journal on the admin API, where a user reads it.
    over_http = await asyncio.to_thread(_journal_over_http, tb, "protocol=kafka&topic=t")
    assert over_http["total"] == 7
    assert [e["operation"] for e in over_http["entries"]].count("produce") == 5


def _seed(bootstrap: str, topic: str, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(topic, b"in-%02d" % i, partition=i % 2)
    assert producer.flush(DEADLINE) == 0


def _consume_transform_produce(
    bootstrap: str, cluster: FakeKafkaCluster, n: int
) -> tuple[list[int], list[int]]:
    """Exactly-once: each input record becomes one output record in the transaction
    that also commits the group's offsets. Returns the group's committed offsets
    just before and just after the first commit."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "eos",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    producer = _producer(bootstrap, "eos-worker")
    producer.init_transactions(DEADLINE)
    consumer.subscribe(["in"])
    seen = 0
    before: list[int] = []
    after: list[int] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while seen < n and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=7, timeout=0.2)
            if not batch:
                continue
            producer.begin_transaction()
            for msg in batch:
                assert msg.error() is None, msg.error()
                value = msg.value()
                assert value is not None
                producer.produce("out", value.upper(), partition=msg.partition())
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()),
                consumer.consumer_group_metadata(),
                DEADLINE,
            )
            if not before:
                before = [cluster.committed("eos", "in", p) for p in range(2)]
            producer.commit_transaction(DEADLINE)
            if not after:
                after = [cluster.committed("eos", "in", p) for p in range(2)]
            seen += len(batch)
    finally:
        consumer.close()
    assert seen == n
    return before, after


async def test_exactly_once_consume_transform_produce(tb: Testbed) -> None:
    bootstrap = tb.addresses["kafka"]
    cluster: FakeKafkaCluster = tb.services["kafka"]
    await asyncio.to_thread(_seed, bootstrap, "in", 20)
    before, after = await asyncio.to_thread(_consume_transform_produce, bootstrap, cluster, 20)
    # TxnOffsetCommit held the offsets apart until EndTxn committed them.
    assert before == [-1, -1]
    assert max(after) > 0
    out = sorted(await asyncio.to_thread(_read_all, bootstrap, "out", 2, "read_committed"))
    assert out == sorted(b"IN-%02d" % i for i in range(20))
    assert [cluster.committed("eos", "in", p) for p in range(2)] == [10, 10]
    commits = tb.journal.kafka(topic="in", operation="commit")
    assert {e.transactional_id for e in commits} == {"eos-worker"}
    assert max(e.offset for e in commits if e.partition == 0) == 10
    txns = tb.journal.kafka(operation="txn_commit").count()
    assert txns == tb.journal.kafka(operation="txn_begin").count() >= 1
    assert tb.journal.kafka(topic="out", operation="produce").count() == 20
    assert tb.journal.kafka(operation="txn_abort").count() == 0
    # One consumer, one generation: it joined, synced and left once each.
    for step in ("join", "sync", "leave"):
        tb.journal.kafka(operation=step).assert_called(times=1, where=lambda e: e.group == "eos")


def _fence(bootstrap: str) -> tuple[Any, list[bytes]]:
    old = _producer(bootstrap, "fenced-id")
    old.init_transactions(DEADLINE)
    old.begin_transaction()
    old.produce("fx", b"zombie", partition=0)
    old.flush(DEADLINE)
    new = _producer(bootstrap, "fenced-id")
    new.init_transactions(DEADLINE)  # aborts the old incarnation's transaction
    new.begin_transaction()
    new.produce("fx", b"successor", partition=0)
    new.commit_transaction(DEADLINE)
    with pytest.raises(KafkaException) as caught:
        old.commit_transaction(DEADLINE)
    return caught.value.args[0], _read_all(bootstrap, "fx", 1, "read_committed")


async def test_a_second_producer_with_the_same_transactional_id_fences_the_first(
    tb: Testbed,
) -> None:
    err, visible = await asyncio.to_thread(_fence, tb.addresses["kafka"])
    assert err.fatal()
    assert err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED), err
    assert visible == [b"successor"]
    assert tb.journal.kafka(operation="txn_abort").count() == 1
    assert tb.journal.kafka(operation="txn_commit").count() == 1


# -- the same abort-then-commit with the other clients ------------------------------------
#
# These consumers give no end-of-partition event, so they poll (with a deadline)
# until they hold as many records as were committed. The aborted records come
# first in the log, so a consumer that wrongly saw them would hold those instead.

COMMITTED = [b"committed-1", b"committed-2", b"committed-3"]


def _kafka_python_abort_then_commit(bootstrap: str, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-txn")
    producer.init_transactions()
    producer.begin_transaction()
    for v in (b"aborted-1", b"aborted-2"):
        producer.send(topic, v, partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    for v in COMMITTED:
        producer.send(topic, v, partition=0)
    producer.commit_transaction()
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", fetch_max_wait_ms=50
    )
    consumer.assign([KTP(topic, 0)])
    consumer.seek_to_beginning()
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < len(COMMITTED) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(r.value for r in records)
    consumer.close()
    return got


async def test_kafka_python_transactional_producer(tb: Testbed) -> None:
    got = await asyncio.to_thread(_kafka_python_abort_then_commit, tb.addresses["kafka"], "t")
    assert got == COMMITTED
    assert tb.journal.kafka(topic="t", operation="produce").count() == 5
    assert tb.journal.kafka(operation="txn_abort").count() == 1
    assert tb.journal.kafka(operation="txn_commit").count() == 1


async def test_aiokafka_transactional_producer(tb: Testbed) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATP

    bootstrap = tb.addresses["kafka"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="aio-txn")
    await producer.start()
    try:

        class Abort(Exception):
            """Raised inside the transaction block to make aiokafka abort it."""

        with pytest.raises(Abort):
            async with producer.transaction():
                for v in (b"aborted-1", b"aborted-2"):
                    await producer.send_and_wait("t", v, partition=0)
                raise Abort
        async with producer.transaction():
            for v in COMMITTED:
                await producer.send_and_wait("t", v, partition=0)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", fetch_max_wait_ms=50
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        consumer.assign([ATP("t", 0)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + DEADLINE
        while len(got) < len(COMMITTED) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    assert got == COMMITTED
    assert tb.journal.kafka(topic="t", operation="produce").count() == 5
    assert tb.journal.kafka(operation="txn_abort").count() == 1
    assert tb.journal.kafka(operation="txn_commit").count() == 1
