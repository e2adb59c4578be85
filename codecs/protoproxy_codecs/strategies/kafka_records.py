"""Kafka record sets for hypothesis: RecordBatch v2 with every codec, and legacy messages.

Batches are built here byte by byte, not with kafka-python's producer, for
two reasons: kafka-python compresses through optional packages (python-snappy,
lz4, zstandard) that are not our dependencies, while cramjam is; and a
producer never writes control batches, which a fetching client must still
read. The drawn `BatchSpec` is kept next to the bytes, so a test can compare
what any reader sees with what was meant.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import cramjam
import crc32c
from hypothesis import strategies as st

from ..kafka import compression
from .varints import varint

CODECS = (
    compression.NONE,
    compression.GZIP,
    compression.SNAPPY,
    compression.LZ4,
    compression.ZSTD,
)
CONTROL_ABORT, CONTROL_COMMIT = 0, 1
_MAX_RECORDS = 4


@dataclass(frozen=True)
class RecordSpec:
    """One record as a producer meant it: offset and timestamp are deltas in the batch."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_delta: int = 0


@dataclass(frozen=True)
class BatchSpec:
    """One RecordBatch v2 (magic 2), or one legacy message set (magic 0/1).

    Legacy sets are compressed with gzip or snappy only (lz4 in magic 0 had a
    framing bug that clients special-case) and carry no headers.
    """

    magic: int
    records: tuple[RecordSpec, ...]
    compression: int = compression.NONE
    base_offset: int = 0
    base_timestamp: int = 0
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    transactional: bool = False
    #: None for a data batch, else CONTROL_ABORT or CONTROL_COMMIT (then one record)
    control: int | None = None
    partition_leader_epoch: int = -1
    extra: dict[str, int] = field(default_factory=dict)


def _vbytes(b: bytes | None) -> bytes:
    return varint(-1) if b is None else varint(len(b)) + b


def _record(i: int, r: RecordSpec) -> bytes:
    body = bytearray(b"\x00")  # attributes: unused
    body += varint(r.timestamp_delta) + varint(i) + _vbytes(r.key) + _vbytes(r.value)
    body += varint(len(r.headers))
    for name, value in r.headers:
        body += _vbytes(name.encode()) + _vbytes(value)
    return varint(len(body)) + bytes(body)


def _compress(codec: int, data: bytes) -> bytes:
    if codec == compression.NONE:
        return data
    if codec == compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == compression.SNAPPY:
        # xerial framing, as Kafka's Java client (and kafka-python) write it
        block = bytes(cramjam.snappy.compress_raw(data))
        head = compression.XERIAL_MAGIC + struct.pack(">ii", 1, 1)
        return head + struct.pack(">i", len(block)) + block
    if codec == compression.LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == compression.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec}")


def encode_batch(spec: BatchSpec) -> bytes:
    """The wire bytes of one batch (or legacy message set)."""
    if spec.magic < 2:
        return _legacy(spec)
    records = b"".join(_record(i, r) for i, r in enumerate(spec.records))
    attributes = spec.compression
    if spec.transactional:
        attributes |= 0x10
    if spec.control is not None:
        attributes |= 0x20
    last_delta = max(len(spec.records) - 1, 0)
    max_ts = spec.base_timestamp + max((r.timestamp_delta for r in spec.records), default=0)
    after_crc = struct.pack(
        ">hiqqqhii",
        attributes,
        last_delta,
        spec.base_timestamp,
        max_ts,
        spec.producer_id,
        spec.producer_epoch,
        spec.base_sequence,
        len(spec.records),
    ) + _compress(spec.compression, records)
    crc = crc32c.crc32c(after_crc)
    # batch length counts from partition leader epoch (after the length itself)
    rest = struct.pack(">ibI", spec.partition_leader_epoch, 2, crc) + after_crc
    return struct.pack(">qi", spec.base_offset, len(rest)) + rest


def _bytes32(b: bytes | None) -> bytes:
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


