"""Produce, Fetch, ListOffsets, OffsetForLeaderEpoch and InitProducerId handlers.

Fetch and ListOffsets honour `isolation_level`: read_committed (1) reads up to
the last stable offset and gets the aborted transactions of the range it reads.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from . import errors, txn_api
from .batches import CONTROL, BatchError, split_batches
from .fields import items
from .log import LATEST
from .topology import Partition

if TYPE_CHECKING:
    from .cluster import FakeKafkaCluster
    from .dispatch import Request


def leader_check(
    cluster: FakeKafkaCluster, node_id: int, topic: str, index: int, current_leader_epoch: int = -1
) -> tuple[int, Partition | None]:
    """(error, partition) for a request that must reach the partition's leader.

    The epoch rules are KIP-320's: a client that knows a newer epoch than ours
    gets UNKNOWN_LEADER_EPOCH (we are behind), an older one FENCED_LEADER_EPOCH.
    """
    p = cluster.topology.partition(topic, index)
    if p is None:
        err = errors.UNKNOWN_TOPIC_OR_PARTITION
    elif p.leader != node_id:
        err = errors.NOT_LEADER_OR_FOLLOWER
    elif 0 <= current_leader_epoch < p.leader_epoch:
        err = errors.FENCED_LEADER_EPOCH
    elif current_leader_epoch > p.leader_epoch:
        err = errors.UNKNOWN_LEADER_EPOCH
    else:
        return errors.NONE, p
    cluster.partition_errors[err] += 1
    return err, p


# -- Produce ---------------------------------------------------------------------


READ_COMMITTED = 1


def append_records(
    cluster: FakeKafkaCluster,
    node_id: int,
    topic: str,
    index: int,
    records: Any,
    client_id: str | None = None,
) -> tuple[int, int, int]:
    """Validate and append one partition's records: (error, base_offset, log_start)."""
    err, p = leader_check(cluster, node_id, topic, index)
    if err:
        return err, -1, -1
    assert p is not None
    log = p.log
    if not records:
        return errors.CORRUPT_MESSAGE, -1, log.log_start_offset
    try:
        batches = list(split_batches(records, cluster.limits.max_message_size))
    except BatchError as exc:
        return exc.code, -1, log.log_start_offset
    if len(batches) != 1:
        # Produce v3+ carries exactly one batch per partition (Kafka enforces this).
        return errors.INVALID_RECORD, -1, log.log_start_offset
    header, view = batches[0]
    if header.attributes & CONTROL:
        # Only the transaction coordinator writes markers (Kafka: INVALID_RECORD).
        return errors.INVALID_RECORD, -1, log.log_start_offset
    pid = header.producer_id
    producers = cluster.producers
    if pid >= 0:
        err, dup = producers.check(
            pid, header.producer_epoch, topic, index, header.base_sequence, header.record_count
        )
        if err:
            return err, -1, log.log_start_offset
        if dup >= 0:
            return errors.NONE, dup, log.log_start_offset
    base = log.append(header, view, p.leader_epoch)
    if pid >= 0:
        producers.record(
            pid,
            header.producer_epoch,
            topic,
            index,
            header.base_sequence,
            header.record_count,
            base,
        )
    cluster.records_appended += header.record_count
    journal = cluster.journal
    if journal is not None:
        txn_id = cluster.txns.transactional_id_of(pid) if pid >= 0 else None
        journal.produced(topic, index, log.last_batch(), header.record_count, client_id, txn_id)
    return errors.NONE, base, log.log_start_offset


def produce(req: Request, body: Any) -> Any:
    cluster = req.cluster
    acks = body.acks
    R = req.response_class()
    TopicResp = R.TopicProduceResponse
    PartResp = TopicResp.PartitionProduceResponse
    bad_acks = acks not in (0, 1, -1)
    out = []
    for td in items(body.topic_data):
        name = td.name
        parts = []
        for pd in items(td.partition_data):
            if bad_acks:
                err, base, start = errors.INVALID_REQUIRED_ACKS, -1, -1
            else:
                err, base, start = append_records(
                    cluster, req.node_id, name, pd.index, pd.records, req.client_id
                )
            parts.append(
                PartResp(
                    index=pd.index,
                    error_code=err,
                    base_offset=base,
                    log_append_time_ms=-1,
                    log_start_offset=start,
                    # Set explicitly: a field left unset costs a __getattr__
                    # fallback on every encode.
                    record_errors=[],
                    error_message=None,
                )
            )
        out.append(TopicResp(name=name, partition_responses=parts))
    if acks == 0:
        return None
    return R(responses=out, throttle_time_ms=0)


# -- Fetch -----------------------------------------------------------------------


