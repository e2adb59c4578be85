"""The transaction APIs on the wire, request by request, with a raw client.

The real clients (tests/integration/kafka/test_transactions.py) only take the
happy paths and the fencing path; the error codes a broker owes a client at
each step (which version gets PRODUCER_FENCED, a retried EndTxn, a coordinator
reached through the wrong broker) are pinned here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder

from protoproxy_codecs.kafka.api_keys import ApiKey
from testbed.kafka import FakeKafkaCluster, errors
from testbed.kafka.log import LATEST
from testbed.kafka.transactions import EPOCH_LIMIT

from .helpers import RawClient

TXN = "raw-tx"
TOPIC = "rt"


def _txn_batch(values: list[bytes], pid: int, epoch: int, seq: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, True, pid, epoch, seq, 1 << 20)
    for i, v in enumerate(values):
        builder.append(i, 1_700_000_000_000, None, v, [])
    return bytes(builder.build())


def _produce(records: bytes) -> dict[str, Any]:
    return {
        "transactional_id": TXN,
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": records}]}],
    }


def _fetch(isolation: int) -> dict[str, Any]:
    return {
        "max_wait_ms": 0,
        "min_bytes": 0,
        "isolation_level": isolation,
        "topics": [
            {
                "topic": TOPIC,
                "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}],
            }
        ],
    }


def _latest(isolation: int) -> dict[str, Any]:
    return {
        "replica_id": -1,
        "isolation_level": isolation,
        "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": LATEST}]}],
    }


def _add_partitions(pid: int, epoch: int) -> dict[str, Any]:
    return {
        "v3_and_below_transactional_id": TXN,
        "v3_and_below_producer_id": pid,
        "v3_and_below_producer_epoch": epoch,
        "v3_and_below_topics": [{"name": TOPIC, "partitions": [0]}],
    }


def _add_partitions_error(resp: Any) -> int:
    return int(resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code)


def _end(pid: int, epoch: int, commit: bool) -> dict[str, Any]:
    return {
        "transactional_id": TXN,
        "producer_id": pid,
        "producer_epoch": epoch,
        "committed": commit,
    }


def _init() -> dict[str, Any]:
    return {
        "transactional_id": TXN,
        "transaction_timeout_ms": 60000,
        "producer_id": -1,
        "producer_epoch": -1,
    }


async def _clients(cluster: FakeKafkaCluster) -> tuple[RawClient, RawClient, RawClient]:
    """(the transaction coordinator, the partition leader, a broker that is not the coordinator)."""
    coord = cluster.coordinator_for(TXN)
    other = next(n for n in cluster.servers if n != coord)
    return (
        await RawClient.connect(cluster.servers[coord].address),
        await RawClient.connect(cluster.servers[cluster.leader(TOPIC, 0)].address),
        await RawClient.connect(cluster.servers[other].address),
    )


async def test_abort_then_lso_fetch_and_fencing(cluster: FakeKafkaCluster) -> None:
    cluster.create_topic(TOPIC, 1)
    coord, leader, other = await _clients(cluster)
    try:
        wrong = await other.request(ApiKey.INIT_PRODUCER_ID, 4, _init())
        assert wrong.error_code == errors.NOT_COORDINATOR
        init = await coord.request(ApiKey.INIT_PRODUCER_ID, 4, _init())
        assert (init.error_code, init.producer_epoch) == (errors.NONE, 0)
        pid = init.producer_id

        added = await coord.request(ApiKey.ADD_PARTITIONS_TO_TXN, 3, _add_partitions(pid, 0))
        assert _add_partitions_error(added) == errors.NONE
        produced = await leader.request(
            ApiKey.PRODUCE, 9, _produce(_txn_batch([b"a", b"b", b"c"], pid, 0, 0))
        )
        assert produced.responses[0].partition_responses[0].error_code == errors.NONE

        # Open: read_committed sees nothing, and LATEST is the LSO (0), not the HW (3).
        fetch = await leader.request(ApiKey.FETCH, 12, _fetch(1))
        part = fetch.responses[0].partitions[0]
        assert (part.high_watermark, part.last_stable_offset, part.records) == (3, 0, b"")
        fetch = await leader.request(ApiKey.FETCH, 12, _fetch(0))
        assert fetch.responses[0].partitions[0].records != b""
        committed = await leader.request(ApiKey.LIST_OFFSETS, 7, _latest(1))
        uncommitted = await leader.request(ApiKey.LIST_OFFSETS, 7, _latest(0))
        assert committed.topics[0].partitions[0].offset == 0
        assert uncommitted.topics[0].partitions[0].offset == 3

        ended = await coord.request(ApiKey.END_TXN, 3, _end(pid, 0, False))
        assert ended.error_code == errors.NONE
        # A retried abort is fine; a commit of the aborted transaction is not.
        assert (await coord.request(ApiKey.END_TXN, 3, _end(pid, 0, False))).error_code == 0
        again = await coord.request(ApiKey.END_TXN, 3, _end(pid, 0, True))
        assert again.error_code == errors.INVALID_TXN_STATE

        fetch = await leader.request(ApiKey.FETCH, 12, _fetch(1))
        part = fetch.responses[0].partitions[0]
        assert (part.high_watermark, part.last_stable_offset) == (4, 4)  # + the abort marker
        assert [(a.producer_id, a.first_offset) for a in part.aborted_transactions] == [(pid, 0)]

        # A new incarnation bumps the epoch; the old one is fenced everywhere.
        init2 = await coord.request(ApiKey.INIT_PRODUCER_ID, 4, _init())
        assert (init2.producer_id, init2.producer_epoch) == (pid, 1)
        stale = await coord.request(ApiKey.ADD_PARTITIONS_TO_TXN, 3, _add_partitions(pid, 0))
        assert _add_partitions_error(stale) == errors.PRODUCER_FENCED
        stale_v1 = await coord.request(ApiKey.ADD_PARTITIONS_TO_TXN, 1, _add_partitions(pid, 0))
        assert _add_partitions_error(stale_v1) == errors.INVALID_PRODUCER_EPOCH  # pre-KIP-588
        old_batch = _txn_batch([b"z"], pid, 0, 3)
        zombie = await leader.request(ApiKey.PRODUCE, 9, _produce(old_batch))
        assert (
            zombie.responses[0].partition_responses[0].error_code == errors.INVALID_PRODUCER_EPOCH
        )
    finally:
        for c in (coord, leader, other):
            await c.close()


async def test_transactional_offsets_wait_for_the_commit(cluster: FakeKafkaCluster) -> None:
    cluster.create_topic(TOPIC, 1)
    group = "txg"
    coord, leader, other = await _clients(cluster)
    group_client = await RawClient.connect(cluster.servers[cluster.coordinator_for(group)].address)
    try:
        init = await coord.request(ApiKey.INIT_PRODUCER_ID, 4, _init())
        pid = init.producer_id
        add = {"transactional_id": TXN, "producer_id": pid, "producer_epoch": 0, "group_id": group}
        assert (await coord.request(ApiKey.ADD_OFFSETS_TO_TXN, 3, add)).error_code == 0
        commit = {
            "transactional_id": TXN,
            "group_id": group,
            "producer_id": pid,
            "producer_epoch": 0,
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": 42,
                            "committed_leader_epoch": -1,
                            "committed_metadata": None,
                        }
                    ],
                }
            ],
        }
        resp = await group_client.request(ApiKey.TXN_OFFSET_COMMIT, 3, commit)
        assert resp.topics[0].partitions[0].error_code == errors.NONE
        fetch = {
            "group_id": group,
            "topics": [{"name": TOPIC, "partition_indexes": [0]}],
            "require_stable": True,
        }
        pending = await group_client.request(ApiKey.OFFSET_FETCH, 7, fetch)
        assert pending.topics[0].partitions[0].error_code == errors.UNSTABLE_OFFSET_COMMIT
        assert cluster.committed(group, TOPIC, 0) == -1
        assert (await coord.request(ApiKey.END_TXN, 3, _end(pid, 0, True))).error_code == 0
        stable = await group_client.request(ApiKey.OFFSET_FETCH, 7, fetch)
        part = stable.topics[0].partitions[0]
        assert (part.error_code, part.committed_offset) == (errors.NONE, 42)
    finally:
        for c in (coord, leader, other, group_client):
            await c.close()


async def test_a_transaction_past_its_timeout_is_aborted_and_fenced() -> None:
    async with FakeKafkaCluster(brokers=1, tick_interval=0.01) as cluster:
        cluster.create_topic(TOPIC, 1)
        client = await RawClient.connect(cluster.bootstrap)
        try:
            body = {**_init(), "transaction_timeout_ms": 50}
            pid = (await client.request(ApiKey.INIT_PRODUCER_ID, 4, body)).producer_id
            await client.request(ApiKey.ADD_PARTITIONS_TO_TXN, 3, _add_partitions(pid, 0))
            await client.request(ApiKey.PRODUCE, 9, _produce(_txn_batch([b"late"], pid, 0, 0)))
            log = cluster.log(TOPIC, 0)
            # The abort marker's append wakes the log's listeners (as it wakes a long poll).
            appended = asyncio.get_running_loop().create_future()
            log.listeners.add(lambda: appended.done() or appended.set_result(None))
            await asyncio.wait_for(appended, 10)
            assert log.last_stable_offset == log.high_watermark == 2  # the record + abort marker
            late = await client.request(ApiKey.END_TXN, 3, _end(pid, 0, True))
            assert late.error_code == errors.PRODUCER_FENCED
        finally:
            await client.close()


async def test_an_exhausted_epoch_moves_to_a_new_producer_id_and_closes_the_old_ones_data(
    cluster: FakeKafkaCluster,
) -> None:
    cluster.create_topic(TOPIC, 1)
    coord, leader, other = await _clients(cluster)
    try:
        pid = (await coord.request(ApiKey.INIT_PRODUCER_ID, 4, _init())).producer_id
        cluster.txns.txns[TXN].producer_epoch = EPOCH_LIMIT  # as after 32766 re-inits
        cluster.producers.fence(pid, EPOCH_LIMIT)
        await coord.request(ApiKey.ADD_PARTITIONS_TO_TXN, 3, _add_partitions(pid, EPOCH_LIMIT))
        batch = _txn_batch([b"x"], pid, EPOCH_LIMIT, 0)
        await leader.request(ApiKey.PRODUCE, 9, _produce(batch))
        log = cluster.log(TOPIC, 0)
        assert log.last_stable_offset == 0
        init = await coord.request(ApiKey.INIT_PRODUCER_ID, 4, _init())
        assert init.producer_id != pid and init.producer_epoch == 0
        # The abort marker was written for the old producer id, so nothing stays open.
        assert log.last_stable_offset == log.high_watermark == 2
        late = await leader.request(
            ApiKey.PRODUCE, 9, _produce(_txn_batch([b"y"], pid, EPOCH_LIMIT, 1))
        )
        assert late.responses[0].partition_responses[0].error_code == errors.INVALID_PRODUCER_EPOCH
    finally:
        for c in (coord, leader, other):
            await c.close()