def _legacy_message(
    magic: int, offset: int, attributes: int, timestamp: int, key: bytes | None, value: bytes | None
) -> bytes:
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    body += _bytes32(key) + _bytes32(value)
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", offset, len(message)) + message


def _legacy(spec: BatchSpec) -> bytes:
    """A message set; compressed, it is one wrapper message whose value is the inner set.

    Inside a magic-1 wrapper, offsets are relative (0..n-1) and the wrapper
    carries the last record's absolute offset, as Kafka 0.10 writes them.
    """
    compressed = spec.compression != compression.NONE
    inner = b"".join(
        _legacy_message(
            spec.magic,
            i if compressed else spec.base_offset + i,
            0,
            spec.base_timestamp + r.timestamp_delta,
            r.key,
            r.value,
        )
        for i, r in enumerate(spec.records)
    )
    if not compressed:
        return inner
    last = spec.base_offset + len(spec.records) - 1
    top = spec.base_timestamp + max(r.timestamp_delta for r in spec.records)
    return _legacy_message(
        spec.magic, last, spec.compression, top, None, _compress(spec.compression, inner)
    )


def _control_record(kind: int, coordinator_epoch: int) -> RecordSpec:
    return RecordSpec(
        key=struct.pack(">hh", 0, kind),
        value=struct.pack(">hi", 0, coordinator_epoch),
    )


_keys = st.one_of(st.none(), st.binary(max_size=16))
_values = st.one_of(st.none(), st.binary(max_size=64), st.just(b"x" * 300))
_header_names = st.text(max_size=8)
_deltas = st.integers(0, 2**31 - 1)


@st.composite
def record_specs(draw: st.DrawFn, headers: bool = True) -> RecordSpec:
    hs = tuple(draw(st.lists(st.tuples(_header_names, _keys), max_size=3))) if headers else ()
    return RecordSpec(draw(_keys), draw(_values), hs, draw(st.sampled_from([0, 1, 1000])))


@st.composite
def batch_specs(draw: st.DrawFn, magic: int = 2) -> BatchSpec:
    """A batch: any codec, transactional or not, sometimes a control batch."""
    if magic < 2:
        records = tuple(draw(st.lists(record_specs(headers=False), min_size=1, max_size=3)))
        return BatchSpec(
            magic,
            records,
            compression=draw(
                st.sampled_from([compression.NONE, compression.GZIP, compression.SNAPPY])
            ),
            base_offset=draw(st.integers(0, 2**40)),
            base_timestamp=draw(st.sampled_from([-1, 0, 1_700_000_000_000])),
        )
    control = draw(st.sampled_from([None, None, None, CONTROL_ABORT, CONTROL_COMMIT]))
    transactional = control is not None or draw(st.booleans())
    if control is not None:
        records: tuple[RecordSpec, ...] = (
            _control_record(control, draw(st.integers(0, 2**31 - 1))),
        )
    else:
        records = tuple(draw(st.lists(record_specs(), min_size=1, max_size=_MAX_RECORDS)))
    idempotent = transactional or draw(st.booleans())
    return BatchSpec(
        magic=2,
        records=records,
        compression=draw(st.sampled_from(CODECS)) if control is None else compression.NONE,
        base_offset=draw(st.sampled_from([0, 1, 2**31, 2**62])),
        base_timestamp=draw(st.sampled_from([0, 1_700_000_000_000, 2**40])),
        producer_id=draw(st.integers(0, 2**62)) if idempotent else -1,
        producer_epoch=draw(st.integers(0, 2**15 - 1)) if idempotent else -1,
        base_sequence=draw(st.integers(0, 2**30)) if idempotent else -1,
        transactional=transactional,
        control=control,
        partition_leader_epoch=draw(st.sampled_from([-1, 0, 7])),
    )


def record_sets(magic: int = 2, max_batches: int = 3) -> st.SearchStrategy[bytes]:
    """The bytes of a `records` field: zero or more batches, back to back."""
    return st.lists(batch_specs(magic), max_size=max_batches).map(
        lambda specs: b"".join(encode_batch(s) for s in specs)
    )
