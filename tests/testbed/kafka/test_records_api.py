"""DeleteRecords and DescribeProducers on raw frames: the error cases AdminClients
rarely hit, and the producer state an idempotent producer leaves."""

from __future__ import annotations

import asyncio

from confluent_kafka import Producer

from protoproxy_codecs.kafka.api_keys import ApiKey
from testbed.kafka import FakeKafkaCluster

from .helpers import RawClient, make_batch


def _delete(topic: str, partition: int, offset: int) -> dict:
    return {
        "topics": [
            {"name": topic, "partitions": [{"partition_index": partition, "offset": offset}]}
        ],
        "timeout_ms": 1000,
    }


async def test_delete_records_errors_and_low_watermark(cluster: FakeKafkaCluster) -> None:
    cluster.create_topic("d", 1)
    leader = cluster.leader("d", 0)
    log = cluster.log("d", 0)
    from testbed.kafka.batches import read_header

    for values in ([b"a", b"b", b"c"], [b"d", b"e"]):
        batch = make_batch(values)
        log.append(read_header(batch), memoryview(batch), 0)
    other = next(n for n in cluster.servers if n != leader)
    c = await RawClient.connect(cluster.servers[leader].address)
    far = await c.request(ApiKey.DELETE_RECORDS, 2, _delete("d", 0, 6))
    assert far.topics[0].partitions[0].error_code == 1  # OFFSET_OUT_OF_RANGE
    mid = await c.request(ApiKey.DELETE_RECORDS, 2, _delete("d", 0, 4))
    assert (mid.topics[0].partitions[0].error_code, mid.topics[0].partitions[0].low_watermark) == (
        0,
        4,
    )
    assert [r.offset for r in cluster.records("d", 0)] == [4]  # the first batch is gone whole
    back = await c.request(ApiKey.DELETE_RECORDS, 2, _delete("d", 0, 1))
    assert back.topics[0].partitions[0].low_watermark == 4  # never moves down
    unknown = await c.request(ApiKey.DELETE_RECORDS, 2, _delete("nope", 0, 0))
    assert unknown.topics[0].partitions[0].error_code == 3
    await c.close()
    o = await RawClient.connect(cluster.servers[other].address)
    nl = await o.request(ApiKey.DELETE_RECORDS, 2, _delete("d", 0, -1))
    assert nl.topics[0].partitions[0].error_code == 6  # NOT_LEADER_OR_FOLLOWER
    await o.close()


async def test_describe_producers_shows_an_idempotent_producer(cluster: FakeKafkaCluster) -> None:
    cluster.create_topic("p", 1)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True})
    for i in range(3):
        producer.produce("p", f"v{i}".encode(), partition=0)
    assert await asyncio.to_thread(producer.flush, 30) == 0
    c = await RawClient.connect(cluster.servers[cluster.leader("p", 0)].address)
    resp = await c.request(
        ApiKey.DESCRIBE_PRODUCERS, 0, {"topics": [{"name": "p", "partition_indexes": [0]}]}
    )
    await c.close()
    (part,) = resp.topics[0].partitions
    (state,) = part.active_producers
    assert part.error_code == 0 and state.producer_epoch == 0 and state.last_sequence == 2
