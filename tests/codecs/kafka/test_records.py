"""Record batch headers, checked against batches built by kafka-python's producer code."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.kafka import records

from .helpers import record_batch


def _set_attrs(batch: bytes, attrs: int) -> bytes:
    """Patch the v2 attributes field (the parser never checks the CRC)."""
    return batch[:21] + struct.pack(">h", attrs) + batch[23:]


def test_v2_batch_header() -> None:
    batch = record_batch(
        5, transactional=True, producer_id=4242, producer_epoch=3, base_sequence=17
    )
    batch = struct.pack(">q", 100) + batch[8:]  # as a broker assigns it
    (info,) = records.batches(batch)
    assert info.magic == 2
    assert info.record_count == 5
    assert info.size == len(batch)
    assert (info.producer_id, info.producer_epoch, info.base_sequence) == (4242, 3, 17)
    assert info.transactional and not info.control
    assert info.base_offset == 100
    assert info.compression_name == "none"
    s = records.summarize(batch)
    assert s == records.RecordsSummary(5, 1, len(batch), 0, 1 << 0, False)


def test_gzip_batch_is_counted_without_decompressing() -> None:
    batch = record_batch(7, compression=1, value_size=200)
    (info,) = records.batches(batch)
    assert info.record_count == 7
    assert info.compression_name == "gzip"
    assert records.summarize(batch).compression == 1 << 1


@pytest.mark.parametrize(("codec", "name"), [(2, "snappy"), (3, "lz4"), (4, "zstd")])
def test_compression_flags(codec: int, name: str) -> None:
    batch = _set_attrs(record_batch(3), codec)
    (info,) = records.batches(batch)
    assert info.compression_name == name
    assert records.summarize(batch).compression == 1 << codec


def test_control_flag() -> None:
    batch = _set_attrs(record_batch(1, producer_id=1, producer_epoch=0, base_sequence=0), 0x30)
    (info,) = records.batches(batch)
    assert info.control and info.transactional


def test_several_batches_in_one_field() -> None:
    data = record_batch(2) + record_batch(3, compression=1) + record_batch(4)
    infos = records.batches(data)
    assert [b.record_count for b in infos] == [2, 3, 4]
    assert [b.offset for b in infos] == [0, infos[0].size, infos[0].size + infos[1].size]
    s = records.summarize(data)
    assert (s.records, s.batches, s.size, s.truncated_bytes) == (9, 3, len(data), 0)
    assert s.compression == (1 << 0) | (1 << 1)


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_message_sets(magic: int) -> None:
    data = record_batch(4, magic=magic)
    infos = records.batches(data)
    assert len(infos) == 4
    assert all(b.magic == magic and b.record_count == 1 for b in infos)
    s = records.summarize(data)
    assert (s.records, s.batches, s.legacy, s.size) == (4, 4, True, len(data))


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_compressed_wrapper_counts_once(magic: int) -> None:
    data = record_batch(4, magic=magic, compression=1)
    (info,) = records.batches(data)
    assert info.compression_name == "gzip" and info.record_count == 1


def test_partial_trailing_batch_is_truncated_not_error() -> None:
    full = record_batch(3)
    data = full + record_batch(2)[:30]
    s = records.summarize(data)
    assert (s.records, s.batches, s.size, s.truncated_bytes) == (3, 1, len(full), 30)
    assert len(records.batches(data)) == 1


def test_empty_and_null() -> None:
    assert records.summarize(None).records == 0
    assert records.summarize(b"").batches == 0
    assert records.batches(None) == []


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    s = records.summarize(data)
    assert s.size + s.truncated_bytes == len(data)
    assert sum(b.size for b in records.batches(data)) == s.size


@given(st.lists(st.integers(1, 20), min_size=1, max_size=4), st.data())
def test_counts_match_what_was_built(counts: list[int], data: st.DataObject) -> None:
    parts = [record_batch(n, compression=data.draw(st.sampled_from([0, 1]))) for n in counts]
    s = records.summarize(memoryview(b"".join(parts)))
    assert s.records == sum(counts)
    assert s.batches == len(counts)
