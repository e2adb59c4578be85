"""Transaction handlers: InitProducerId (transactional), AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn and TxnOffsetCommit.

The coordinator for a transactional id is the broker FindCoordinator names for
it (key_type 1); every other broker answers NOT_COORDINATOR, as Kafka does, so
clients really follow the lookup. TxnOffsetCommit goes to the *group's*
coordinator instead. State lives in transactions.TransactionCoordinator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .fields import items, text
from .groups import Group
from .transactions import MAX_TXN_PARTITIONS, TxnState, abort_for_new_epoch, write_markers

if TYPE_CHECKING:
    from .dispatch import Request
    from .transactions import TxnMeta

#: versions before KIP-588 know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED
_FENCED_SINCE = {"InitProducerId": 4, "AddPartitionsToTxn": 2, "AddOffsetsToTxn": 2, "EndTxn": 2}


def _fenced_as(err: int, api: str, version: int) -> int:
    if err == errors.PRODUCER_FENCED and version < _FENCED_SINCE[api]:
        return errors.INVALID_PRODUCER_EPOCH
    return err


def _coordinator_error(req: Request, transactional_id: Any) -> int:
    if not isinstance(transactional_id, str) or not transactional_id:
        return errors.INVALID_REQUEST
    node = req.cluster.coordinator_for(transactional_id)
    if node < 0:
        return errors.COORDINATOR_NOT_AVAILABLE
    return errors.NONE if node == req.node_id else errors.NOT_COORDINATOR


def _begin(req: Request, meta: TxnMeta, topic: str | None, partition: int | None) -> None:
    if req.cluster.txns.begin_if_idle(meta) and req.cluster.journal is not None:
        req.cluster.journal.event(
            "txn_begin",
            topic=topic,
            partition=partition,
            client_id=req.client_id,
            transactional_id=meta.transactional_id,
        )


# -- InitProducerId ----------------------------------------------------------------------


def init_transactional(req: Request, body: Any) -> tuple[int, int, int]:
    """(error, producer_id, epoch) for InitProducerId with a transactional id."""
    tid = body.transactional_id
    err = _coordinator_error(req, tid)
    if err:
        return err, -1, -1
    cluster = req.cluster
    pid = body.producer_id if req.version >= 3 else -1
    epoch = body.producer_epoch if req.version >= 3 else -1
    is_new = tid not in cluster.txns.txns
    err, meta = cluster.txns.init(tid, body.transaction_timeout_ms, pid, epoch)
    if err or meta is None:
        return _fenced_as(err, "InitProducerId", req.version), -1, -1
    if not is_new:
        # A new incarnation: bump the epoch and abort what the old one left open.
        abort_for_new_epoch(cluster, meta)
    return errors.NONE, meta.producer_id, meta.producer_epoch


# -- AddPartitionsToTxn ---------------------------------------------------------------------


def add_partitions_to_txn(req: Request, body: Any) -> Any:
    """v0-3: one transaction per request (v4's batches are broker-to-broker, KIP-890)."""
    cluster = req.cluster
    R = req.response_class()
    TR = R.AddPartitionsToTxnTopicResult
    PR = TR.AddPartitionsToTxnPartitionResult
    tid = body.v3_and_below_transactional_id
    wanted = [(text(t.name), list(items(t.partitions))) for t in items(body.v3_and_below_topics)]
    err = _coordinator_error(req, tid)
    meta = None
    if not err:
        err, meta = cluster.txns.check(
            tid, body.v3_and_below_producer_id, body.v3_and_below_producer_epoch
        )
        err = _fenced_as(err, "AddPartitionsToTxn", req.version)
    per_partition: dict[tuple[str, int], int] = {}
    if not err and meta is not None:
        unknown = {
            (n, i) for n, ps in wanted for i in ps if cluster.topology.partition(n, i) is None
        }
        total = len(meta.partitions) + sum(len(ps) for _, ps in wanted)
        if total > MAX_TXN_PARTITIONS:
            err = errors.INVALID_REQUEST
        elif unknown:
            # Kafka adds none of them: the unknown ones fail, the rest were not attempted.
            for n, ps in wanted:
                for i in ps:
                    per_partition[(n, i)] = (
                        errors.UNKNOWN_TOPIC_OR_PARTITION
                        if (n, i) in unknown
                        else errors.OPERATION_NOT_ATTEMPTED
                    )
        else:
            for n, ps in wanted:
                for i in ps:
                    _begin(req, meta, n, i)
                    meta.partitions[(n, i)] = None
    results = [
        TR(
            name=n,
            results_by_partition=[
                PR(partition_index=i, partition_error_code=per_partition.get((n, i), err))
                for i in ps
            ],
        )
        for n, ps in wanted
    ]
    return R(throttle_time_ms=0, results_by_topic_v3_and_below=results)


# -- AddOffsetsToTxn -------------------------------------------------------------------------


def add_offsets_to_txn(req: Request, body: Any) -> Any:
    cluster = req.cluster
    err = _coordinator_error(req, body.transactional_id)
    if not err:
        err, meta = cluster.txns.check(body.transactional_id, body.producer_id, body.producer_epoch)
        err = _fenced_as(err, "AddOffsetsToTxn", req.version)
        if not err and meta is not None:
            if not isinstance(body.group_id, str) or not body.group_id:
                err = errors.INVALID_GROUP_ID
            else:
                _begin(req, meta, None, None)
                meta.groups[body.group_id] = None
    return req.response_class()(throttle_time_ms=0, error_code=err)


# -- EndTxn ---------------------------------------------------------------------------------


def end_txn(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    err = _coordinator_error(req, body.transactional_id)
    if not err:
        err, meta = cluster.txns.check(body.transactional_id, body.producer_id, body.producer_epoch)
        err = _fenced_as(err, "EndTxn", req.version)
        if not err and meta is not None:
            commit = bool(body.committed)
            if meta.state is TxnState.ONGOING:
                write_markers(cluster, meta, commit)
            elif meta.state is not (
                TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
            ):
                # Ending a transaction that is not open (a retry of the same end is fine).
                err = errors.INVALID_TXN_STATE
    return R(throttle_time_ms=0, error_code=err, producer_id=-1, producer_epoch=-1)


# -- TxnOffsetCommit ------------------------------------------------------------------------


def txn_offset_commit(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    TR = R.TxnOffsetCommitResponseTopic
    PR = TR.TxnOffsetCommitResponsePartition
    group_id = body.group_id
    err = errors.NONE
    if not isinstance(group_id, str) or not group_id:
        err = errors.INVALID_GROUP_ID
    else:
        node = cluster.coordinator_for(group_id)
        if node != req.node_id:
            err = errors.COORDINATOR_NOT_AVAILABLE if node < 0 else errors.NOT_COORDINATOR
    meta = None
    if not err:
        err, meta = cluster.txns.check(
            text(body.transactional_id), body.producer_id, body.producer_epoch
        )
        if err == errors.PRODUCER_FENCED:
            err = errors.INVALID_PRODUCER_EPOCH  # the group coordinator's word for it
        elif (
            not err
            and meta is not None
            and (meta.state is not TxnState.ONGOING or group_id not in meta.groups)
        ):
            err = errors.INVALID_TXN_STATE  # AddOffsetsToTxn must come first
    if not err:
        generation = body.generation_id if req.version >= 3 else -1
        if generation >= 0:
            err = cluster.groups.validate_commit(group_id, generation, text(body.member_id))
        elif group_id not in cluster.groups.groups:
            cluster.groups.groups[group_id] = Group(group_id)
    out = []
    for topic in items(body.topics):
        parts = []
        for cp in items(topic.partitions):
            perr = err
            if not perr and cluster.topology.partition(topic.name, cp.partition_index) is None:
                perr = errors.UNKNOWN_TOPIC_OR_PARTITION
            if not perr and meta is not None:
                epoch = cp.committed_leader_epoch if req.version >= 2 else -1
                pending = meta.offsets.setdefault(group_id, {})
                pending[(topic.name, cp.partition_index)] = (
                    cp.committed_offset,
                    epoch,
                    cp.committed_metadata,
                )
                if cluster.journal is not None:
                    cluster.journal.event(
                        "txn_offset_commit",
                        topic=topic.name,
                        partition=cp.partition_index,
                        offset=cp.committed_offset,
                        group=group_id,
                        client_id=req.client_id,
                        transactional_id=meta.transactional_id,
                    )
            parts.append(PR(partition_index=cp.partition_index, error_code=perr))
        out.append(TR(name=topic.name, partitions=parts))
    return R(throttle_time_ms=0, topics=out)
