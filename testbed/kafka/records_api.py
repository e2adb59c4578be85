"""DeleteRecords and DescribeProducers: the record-level admin APIs AdminClients call.

Both are answered by the partition's leader only (NOT_LEADER_OR_FOLLOWER
elsewhere), as Kafka does: AdminClient.delete_records() and
describe_producers() look the leaders up in Metadata and send one request
per leader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .fields import items

if TYPE_CHECKING:
    from .dispatch import Request
    from .topology import Partition

#: DeleteRecords' offset meaning "up to the high watermark"
TO_HIGH_WATERMARK = -1


def _partition(req: Request, topic: str, index: int) -> tuple[int, Partition | None]:
    p = req.cluster.topology.partition(topic, index)
    if p is None:
        return errors.UNKNOWN_TOPIC_OR_PARTITION, None
    if p.leader != req.node_id:
        req.cluster.partition_errors[errors.NOT_LEADER_OR_FOLLOWER] += 1
        return errors.NOT_LEADER_OR_FOLLOWER, None
    return errors.NONE, p


def delete_records(req: Request, body: Any) -> Any:
    """Move each partition's log start offset up (Kafka's deleteRecordsOnLeader).

    The low watermark answered is the new log start offset: fetches below it
    then get OFFSET_OUT_OF_RANGE and ListOffsets(earliest) answers it. An
    offset past the high watermark (or negative other than -1) is
    OFFSET_OUT_OF_RANGE, and nothing moves.
    """
    R = req.response_class()
    TR = R.DeleteRecordsTopicResult
    PR = TR.DeleteRecordsPartitionResult
    out = []
    for t in items(body.topics):
        parts = []
        for dp in items(t.partitions):
            err, p = _partition(req, t.name, dp.partition_index)
            low = -1
            if p is not None:
                log = p.log
                offset = log.high_watermark if dp.offset == TO_HIGH_WATERMARK else dp.offset
                if offset < 0 or offset > log.high_watermark:
                    err = errors.OFFSET_OUT_OF_RANGE
                else:
                    low = log.delete_before(offset)
            parts.append(PR(partition_index=dp.partition_index, low_watermark=low, error_code=err))
        out.append(TR(name=t.name, partitions=parts))
    return R(throttle_time_ms=0, topics=out)


def describe_producers(req: Request, body: Any) -> Any:
    """Each partition's idempotent producers with their epoch and last sequence.

    The fake keeps no per-producer timestamp, so ``last_timestamp`` is -1, and
    ``coordinator_epoch`` / ``current_txn_start_offset`` are -1 (no transaction
    open, as far as this API reports).
    """
    R = req.response_class()
    TR = R.TopicResponse
    PR = TR.PartitionResponse
    AP = PR.ProducerState
    out = []
    for t in items(body.topics):
        parts = []
        for index in items(t.partition_indexes):
            err, p = _partition(req, t.name, index)
            producers = []
            if p is not None:
                producers = [
                    AP(
                        producer_id=pid,
                        producer_epoch=epoch,
                        last_sequence=seq,
                        last_timestamp=-1,
                        coordinator_epoch=-1,
                        current_txn_start_offset=-1,
                    )
                    for pid, epoch, seq in req.cluster.producers.active_on(t.name, index)
                ]
            parts.append(
                PR(
                    partition_index=index,
                    error_code=err,
                    error_message=None,
                    active_producers=producers,
                )
            )
        out.append(TR(name=t.name, partitions=parts))
    return R(throttle_time_ms=0, topics=out)
