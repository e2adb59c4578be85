"""PartitionLog and batch re-stamping, without any network."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch

from testbed.kafka.batches import BatchError, read_header, split_batches
from testbed.kafka.errors import CORRUPT_MESSAGE
from testbed.kafka.log import EARLIEST, LATEST, MAX_TIMESTAMP, PartitionLog

from .helpers import make_batch


def _append(log: PartitionLog, values: list[bytes], epoch: int = 0, ts: int = 1000) -> int:
    raw = make_batch(values, timestamp=ts)
    ((header, view),) = list(split_batches(raw, 1 << 20))
    return log.append(header, view, epoch)


@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=30), st.data())
def test_offsets_are_assigned_contiguously_and_crc_stays_valid(sizes, data):
    log = PartitionLog()
    bases = []
    for n, size in enumerate(sizes):
        bases.append(_append(log, [b"x%d" % i for i in range(size)], epoch=n % 3))
    assert bases == [sum(sizes[:i]) for i in range(len(sizes))]
    assert log.high_watermark == sum(sizes)
    offset = data.draw(st.integers(min_value=0, max_value=sum(sizes) - 1))
    batches = log.read(offset, 1)  # tiny max_bytes: still one whole batch (KIP-74)
    assert len(batches) == 1
    batch = DefaultRecordBatch(bytes(batches[0]))
    assert batch.validate_crc()
    assert batch.base_offset <= offset <= batch.base_offset + len(list(batch)) - 1
    assert read_header(batches[0]).partition_leader_epoch in (0, 1, 2)


def test_read_past_end_is_empty_and_max_bytes_bounds_the_rest():
    log = PartitionLog()
    for _ in range(10):
        _append(log, [b"v" * 100])
    one = len(log.read(0, 1)[0])
    assert log.read(10, 1 << 20) == []
    assert len(log.read(0, one * 3)) == 3
    assert len(log.read(0, one * 3 - 1)) == 2


def test_records_roundtrip_keys_values_offsets():
    log = PartitionLog()
    _append(log, [b"a", b"b"])
    _append(log, [b"c"])
    recs = list(log.records())
    assert [(r.offset, r.value) for r in recs] == [(0, b"a"), (1, b"b"), (2, b"c")]


def test_list_offsets_by_time_and_special_values():
    log = PartitionLog()
    _append(log, [b"a", b"b"], ts=1000)  # timestamps 1000, 1001
    _append(log, [b"c"], ts=5000)
    assert log.offset_for_timestamp(LATEST) == (3, -1)
    assert log.offset_for_timestamp(EARLIEST) == (0, -1)
    assert log.offset_for_timestamp(1001) == (1, 1001)
    assert log.offset_for_timestamp(1002) == (2, 5000)
    assert log.offset_for_timestamp(9999) == (-1, -1)
    assert log.offset_for_timestamp(MAX_TIMESTAMP) == (2, 5000)


def test_leader_epoch_cache_answers_offset_for_leader_epoch():
    log = PartitionLog()
    log.new_leader_epoch(0)
    _append(log, [b"a", b"b"])
    log.new_leader_epoch(3)
    _append(log, [b"c"])
    assert log.end_offset_for_epoch(0) == (0, 2)
    assert log.end_offset_for_epoch(2) == (0, 2)
    assert log.end_offset_for_epoch(3) == (3, 3)


def test_truncated_and_legacy_batches_are_rejected():
    raw = make_batch([b"a"])
    try:
        list(split_batches(raw[:-1], 1 << 20))
    except BatchError as exc:
        assert exc.code == CORRUPT_MESSAGE
    else:
        raise AssertionError("truncated batch accepted")
    legacy = bytearray(raw)
    legacy[16] = 1
    try:
        list(split_batches(bytes(legacy), 1 << 20))
    except BatchError as exc:
        assert exc.code != CORRUPT_MESSAGE
    else:
        raise AssertionError("magic 1 accepted")


def test_retention_drops_oldest_batches_and_moves_log_start():
    log = PartitionLog(retention_bytes=1000)
    for _ in range(50):
        _append(log, [b"v" * 100])
    assert log.size_bytes <= 1000
    assert log.log_start_offset > 0
    assert log.read(0, 1 << 20) == []  # below log start: nothing (OFFSET_OUT_OF_RANGE upstream)
    assert log.next_offset == 50
    assert [r.offset for r in log.records()][-1] == 49


@given(st.data())
def test_a_flipped_bit_in_the_crc_region_is_corrupt_message(data):
    """Any bit from `attributes` (byte 21) to the end breaks the CRC-32C; the
    fields before it (base offset, length, leader epoch, magic) are the broker's
    to stamp or are checked on their own."""
    raw = bytearray(make_batch([b"key-and-value", b"second"]))
    at = data.draw(st.integers(min_value=17, max_value=len(raw) - 1), label="byte")
    raw[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7), label="bit")
    try:
        list(split_batches(bytes(raw), 1 << 20))
    except BatchError as exc:
        assert exc.code == CORRUPT_MESSAGE
    else:
        raise AssertionError(f"a batch with byte {at} flipped was accepted")
