"""Wire-level behaviour checked with a raw client: idempotent sequences,
unsupported requests, Fetch long-polling, NOT_LEADER routing, admin APIs."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from protoproxy_codecs.kafka import framing
from testbed.kafka import FakeKafkaCluster, errors
from testbed.kafka.versions import SUPPORTED

from .helpers import RawClient, make_batch


def _produce_body(topic: str, partition: int, records: bytes, acks: int = -1) -> dict:
    return {
        "acks": acks,
        "timeout_ms": 5000,
        "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": records}]}
        ],
    }


def _fetch_body(
    topic: str, max_wait_ms: int, min_bytes: int, fetch_offset: int = 0, **extra: int
) -> dict:
    """A Fetch of partition 0 of `topic`; `extra` adds top-level fields (max_bytes, ...)."""
    return {
        "max_wait_ms": max_wait_ms,
        "min_bytes": min_bytes,
        **extra,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {"partition": 0, "fetch_offset": fetch_offset, "partition_max_bytes": 1 << 20}
                ],
            }
        ],
    }


def _produce_result(resp) -> tuple[int, int]:
    part = resp.responses[0].partition_responses[0]
    return part.error_code, part.base_offset


async def _leader_client(cluster: FakeKafkaCluster, topic: str, partition: int) -> RawClient:
    return await RawClient.connect(cluster.servers[cluster.leader(topic, partition)].address)


async def test_idempotent_producer_duplicates_and_sequence_errors(cluster: FakeKafkaCluster):
    cluster.create_topic("idem", 1)
    client = await _leader_client(cluster, "idem", 0)
    try:
        init = await client.request(
            22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000}
        )
        assert init.error_code == errors.NONE
        pid, epoch = init.producer_id, init.producer_epoch

        async def send(seq: int, n: int, ep: int = epoch) -> tuple[int, int]:
            batch = make_batch(
                [b"s%d" % (seq + i) for i in range(n)], producer_id=pid, epoch=ep, base_sequence=seq
            )
            return _produce_result(await client.request(0, 9, _produce_body("idem", 0, batch)))

        assert await send(0, 3) == (errors.NONE, 0)
        assert await send(3, 2) == (errors.NONE, 3)
        # A retry of a recent batch is acked with its original offset, not stored again.
        assert await send(0, 3) == (errors.NONE, 0)
        assert await send(3, 2) == (errors.NONE, 3)
        # A gap, or an overlapping batch that is not a retry, is out of order.
        assert (await send(7, 1))[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert (await send(4, 2))[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
        for seq in range(5, 11):  # six more batches push seq 0 out of the cache
            assert (await send(seq, 1))[0] == errors.NONE
        assert (await send(0, 3))[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
        # A fenced (older) epoch after a bump.
        bumped = await client.request(
            22,
            4,
            {
                "transactional_id": None,
                "transaction_timeout_ms": 60000,
                "producer_id": pid,
                "producer_epoch": epoch,
            },
        )
        assert bumped.producer_epoch == epoch + 1
        assert await send(0, 1, epoch + 1) == (errors.NONE, 11)
        assert (await send(1, 1, epoch))[0] == errors.INVALID_PRODUCER_EPOCH
    finally:
        await client.close()
    values = [r.value for r in cluster.records("idem", 0)]
    assert values == [b"s0", b"s1", b"s2", b"s3", b"s4", *(b"s%d" % i for i in range(5, 11)), b"s0"]


async def test_produce_and_fetch_on_a_follower_get_not_leader(cluster: FakeKafkaCluster):
    cluster.create_topic("nl", 1)
    follower = next(n for n in cluster.servers if n != cluster.leader("nl", 0))
    client = await RawClient.connect(cluster.servers[follower].address)
    try:
        resp = await client.request(0, 9, _produce_body("nl", 0, make_batch([b"x"])))
        assert _produce_result(resp)[0] == errors.NOT_LEADER_OR_FOLLOWER
        fetch = await client.request(1, 12, _fetch_body("nl", 0, 0))
        assert fetch.responses[0].partitions[0].error_code == errors.NOT_LEADER_OR_FOLLOWER
    finally:
        await client.close()
    assert cluster.records("nl", 0) == []


async def _parked(cluster: FakeKafkaCluster, topic: str, fetch: asyncio.Task[Any]) -> None:
    """Wait until the fetch is parked on partition 0's log (a fixed sleep is not
    enough on a loaded machine: the request may not have been read yet)."""
    log = cluster.log(topic, 0)
    async with asyncio.timeout(10):
        while not log.listeners and not fetch.done():
            await asyncio.sleep(0.01)
    assert not fetch.done(), "the fetch was answered instead of waiting for data"


async def test_fetch_waits_for_data_instead_of_answering_empty(cluster: FakeKafkaCluster):
    cluster.create_topic("lp", 1)
    consumer = await _leader_client(cluster, "lp", 0)
    producer = await _leader_client(cluster, "lp", 0)
    try:
        fetch = asyncio.create_task(
            consumer.request(
                1, 11, _fetch_body("lp", 30_000, 1, max_bytes=1 << 20, isolation_level=1)
            )
        )
        await _parked(cluster, "lp", fetch)
        handled = cluster.requests_handled
        await producer.request(0, 7, _produce_body("lp", 0, make_batch([b"wake"]), acks=1))
        async with asyncio.timeout(10):  # far below max_wait: the append woke the fetch
            resp = await fetch
        part = resp.responses[0].partitions[0]
        assert part.error_code == errors.NONE and part.high_watermark == 1
        assert b"wake" in bytes(part.records)
        assert cluster.requests_handled == handled + 1  # no polling behind the client's back
    finally:
        await consumer.close()
        await producer.close()


async def test_acks_zero_gets_no_response_but_is_stored(cluster: FakeKafkaCluster):
    cluster.create_topic("a0", 1)
    client = await _leader_client(cluster, "a0", 0)
    try:
        frame = framing.encode_request(0, 9, 1, "c", _produce_body("a0", 0, make_batch([b"q"]), 0))
        client.writer.write(frame)
        # The next request's response must be the next thing on the wire.
        meta = await client.request(3, 9, {"topics": [{"name": "a0"}]})
        assert meta.topics[0].name == "a0"
    finally:
        await client.close()
    assert [r.value for r in cluster.records("a0", 0)] == [b"q"]


async def test_api_versions_advertises_exactly_what_is_served(cluster: FakeKafkaCluster):
    client = await RawClient.connect(cluster.bootstrap)
    try:
        resp = await client.request(
            18, 3, {"client_software_name": "t", "client_software_version": "1"}
        )
        assert {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys} == SUPPORTED
        # A version above ours: KIP-511 answer in v0, with UNSUPPORTED_VERSION and our ranges.
        frame = framing.encode_request(
            18, 4, 9, "c", {"client_software_name": "t", "client_software_version": "1"}
        )
        corr, body = framing.decode_response(18, 0, await client.send_raw(frame))
        assert corr == 9 and body.error_code == errors.UNSUPPORTED_VERSION
        assert len(body.api_keys) == len(SUPPORTED)
    finally:
        await client.close()


async def test_unsupported_requests_get_an_error_response(cluster: FakeKafkaCluster):
    client = await RawClient.connect(cluster.bootstrap)
    try:
        # Known to the schemas, not implemented here: DescribeAcls v1.
        resp = await client.request(
            29,
            1,
            {
                "resource_type_filter": 1,
                "resource_name_filter": None,
                "principal_filter": None,
                "host_filter": None,
                "operation": 1,
                "permission_type": 1,
            },
        )
        assert resp.error_code == errors.UNSUPPORTED_VERSION
        # An api key nobody knows: header + UNSUPPORTED_VERSION, connection kept.
        frame = struct.pack(">hhih", 999, 0, 77, 1) + b"c" + b"\x00" * 4
        payload = await client.send_raw(struct.pack(">i", len(frame)) + frame)
        assert struct.unpack(">ih", payload) == (77, errors.UNSUPPORTED_VERSION)
        meta = await client.request(3, 12, {"topics": None})
        assert len(meta.brokers) == 3
    finally:
        await client.close()
    assert cluster.unsupported_requests == 2


async def test_admin_topics_metadata_and_configs(cluster: FakeKafkaCluster):
    client = await RawClient.connect(cluster.bootstrap)
    try:
        created = await client.request(
            19,
            5,
            {
                "topics": [
                    {
                        "name": "adm",
                        "num_partitions": 4,
                        "replication_factor": 2,
                        "assignments": [],
                        "configs": [{"name": "retention.ms", "value": "1000"}],
                    },
                    {
                        "name": "bad/name",
                        "num_partitions": 1,
                        "replication_factor": 1,
                        "assignments": [],
                        "configs": [],
                    },
                ],
                "timeout_ms": 1000,
                "validate_only": False,
            },
        )
        assert [t.error_code for t in created.topics] == [
            errors.NONE,
            errors.INVALID_TOPIC_EXCEPTION,
        ]
        again = await client.request(
            19,
            5,
            {
                "topics": [
                    {
                        "name": "adm",
                        "num_partitions": 1,
                        "replication_factor": 1,
                        "assignments": [],
                        "configs": [],
                    }
                ],
                "timeout_ms": 1000,
                "validate_only": False,
            },
        )
        assert again.topics[0].error_code == errors.TOPIC_ALREADY_EXISTS
        meta = await client.request(
            3,
            12,
            {"topics": [{"name": "adm"}, {"name": "auto"}], "allow_auto_topic_creation": False},
        )
        adm, auto = meta.topics
        assert adm.error_code == errors.NONE and len(adm.partitions) == 4
        assert {len(p.replica_nodes) for p in adm.partitions} == {2}
        assert len({p.leader_id for p in adm.partitions}) == 3  # spread over the brokers
        assert auto.error_code == errors.UNKNOWN_TOPIC_OR_PARTITION
        configs = await client.request(
            32,
            4,
            {
                "resources": [
                    {"resource_type": 2, "resource_name": "adm", "configuration_keys": None}
                ],
                "include_synonyms": False,
                "include_documentation": False,
            },
        )
        values = {c.name: c.value for c in configs.results[0].configs}
        assert values["retention.ms"] == "1000"
        deleted = await client.request(20, 4, {"topic_names": ["adm", "nope"], "timeout_ms": 1000})
        assert [r.error_code for r in deleted.responses] == [
            errors.NONE,
            errors.UNKNOWN_TOPIC_OR_PARTITION,
        ]
    finally:
        await client.close()
    assert cluster.topics() == []


async def test_connections_are_counted_per_broker(cluster: FakeKafkaCluster):
    before = cluster.connections_accepted_by_broker
    clients = [await RawClient.connect(cluster.servers[n].address) for n in (0, 1, 1)]
    for c in clients:
        await c.request(18, 0, {})
        await c.close()
    after = cluster.connections_accepted_by_broker
    assert {n: after[n] - before[n] for n in after} == {0: 1, 1: 2, 2: 0}
    assert cluster.connections_accepted == sum(after.values())


async def test_parked_fetch_answers_when_leadership_moves(cluster: FakeKafkaCluster):
    cluster.create_topic("park", 1)
    old_leader = cluster.leader("park", 0)
    client = await _leader_client(cluster, "park", 0)
    try:
        fetch = asyncio.create_task(client.request(1, 12, _fetch_body("park", 30_000, 1)))
        await _parked(cluster, "park", fetch)
        cluster.move_leader("park", 0, (old_leader + 1) % 3)
        async with asyncio.timeout(10):
            resp = await fetch
        assert resp.responses[0].partitions[0].error_code == errors.NOT_LEADER_OR_FOLLOWER
    finally:
        await client.close()


async def test_same_seed_same_cluster():
    async def shape(seed: int) -> tuple:
        async with FakeKafkaCluster(seed=seed) as c:
            t = c.create_topic("s", 6)
            return c.cluster_id, t.topic_id, [c.leader("s", p) for p in range(6)]

    assert await shape(11) == await shape(11)
    assert await shape(11) != await shape(12)


async def test_find_coordinator_by_key_and_by_coordinator_keys(cluster: FakeKafkaCluster):
    client = await RawClient.connect(cluster.bootstrap)
    try:
        old = await client.request(10, 3, {"key": "g1", "key_type": 0})
        new = await client.request(10, 4, {"key_type": 0, "coordinator_keys": ["g1", "g2"]})
        txn = await client.request(10, 4, {"key_type": 1, "coordinator_keys": ["tx"]})
    finally:
        await client.close()
    assert old.error_code == 0 and old.node_id == cluster.coordinator_for("g1")
    assert old.port == int(cluster.servers[old.node_id].address.rpartition(":")[2])
    assert [(c.key, c.node_id) for c in new.coordinators] == [
        ("g1", cluster.coordinator_for("g1")),
        ("g2", cluster.coordinator_for("g2")),
    ]
    # Transaction coordinators (key_type 1) are found like group coordinators.
    assert txn.coordinators[0].error_code == errors.NONE
    assert txn.coordinators[0].node_id == cluster.coordinator_for("tx")


async def test_fetch_with_an_error_answers_at_once(cluster: FakeKafkaCluster):
    cluster.create_topic("oor", 2)
    client = await _leader_client(cluster, "oor", 0)
    try:
        async with asyncio.timeout(10):  # max_wait is 60 s: an error must not wait for it
            resp = await client.request(1, 12, _fetch_body("oor", 60_000, 1 << 20, fetch_offset=99))
    finally:
        await client.close()
    assert resp.responses[0].partitions[0].error_code == errors.OFFSET_OUT_OF_RANGE


async def test_a_batch_whose_crc_fails_is_corrupt_message_for_its_partition_only(
    cluster: FakeKafkaCluster,
):
    """One Produce, two partitions on one leader: the batch with a flipped value
    byte is CORRUPT_MESSAGE and stored nowhere; the other is stored as sent."""
    cluster.create_topic("crc", 2)
    cluster.move_leader("crc", 1, cluster.leader("crc", 0))
    good = make_batch([b"good"])
    bad = bytearray(make_batch([b"flipped"]))
    bad[-3] ^= 0x04  # inside the record's value: only the CRC can tell
    body = {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [
            {
                "name": "crc",
                "partition_data": [
                    {"index": 0, "records": bytes(bad)},
                    {"index": 1, "records": good},
                ],
            }
        ],
    }
    client = await _leader_client(cluster, "crc", 0)
    try:
        resp = await client.request(0, 9, body)
    finally:
        await client.close()
    parts = {p.index: p.error_code for p in resp.responses[0].partition_responses}
    assert parts == {0: errors.CORRUPT_MESSAGE, 1: errors.NONE}
    assert cluster.records("crc", 0) == []
    assert [r.value for r in cluster.records("crc", 1)] == [b"good"]
