"""RecordBatch v2 headers: read them and re-stamp them, without decompressing.

The broker never needs the records themselves on the produce/fetch path: it
needs the header (count, producer id/epoch/sequence) and must write the base
offset and partition leader epoch it assigns. Both of those fields sit before
the CRC'd region (CRC32C covers `attributes` onward), so re-stamping them keeps
the client's CRC valid and costs one copy of the batch. The CRC is checked
once, when a batch is produced.

Layout (byte offsets): base_offset q@0, batch_length i@8, partition_leader_epoch
i@12, magic b@16, crc I@17, attributes h@21, last_offset_delta i@23,
first_timestamp q@27, max_timestamp q@35, producer_id q@43, producer_epoch h@51,
base_sequence i@53, record_count i@57, records@61.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from kafka.record.util import calc_crc32c

from .errors import CORRUPT_MESSAGE, UNSUPPORTED_FOR_MESSAGE_FORMAT

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # base_offset + batch_length
CRC_START = 21  # the CRC-32C covers the batch from `attributes` to its end
_HEADER = struct.Struct(">qiibIhiqqqhii")
_PACK_OFFSET = struct.Struct(">q").pack_into
_PACK_EPOCH = struct.Struct(">i").pack_into
_UNPACK_LEN = struct.Struct(">i").unpack_from

NO_PRODUCER_ID = -1
#: attributes bit 4: the batch belongs to a transaction
TRANSACTIONAL = 0x10
#: attributes bit 5: a control batch (a transaction marker), never a user record
CONTROL = 0x20
#: control record types (the key's second int16), as Kafka's ControlRecordType
ABORT_MARKER = 0
COMMIT_MARKER = 1


class BatchError(ValueError):
    """A batch that cannot be stored; `code` is the Kafka error to answer with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, including offset and length fields."""
        return self.batch_length + LOG_OVERHEAD


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def split_batches(
    records: bytes | memoryview, max_batch_size: int
) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Each v2 batch in a produce request's records blob, as (header, view).

    Raises BatchError(CORRUPT_MESSAGE) on truncation or a length past the limit,
    and BatchError(UNSUPPORTED_FOR_MESSAGE_FORMAT) on magic 0/1 message sets,
    which this broker does not store (Produce v3+ always carries v2 batches).
    A batch whose CRC-32C (Castagnoli, from `attributes` to the end) does not
    match its `crc` field is CORRUPT_MESSAGE, as a broker answers; the CRC is
    kafka-python's, in C when the `crc32c` package is installed.
    """
    view = memoryview(records)
    end = len(view)
    pos = 0
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise BatchError("truncated record batch header", CORRUPT_MESSAGE)
        (length,) = _UNPACK_LEN(view, pos + 8)
        size = length + LOG_OVERHEAD
        if length < HEADER_SIZE - LOG_OVERHEAD or size > max_batch_size or pos + size > end:
            raise BatchError(f"bad record batch length {length}", CORRUPT_MESSAGE)
        header = read_header(view, pos)
        if header.magic != 2:
            raise BatchError(f"magic {header.magic} unsupported", UNSUPPORTED_FOR_MESSAGE_FORMAT)
        crc = calc_crc32c(view[pos + CRC_START : pos + size])
        if crc != header.crc:
            raise BatchError(
                f"record batch CRC {crc:#010x} does not match its crc field {header.crc:#010x}",
                CORRUPT_MESSAGE,
            )
        if header.record_count < 0 or header.last_offset_delta < 0:
            raise BatchError("negative record count", CORRUPT_MESSAGE)
        yield header, view[pos : pos + size]
        pos += size


def restamp(batch: memoryview, base_offset: int, leader_epoch: int) -> bytearray:
    """A copy of `batch` carrying the broker-assigned base offset and leader epoch."""
    out = bytearray(batch)
    _PACK_OFFSET(out, 0, base_offset)
    _PACK_EPOCH(out, 12, leader_epoch)
    return out


def _varint(value: int) -> bytes:
    """A zig-zag varint, as record fields are written."""
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def control_batch(
    producer_id: int, producer_epoch: int, commit: bool, timestamp: int, coordinator_epoch: int = 0
) -> bytes:
    """A transaction marker as the coordinator writes it (base offset 0, to be restamped).

    One control record: key = version 0 (int16) + type (int16, 0 abort / 1 commit),
    value = Kafka's EndTransactionMarker: version 0 (int16) + coordinator epoch (int32).
    The batch is transactional and control (attributes 0x30), with no base sequence.
    """
    key = struct.pack(">hh", 0, COMMIT_MARKER if commit else ABORT_MARKER)
    value = struct.pack(">hi", 0, coordinator_epoch)
    body = (
        b"\x00"  # record attributes
        + _varint(0)  # timestamp delta
        + _varint(0)  # offset delta
        + _varint(len(key))
        + key
        + _varint(len(value))
        + value
        + _varint(0)  # no headers
    )
    record = _varint(len(body)) + body
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            TRANSACTIONAL | CONTROL,
            0,  # last offset delta
            timestamp,
            timestamp,
            producer_id,
            producer_epoch,
            -1,  # base sequence: markers carry none
            1,
        )
        + record
    )
    crc = calc_crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc
