"""One partition's log: stored record batches with broker-assigned offsets.

Pure data structure (no asyncio): the server layer registers wake-up callbacks
in `listeners` to implement Fetch long-polling. There is one copy of each log
shared by all "replicas", so the high watermark equals the log end offset as
soon as a batch is appended: that is what acks=-1 with a fully in-sync replica
set gives a client of a real cluster.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kafka.record.default_records import DefaultRecordBatch

from .batches import BatchHeader, read_header, restamp

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record as a test sees it through `FakeKafkaCluster.records()`."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class PartitionLog:
    """Batches in offset order, plus the leader-epoch cache OffsetForLeaderEpoch reads."""

    __slots__ = (
        "_bases",
        "_batches",
        "_epochs",
        "_max_ts",
        "listeners",
        "log_start_offset",
        "next_offset",
        "retention_bytes",
        "size_bytes",
    )

    def __init__(self, retention_bytes: int | None = None) -> None:
        # Like Kafka's retention.bytes: past it, the oldest batches go and the log
        # start offset moves up, so a long-running testbed has bounded memory.
        self.retention_bytes = retention_bytes
        self._bases: list[int] = []
        self._batches: list[bytearray] = []
        self._max_ts: list[int] = []
        # (leader_epoch, start_offset), ascending: the leader epoch cache.
        self._epochs: list[tuple[int, int]] = []
        self.log_start_offset = 0
        self.next_offset = 0
        self.size_bytes = 0
        self.listeners: set[Callable[[], None]] = set()

    @property
    def high_watermark(self) -> int:
        return self.next_offset

    def new_leader_epoch(self, epoch: int) -> None:
        """Record that `epoch` starts at the current end of the log."""
        if self._epochs and self._epochs[-1][1] == self.next_offset:
            self._epochs[-1] = (epoch, self.next_offset)
        else:
            self._epochs.append((epoch, self.next_offset))

    def append(self, header: BatchHeader, batch: memoryview, leader_epoch: int) -> int:
        """Store one batch, assigning its offsets; returns the base offset."""
        base = self.next_offset
        self._bases.append(base)
        self._batches.append(restamp(batch, base, leader_epoch))
        self._max_ts.append(header.max_timestamp)
        self.next_offset = base + header.last_offset_delta + 1
        self.size_bytes += len(batch)
        if self.retention_bytes is not None and self.size_bytes > self.retention_bytes:
            self._enforce_retention(self.retention_bytes)
        if self.listeners:
            for wake in tuple(self.listeners):
                wake()
        return base

    def _enforce_retention(self, limit: int) -> None:
        """Drop whole batches from the head down to 90% of `limit` (amortised)."""
        target = limit * 9 // 10
        drop = 0
        size = self.size_bytes
        while drop < len(self._batches) - 1 and size > target:
            size -= len(self._batches[drop])
            drop += 1
        if drop:
            del self._batches[:drop], self._bases[:drop], self._max_ts[:drop]
            self.size_bytes = size
            self.log_start_offset = self._bases[0]

    def read(self, offset: int, max_bytes: int) -> list[bytearray]:
        """Whole batches from the one holding `offset`, up to `max_bytes`.

        The first batch is returned even when it alone exceeds `max_bytes`, as
        a real broker does (KIP-74), so a consumer can always make progress.
        Clients skip the records before `offset` in the first batch themselves.
        """
        if offset >= self.next_offset or offset < self.log_start_offset:
            return []
        i = bisect.bisect_right(self._bases, offset) - 1
        i = max(i, 0)
        out: list[bytearray] = []
        total = 0
        batches = self._batches
        for j in range(i, len(batches)):
            b = batches[j]
            if out and total + len(b) > max_bytes:
                break
            out.append(b)
            total += len(b)
        return out

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int]:
        """ListOffsets: (offset, timestamp) for LATEST/EARLIEST/MAX_TIMESTAMP or a time."""
        if timestamp == LATEST:
            return self.next_offset, -1
        if timestamp == EARLIEST:
            return self.log_start_offset, -1
        if timestamp == MAX_TIMESTAMP:
            if not self._max_ts:
                return -1, -1
            best = max(range(len(self._max_ts)), key=self._max_ts.__getitem__)
            ts = self._max_ts[best]
            for rec in DefaultRecordBatch(bytes(self._batches[best])):
                if rec.timestamp == ts:
                    return rec.offset, ts
            return self._bases[best], ts
        for j, max_ts in enumerate(self._max_ts):
            if max_ts >= timestamp:
                for rec in DefaultRecordBatch(bytes(self._batches[j])):
                    if rec.timestamp >= timestamp:
                        return rec.offset, rec.timestamp
        return -1, -1

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset)."""
        epochs = self._epochs
        if not epochs or epoch < epochs[0][0]:
            return -1, -1
        for k in range(len(epochs) - 1, -1, -1):
            if epochs[k][0] <= epoch:
                end = epochs[k + 1][1] if k + 1 < len(epochs) else self.next_offset
                return epochs[k][0], end
        return -1, -1

    def records(self) -> Iterator[StoredRecord]:
        """Every record, decompressed; for tests and the control API, not the hot path."""
        for batch in self._batches:
            decoded = DefaultRecordBatch(bytes(batch))
            if decoded.is_control_batch:
                continue
            for rec in decoded:
                if rec.offset < self.log_start_offset:
                    continue  # below a DeleteRecords point inside this batch
                yield StoredRecord(
                    rec.offset, rec.timestamp, rec.key, rec.value, tuple(rec.headers)
                )

    def batch_headers(self) -> Iterator[BatchHeader]:
        for batch in self._batches:
            yield read_header(batch)

    def delete_before(self, offset: int) -> int:
        """DeleteRecords: the log starts at `offset` (<= the high watermark) from now on.

        Whole batches below it go; a batch holding it stays (a broker deletes
        segments, not records) and readers skip its records below the new start,
        as clients already do for a fetch offset inside a batch. Returns the new
        log start offset (unchanged when `offset` is below it).
        """
        if offset <= self.log_start_offset:
            return self.log_start_offset
        drop = 0
        n = len(self._batches)
        while drop < n and (self._bases[drop + 1] if drop + 1 < n else self.next_offset) <= offset:
            self.size_bytes -= len(self._batches[drop])
            drop += 1
        if drop:
            del self._batches[:drop], self._bases[:drop], self._max_ts[:drop]
        self.log_start_offset = offset
        return offset
