"""LSO and aborted-range bookkeeping (PartitionLog + TxnIndex), without any network.

The reader below is the read_committed consumer algorithm of Kafka's clients
(Fetcher's abortedProducerIds): fetch up to the LSO, start skipping a producer's
batches at each aborted range's first offset, stop at its abort marker. If
the broker's LSO or aborted list were wrong, it would return an aborted or open
record, or miss a committed one; random histories look for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from testbed.kafka.batches import ABORT_MARKER, control_batch, read_header, split_batches
from testbed.kafka.log import PartitionLog

PARTITIONS = 3
PRODUCERS = (7, 8, 9)


def _data_batch(value: bytes, producer_id: int, transactional: bool, seq: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, transactional, producer_id, 0, seq, 1 << 20)
    builder.append(0, 1_700_000_000_000, None, value, [])
    return bytes(builder.build())


def _append(log: PartitionLog, raw: bytes) -> int:
    ((header, view),) = list(split_batches(raw, 1 << 20))
    return log.append(header, view, 0)


def read_committed(log: PartitionLog) -> list[bytes]:
    """Every record a read_committed consumer gets, fetching one batch at a time."""
    out: list[bytes] = []
    offset = log.log_start_offset
    lso = log.last_stable_offset
    aborted = sorted(log.txns.aborted_between(offset, lso), key=lambda a: a.first_offset)
    skipping: set[int] = set()
    while True:
        chunks = log.read(offset, 1, upto=lso)
        if not chunks:
            return out
        batch = DefaultRecordBatch(bytes(chunks[0]))
        header = read_header(chunks[0])
        while aborted and aborted[0].first_offset <= header.base_offset:
            skipping.add(aborted.pop(0).producer_id)
        if batch.is_control_batch:
            (record,) = list(batch)
            if int.from_bytes(record.key[2:4], "big") == ABORT_MARKER:
                skipping.discard(header.producer_id)
        elif not (batch.is_transactional and header.producer_id in skipping):
            out.extend(r.value for r in batch)
        offset = header.base_offset + header.last_offset_delta + 1


@dataclass
class Model:
    """What a history should leave visible, per partition."""

    logs: list[PartitionLog] = field(default_factory=lambda: [PartitionLog() for _ in range(3)])
    #: producer -> partitions it wrote to in its open transaction
    open: dict[int, set[int]] = field(default_factory=dict)
    #: producer -> (offset, value) of its open transaction, per partition
    pending: dict[int, dict[int, list[tuple[int, bytes]]]] = field(default_factory=dict)
    #: (offset, value) of every committed or non-transactional record, per partition
    committed: list[list[tuple[int, bytes]]] = field(default_factory=lambda: [[] for _ in range(3)])
    #: values that must never be read: aborted ones
    aborted: set[bytes] = field(default_factory=set)
    seq: dict[tuple[int, int], int] = field(default_factory=dict)
    n: int = 0

    def produce(self, producer: int | None, partition: int) -> None:
        self.n += 1
        value = b"v%d" % self.n
        log = self.logs[partition]
        if producer is None:
            self.committed[partition].append(
                (_append(log, _data_batch(value, -1, False, -1)), value)
            )
            return
        key = (producer, partition)
        seq = self.seq.get(key, 0)
        self.seq[key] = seq + 1
        offset = _append(log, _data_batch(value, producer, True, seq))
        self.open.setdefault(producer, set()).add(partition)
        self.pending.setdefault(producer, {}).setdefault(partition, []).append((offset, value))

    def end(self, producer: int, commit: bool) -> None:
        for partition in sorted(self.open.pop(producer, set())):
            self.logs[partition].append_marker(
                control_batch(producer, 0, commit, 1_700_000_000_000), 0, commit
            )
        for partition, records in self.pending.pop(producer, {}).items():
            if commit:
                self.committed[partition] = sorted(self.committed[partition] + records)
            else:
                self.aborted.update(v for _, v in records)

    def visible(self, partition: int, below: int) -> list[bytes]:
        """Committed values below offset `below`, in log order."""
        return [v for o, v in self.committed[partition] if o < below]


# (kind, producer, partition): produce non-transactionally, produce in a transaction, end one
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("plain"), st.none(), st.integers(0, PARTITIONS - 1)),
        st.tuples(st.just("txn"), st.sampled_from(PRODUCERS), st.integers(0, PARTITIONS - 1)),
        st.tuples(st.sampled_from(["commit", "abort"]), st.sampled_from(PRODUCERS), st.none()),
    ),
    max_size=60,
)


@given(_ops, st.booleans())
def test_read_committed_sees_exactly_the_committed_records_in_order(
    ops: list[tuple[str, int | None, int | None]], finish_commit: bool
) -> None:
    model = Model()
    for kind, producer, partition in ops:
        if kind in ("plain", "txn"):
            assert partition is not None
            model.produce(producer, partition)
        else:
            assert producer is not None
            model.end(producer, kind == "commit")
        for p, log in enumerate(model.logs):
            got = read_committed(log)
            open_values = {v for recs in model.pending.values() for _, v in recs.get(p, [])}
            assert not set(got) & (model.aborted | open_values)
            first_open = min(
                (o for recs in model.pending.values() for o, _ in recs.get(p, [])),
                default=log.high_watermark,
            )
            assert log.last_stable_offset == first_open
            # Everything committed below the LSO, in log order: nothing missing.
            assert got == model.visible(p, first_open)
    for producer in list(model.open):
        model.end(producer, finish_commit)
    for p, log in enumerate(model.logs):
        assert log.last_stable_offset == log.high_watermark
        assert read_committed(log) == [v for _, v in model.committed[p]]


def test_aborted_between_finds_ranges_overlapping_the_fetch() -> None:
    log = PartitionLog()
    _append(log, _data_batch(b"a", 7, True, 0))  # 0
    _append(log, _data_batch(b"b", 8, True, 0))  # 1
    log.append_marker(control_batch(7, 0, False, 0), 0, False)  # 2: aborts 0..2
    _append(log, _data_batch(b"c", 8, True, 1))  # 3
    log.append_marker(control_batch(8, 0, False, 0), 0, False)  # 4: aborts 1..4
    assert [(a.producer_id, a.first_offset) for a in log.txns.aborted_between(0, 5)] == [
        (7, 0),
        (8, 1),
    ]
    assert [a.producer_id for a in log.txns.aborted_between(3, 5)] == [8]
    assert log.txns.aborted_between(5, 5) == []
    assert read_committed(log) == []
