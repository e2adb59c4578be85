"""Record batches, read from their fixed headers without decompressing anything.

A ``records`` field holds one or more RecordBatch v2 (magic 2) entries, or
legacy MessageSet v0/v1 entries (magic 0/1). Both start with
``offset int64, length int32`` and keep the magic byte at offset 16, so one
loop walks either. For v2 the 61-byte batch header gives the record count,
compression, producer id/epoch/base sequence and flags; legacy entries are
counted one per message (a compressed legacy wrapper counts as one, since
its inner count is only known after decompressing).

A Fetch response may end with a partial batch (the broker cuts at max_bytes);
that tail is reported as ``truncated_bytes``, not as an error.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

COMPRESSION_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")

_ENTRY = struct.Struct(">qi")  # base offset, batch length
_V2 = struct.Struct(">qiibIhiqqqhii")  # the 61-byte RecordBatch v2 header
_V2_TAIL = struct.Struct(">h")  # attributes, at offset 21
_COUNT = struct.Struct(">i")  # records count, at offset 57
V2_HEADER_SIZE = 61
_LEGACY_MIN = 12 + 14  # entry header + crc, magic, attributes, key/value lengths (v0)

ATTR_COMPRESSION_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40


class BatchInfo(NamedTuple):
    """One batch (v2) or one legacy message (v0/v1)."""

    offset: int  # byte offset of the entry within the records field
    size: int  # bytes of the entry, header included
    magic: int
    base_offset: int
    record_count: int
    compression: int  # 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
    producer_id: int  # -1 for legacy
    producer_epoch: int
    base_sequence: int
    transactional: bool
    control: bool

    @property
    def compression_name(self) -> str:
        c = self.compression
        return COMPRESSION_NAMES[c] if c < len(COMPRESSION_NAMES) else f"unknown({c})"


class RecordsSummary(NamedTuple):
    """What metrics need from a records field, computed in one pass."""

    records: int
    batches: int
    size: int  # bytes of complete entries
    truncated_bytes: int  # trailing partial entry, if any
    compression: int  # bitmask: 1 << codec for every codec seen
    legacy: bool  # saw magic 0/1


def summarize(data: Any) -> RecordsSummary:
    """Record count, batch count and bytes of a records field; never raises.

    This is the hot-path variant: it reads only the length, magic, attributes
    and count of each batch. Bytes that are not a batch end the walk and are
    reported as truncated.
    """
    if data is None:
        return RecordsSummary(0, 0, 0, 0, 0, False)
    end = len(data)
    pos = 0
    records = batches = comp = 0
    legacy = False
    unpack_entry = _ENTRY.unpack_from
    while end - pos >= 17:
        length = unpack_entry(data, pos)[1]
        size = 12 + length
        if length < 0 or pos + size > end:
            break
        magic = data[pos + 16]
        if magic == 2:
            if size < V2_HEADER_SIZE:
                break
            records += _COUNT.unpack_from(data, pos + 57)[0]
            comp |= 1 << (data[pos + 22] & ATTR_COMPRESSION_MASK)
        elif magic < 2:
            if size < _LEGACY_MIN:
                break
            legacy = True
            records += 1
            comp |= 1 << (data[pos + 17] & ATTR_COMPRESSION_MASK)
        else:
            break
        batches += 1
        pos += size
    return RecordsSummary(records, batches, pos, end - pos, comp, legacy)


def batches(data: Any) -> list[BatchInfo]:
    """Every complete batch (or legacy message) in a records field, in order."""
    out: list[BatchInfo] = []
    if data is None:
        return out
    end = len(data)
    pos = 0
    while end - pos >= 17:
        base_offset, length = _ENTRY.unpack_from(data, pos)
        size = 12 + length
        if length < 0 or pos + size > end:
            break
        magic = data[pos + 16]
        if magic == 2:
            if size < V2_HEADER_SIZE:
                break
            (_, _, _, _, _, attrs, _, _, _, pid, epoch, seq, count) = _V2.unpack_from(data, pos)
            out.append(
                BatchInfo(
                    pos,
                    size,
                    2,
                    base_offset,
                    count,
                    attrs & ATTR_COMPRESSION_MASK,
                    pid,
                    epoch,
                    seq,
                    bool(attrs & ATTR_TRANSACTIONAL),
                    bool(attrs & ATTR_CONTROL),
                )
            )
        elif magic < 2:
            if size < _LEGACY_MIN:
                break
            attrs = data[pos + 17]
            out.append(
                BatchInfo(pos, size, magic, base_offset, 1, attrs & 0x07, -1, -1, -1, False, False)
            )
        else:
            break
        pos += size
    return out
