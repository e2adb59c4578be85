"""The transaction coordinator: transactional ids, their producer epochs and open transactions.

It follows a Kafka 3.x broker's TransactionCoordinator with transaction
version 1 (before KIP-890): the producer keeps its epoch across transactions,
InitProducerId bumps it (aborting whatever the previous incarnation left open,
and so fencing it), and the coordinator writes the commit/abort markers to every
partition the transaction touched. Kafka writes markers asynchronously after
EndTxn is answered; here they are written before the answer, so a consumer
that sees EndTxn's success already sees the new last stable offset.

Offsets a transaction commits for a group (TxnOffsetCommit) are held apart
and applied to the group only when the transaction commits.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import errors
from .batches import control_batch

if TYPE_CHECKING:
    from .cluster import FakeKafkaCluster

#: Kafka's transaction.max.timeout.ms default: longer timeouts are refused
MAX_TIMEOUT_MS = 900_000
#: transactional ids the cluster keeps (Kafka expires idle ones after 7 days)
MAX_TRANSACTIONAL_IDS = 10_000
#: partitions or groups one transaction may span
MAX_TXN_PARTITIONS = 10_000
#: epochs at or past this start a new producer id, as Kafka does
EPOCH_LIMIT = 32767 - 1

TopicPartition = tuple[str, int]
#: (offset, leader epoch, metadata), as GroupCoordinator.commit takes them
PendingOffset = tuple[int, int, str | None]


class TxnState(enum.Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"


@dataclass(slots=True)
class TxnMeta:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    started_at: float = 0.0
    partitions: dict[TopicPartition, None] = field(default_factory=dict)
    groups: dict[str, None] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, PendingOffset]] = field(default_factory=dict)


class TransactionCoordinator:
    """Every transactional id's state; the wire handlers are in txn_api.py."""

    def __init__(
        self,
        new_producer_id: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
        max_ids: int = MAX_TRANSACTIONAL_IDS,
    ) -> None:
        self._new_producer_id = new_producer_id
        self._clock = clock
        self.max_ids = max_ids
        self.txns: dict[str, TxnMeta] = {}
        self._by_pid: dict[int, str] = {}
        # The ongoing ones, so that the timeout check on every tick is cheap.
        self._open: dict[str, TxnMeta] = {}

    def transactional_id_of(self, producer_id: int) -> str | None:
        return self._by_pid.get(producer_id)

    def pending_offset(self, group: str, topic: str, partition: int) -> bool:
        """True while an open transaction holds an offset for this group partition."""
        key = (topic, partition)
        return any(key in meta.offsets.get(group, ()) for meta in self._open.values())

    def open_transactions(self) -> Iterator[TxnMeta]:
        return iter(list(self._open.values()))

    def check(
        self, transactional_id: str, producer_id: int, epoch: int
    ) -> tuple[int, TxnMeta | None]:
        """(error, meta) for a request naming this transactional producer.

        A wrong producer id is INVALID_PRODUCER_ID_MAPPING; a stale (or future)
        epoch is PRODUCER_FENCED, which the handlers turn into
        INVALID_PRODUCER_EPOCH for the request versions that predate KIP-588.
        """
        meta = self.txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            return errors.INVALID_PRODUCER_ID_MAPPING, None
        if meta.producer_epoch != epoch:
            return errors.PRODUCER_FENCED, None
        return errors.NONE, meta

    def init(
        self, transactional_id: str, timeout_ms: int, producer_id: int, epoch: int
    ) -> tuple[int, TxnMeta | None]:
        """InitProducerId with a transactional id: (error, meta with the new epoch).

        The caller aborts the transaction the previous epoch left open, through
        `abort_for_new_epoch`, before answering.
        """
        if not 0 < timeout_ms <= MAX_TIMEOUT_MS:
            return errors.INVALID_TRANSACTION_TIMEOUT, None
        meta = self.txns.get(transactional_id)
        if meta is None:
            if len(self.txns) >= self.max_ids:
                self._forget_one_idle()
            pid = self._new_producer_id()
            meta = TxnMeta(transactional_id, pid, 0, timeout_ms)
            self.txns[transactional_id] = meta
            self._by_pid[pid] = transactional_id
            return errors.NONE, meta
        if producer_id >= 0 and (producer_id, epoch) != (meta.producer_id, meta.producer_epoch):
            # KIP-360: a producer re-initialising with its own id and epoch bumps
            # it; one holding an older pair has been fenced already.
            return errors.PRODUCER_FENCED, None
        meta.timeout_ms = timeout_ms
        return errors.NONE, meta

    def bump(self, meta: TxnMeta) -> None:
        """Give the transactional id its next epoch (a new producer id when exhausted)."""
        if meta.producer_epoch >= EPOCH_LIMIT:
            del self._by_pid[meta.producer_id]
            meta.producer_id = self._new_producer_id()
            meta.producer_epoch = 0
            self._by_pid[meta.producer_id] = meta.transactional_id
        else:
            meta.producer_epoch += 1

    def begin_if_idle(self, meta: TxnMeta) -> bool:
        """Mark the transaction ongoing; True when this starts a new transaction."""
        if meta.state is TxnState.ONGOING:
            return False
        meta.state = TxnState.ONGOING
        self._open[meta.transactional_id] = meta
        meta.started_at = self._clock()
        meta.partitions.clear()
        meta.groups.clear()
        meta.offsets.clear()
        return True

    def finish(self, meta: TxnMeta, commit: bool) -> None:
        """The transaction's markers are written: it is complete."""
        meta.state = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        meta.offsets.clear()
        self._open.pop(meta.transactional_id, None)

    def expired(self) -> list[TxnMeta]:
        """Open transactions past their timeout, which Kafka aborts (and fences)."""
        now = self._clock()
        return [m for m in self.open_transactions() if now - m.started_at > m.timeout_ms / 1000]

    def _forget_one_idle(self) -> None:
        for tid, meta in self.txns.items():
            if meta.state is not TxnState.ONGOING:
                del self.txns[tid]
                self._by_pid.pop(meta.producer_id, None)
                return


def write_markers(
    cluster: FakeKafkaCluster,
    meta: TxnMeta,
    commit: bool,
    producer: tuple[int, int] | None = None,
) -> None:
    """End `meta`'s transaction: markers on its partitions, its offsets applied or dropped.

    Markers carry the transaction's current producer id and epoch (after a
    fencing bump, the new epoch), or `producer` when the bump gave the
    transactional id a new producer id: the markers must close the old id's data.
    """
    pid, epoch = producer or (meta.producer_id, meta.producer_epoch)
    now_ms = int(time.time() * 1000)
    for topic, index in meta.partitions:
        p = cluster.topology.partition(topic, index)
        if p is None:
            continue  # deleted while the transaction was open
        marker = control_batch(pid, epoch, commit, now_ms)
        p.log.append_marker(marker, p.leader_epoch, commit)
    journal = cluster.journal
    if commit:
        groups = cluster.groups
        for group, offsets in meta.offsets.items():
            for (topic, index), (offset, epoch, metadata) in offsets.items():
                if group not in groups.groups:
                    continue
                groups.commit(group, topic, index, offset, epoch, metadata)
                if journal is not None:
                    journal.event(
                        "commit",
                        topic=topic,
                        partition=index,
                        offset=offset,
                        group=group,
                        transactional_id=meta.transactional_id,
                    )
    if journal is not None:
        journal.event(
            "txn_commit" if commit else "txn_abort", transactional_id=meta.transactional_id
        )
    cluster.txns.finish(meta, commit)


def abort_for_new_epoch(cluster: FakeKafkaCluster, meta: TxnMeta) -> None:
    """Bump the epoch, and abort an open transaction with the new one (fencing the old)."""
    old_pid = meta.producer_id
    cluster.txns.bump(meta)
    producer = None
    if meta.producer_id != old_pid:
        # The epoch ran out: the old id ends at the last epoch, which fences it for good.
        producer = (old_pid, EPOCH_LIMIT + 1)
        cluster.producers.fence(*producer)
    cluster.producers.fence(meta.producer_id, meta.producer_epoch)
    if meta.state is TxnState.ONGOING:
        write_markers(cluster, meta, commit=False, producer=producer)
    meta.state = TxnState.EMPTY


def expire(cluster: FakeKafkaCluster) -> int:
    """Abort the transactions past their timeout, as Kafka's coordinator does; returns how many."""
    stale = cluster.txns.expired()
    for meta in stale:
        abort_for_new_epoch(cluster, meta)
    return len(stale)