def _fetch_once(
    req: Request, body: Any, partitions_out: list[Any]
) -> tuple[int, list[Partition] | None]:
    """Fill `partitions_out` with one answer per requested partition.

    Returns the bytes gathered and the partitions to wait on; None when some
    partition has an error, which (as in Kafka) must be answered at once.
    """
    cluster = req.cluster
    R = req.response_class()
    PD = R.FetchableTopicResponse.PartitionData
    # Capped like a broker's fetch.max.bytes, so one request cannot ask for the world.
    budget = min(body.max_bytes, cluster.limits.max_message_size)
    committed_only = body.isolation_level == READ_COMMITTED
    AT = PD.AbortedTransaction
    total = 0
    led: list[Partition] = []
    failed = False
    partitions_out.clear()
    for topic in items(body.topics):
        name = topic.topic
        parts = []
        for fp in items(topic.partitions):
            err, p = leader_check(cluster, req.node_id, name, fp.partition, fp.current_leader_epoch)
            if err or p is None:
                failed = True
                parts.append(
                    PD(
                        partition_index=fp.partition,
                        error_code=err,
                        high_watermark=-1,
                        last_stable_offset=-1,
                        log_start_offset=-1,
                        records=b"",
                    )
                )
                continue
            led.append(p)
            log = p.log
            hw = log.next_offset
            lso = log.last_stable_offset
            offset = fp.fetch_offset
            if offset < log.log_start_offset or offset > hw:
                failed = True
                parts.append(
                    PD(
                        partition_index=fp.partition,
                        error_code=errors.OFFSET_OUT_OF_RANGE,
                        high_watermark=hw,
                        last_stable_offset=lso,
                        log_start_offset=log.log_start_offset,
                        records=b"",
                    )
                )
                continue
            limit = min(fp.partition_max_bytes, budget - total)
            upto = lso if committed_only else None
            chunks = log.read(offset, limit, upto) if limit > 0 or total == 0 else []
            if chunks and total > 0 and len(chunks[0]) > limit:
                chunks = []  # only the response's first batch may exceed the limits (KIP-74)
            data = b"".join(chunks) if chunks else b""
            total += len(data)
            aborted = []
            if committed_only and data:
                aborted = [
                    AT(producer_id=a.producer_id, first_offset=a.first_offset)
                    for a in log.txns.aborted_between(offset, lso)
                ]
            parts.append(
                PD(
                    partition_index=fp.partition,
                    error_code=errors.NONE,
                    high_watermark=hw,
                    last_stable_offset=lso,
                    log_start_offset=log.log_start_offset,
                    aborted_transactions=aborted,
                    preferred_read_replica=-1,
                    records=data,
                )
            )
        partitions_out.append(R.FetchableTopicResponse(topic=name, partitions=parts))
    return total, None if failed else led


async def fetch(req: Request, body: Any) -> Any:
    """Answer at once if min_bytes is met, else wait (without polling) for appends."""
    R = req.response_class()
    out: list[Any] = []
    total, led = _fetch_once(req, body, out)
    wait_ms = body.max_wait_ms
    if total < body.min_bytes and wait_ms > 0 and led:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + wait_ms / 1000
        while total < body.min_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            woke = loop.create_future()

            def wake(fut: asyncio.Future[None] = woke) -> None:
                if not fut.done():
                    fut.set_result(None)

            for p in led:
                p.log.listeners.add(wake)
            try:
                await asyncio.wait((woke,), timeout=remaining)
            finally:
                for p in led:
                    p.log.listeners.discard(wake)
            total, led = _fetch_once(req, body, out)
            if not led:
                break
    return R(throttle_time_ms=0, error_code=errors.NONE, session_id=0, responses=out)


# -- ListOffsets / OffsetForLeaderEpoch --------------------------------------------


def list_offsets(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    TR = R.ListOffsetsTopicResponse
    PR = TR.ListOffsetsPartitionResponse
    committed_only = req.version >= 2 and body.isolation_level == READ_COMMITTED
    out = []
    for topic in items(body.topics):
        parts = []
        for lp in items(topic.partitions):
            err, p = leader_check(
                cluster, req.node_id, topic.name, lp.partition_index, lp.current_leader_epoch
            )
            if err or p is None:
                parts.append(PR(partition_index=lp.partition_index, error_code=err))
                continue
            offset, ts = p.log.offset_for_timestamp(lp.timestamp)
            if committed_only and lp.timestamp == LATEST:
                offset = p.log.last_stable_offset
            parts.append(
                PR(
                    partition_index=lp.partition_index,
                    error_code=errors.NONE,
                    timestamp=ts,
                    offset=offset,
                    leader_epoch=p.leader_epoch,
                )
            )
        out.append(TR(name=topic.name, partitions=parts))
    return R(throttle_time_ms=0, topics=out)


def offset_for_leader_epoch(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    TR = R.OffsetForLeaderTopicResult
    PR = TR.EpochEndOffset
    out = []
    for topic in items(body.topics):
        parts = []
        for op in items(topic.partitions):
            err, p = leader_check(
                cluster, req.node_id, topic.topic, op.partition, op.current_leader_epoch
            )
            if err or p is None:
                parts.append(
                    PR(error_code=err, partition=op.partition, leader_epoch=-1, end_offset=-1)
                )
                continue
            epoch, end = p.log.end_offset_for_epoch(op.leader_epoch)
            parts.append(
                PR(
                    error_code=errors.NONE,
                    partition=op.partition,
                    leader_epoch=epoch,
                    end_offset=end,
                )
            )
        out.append(TR(topic=topic.topic, partitions=parts))
    return R(throttle_time_ms=0, topics=out)


# -- InitProducerId ----------------------------------------------------------------


def init_producer_id(req: Request, body: Any) -> Any:
    """An idempotent producer's id, or a transactional one's (txn_api: epoch bump, fencing)."""
    R = req.response_class()
    if body.transactional_id is not None:
        err, pid, epoch = txn_api.init_transactional(req, body)
        return R(throttle_time_ms=0, error_code=err, producer_id=pid, producer_epoch=epoch)
    err, pid, epoch = req.cluster.producers.init_producer(body.producer_id, body.producer_epoch)
    return R(throttle_time_ms=0, error_code=err, producer_id=pid, producer_epoch=epoch)
