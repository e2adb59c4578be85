"""Idempotent-producer state: producer ids, epochs and per-partition sequences.

Mirrors Kafka's ProducerStateManager closely enough that clients' retry logic
behaves as against a real broker:
- a retried batch equal to one of the last five batches written for that
  producer/partition is a duplicate: it is acknowledged again with the offset it
  was first written at, and not stored twice;
- any other sequence that is not last+1 (wrapping at 2**31) is
  OUT_OF_ORDER_SEQUENCE_NUMBER;
- an epoch below the current one is INVALID_PRODUCER_EPOCH; a new epoch must
  start at sequence 0.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from . import errors

DUPLICATE_CACHE = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN
INT32_MAX = 2**31 - 1


def _next_seq(seq: int) -> int:
    return 0 if seq == INT32_MAX else seq + 1


def last_sequence(base_sequence: int, record_count: int) -> int:
    """The sequence of a batch's last record, wrapping as the client does."""
    last = base_sequence + record_count - 1
    return last - INT32_MAX - 1 if last > INT32_MAX else last


@dataclass(slots=True)
class _Written:
    first_seq: int
    last_seq: int
    base_offset: int


@dataclass(slots=True)
class _PartitionProducer:
    epoch: int
    batches: deque[_Written] = field(default_factory=lambda: deque(maxlen=DUPLICATE_CACHE))


class ProducerStates:
    """All producers known to the cluster; keyed by (producer_id, topic, partition)."""

    def __init__(self, first_producer_id: int = 1000, max_states: int = 100_000) -> None:
        # Past max_states the oldest (producer, partition) entry is forgotten, as
        # Kafka expires idle producer state: that producer's next batch is then
        # judged as a first batch.
        self.max_states = max_states
        self._next_pid = first_producer_id
        self._epochs: dict[int, int] = {}
        self._partitions: dict[tuple[int, str, int], _PartitionProducer] = {}

    def init_producer(self, producer_id: int = -1, epoch: int = -1) -> tuple[int, int, int]:
        """InitProducerId: (error, producer_id, epoch) for a new or re-initialising producer."""
        if producer_id >= 0:
            current = self._epochs.get(producer_id)
            if current is None:
                return errors.UNKNOWN_PRODUCER_ID, -1, -1
            if epoch != current:
                return errors.INVALID_PRODUCER_EPOCH, -1, -1
            if current >= 32767 - 1:
                # Epoch exhausted: a real broker hands out a fresh producer id.
                producer_id = -1
            else:
                self._epochs[producer_id] = current + 1
                return errors.NONE, producer_id, current + 1
        pid = self._next_pid
        self._next_pid += 1
        self._epochs[pid] = 0
        return errors.NONE, pid, 0

    def check(
        self, producer_id: int, epoch: int, topic: str, partition: int, first_seq: int, count: int
    ) -> tuple[int, int]:
        """Validate a batch before it is appended: (error, duplicate_base_offset).

        (NONE, -1): append it. (NONE, offset >= 0): a duplicate, answer with that
        offset and do not append. Otherwise the error to answer with.
        """
        state = self._partitions.get((producer_id, topic, partition))
        if state is None:
            if first_seq != 0:
                return errors.OUT_OF_ORDER_SEQUENCE_NUMBER, -1
            return errors.NONE, -1
        if epoch < state.epoch:
            return errors.INVALID_PRODUCER_EPOCH, -1
        if epoch > state.epoch:
            if first_seq != 0:
                return errors.OUT_OF_ORDER_SEQUENCE_NUMBER, -1
            return errors.NONE, -1
        last_seq = last_sequence(first_seq, count)
        for written in state.batches:
            if written.first_seq == first_seq and written.last_seq == last_seq:
                return errors.NONE, written.base_offset
        expected = _next_seq(state.batches[-1].last_seq) if state.batches else 0
        if first_seq != expected:
            return errors.OUT_OF_ORDER_SEQUENCE_NUMBER, -1
        return errors.NONE, -1

    def record(
        self,
        producer_id: int,
        epoch: int,
        topic: str,
        partition: int,
        first_seq: int,
        count: int,
        base_offset: int,
    ) -> None:
        """Remember a batch that `check` accepted and that is now in the log."""
        key = (producer_id, topic, partition)
        state = self._partitions.get(key)
        if state is None or epoch != state.epoch:
            state = _PartitionProducer(epoch)
            self._partitions[key] = state
            if len(self._partitions) > self.max_states:
                del self._partitions[next(iter(self._partitions))]
        state.batches.append(_Written(first_seq, last_sequence(first_seq, count), base_offset))
        self._epochs.setdefault(producer_id, epoch)

    def forget_topic(self, topic: str) -> None:
        for key in [k for k in self._partitions if k[1] == topic]:
            del self._partitions[key]

    def active_on(self, topic: str, partition: int) -> list[tuple[int, int, int]]:
        """DescribeProducers: (producer_id, epoch, last sequence) of each producer
        whose state this partition still holds."""
        return [
            (pid, state.epoch, state.batches[-1].last_seq if state.batches else -1)
            for (pid, t, p), state in self._partitions.items()
            if t == topic and p == partition
        ]
