"""Kafka record compression, undone through cramjam with a hard output limit.

A batch of a few kilobytes can declare gigabytes of records (a compression
bomb), so nothing here ever decompresses into memory it did not size itself:
gzip, lz4 (frame) and zstd write into one preallocated buffer of ``limit``
bytes, and cramjam stops when it is full; snappy (raw, or in Kafka's xerial
framing of raw blocks) declares each block's size up front, which is checked
before the block is touched. Past the limit the output is a valid prefix and
``complete`` is False, so a reader can still show the records that fit.

cramjam reports a full buffer as a ``DecompressionError`` with its writer's
message (Rust's ``WriteZero``); that exact text is how a full buffer is told
from corrupt data, and tests pin it for every codec.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import cramjam

from ..base import DecodeError

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
NAMES = ("none", "gzip", "snappy", "lz4", "zstd")

#: Kafka's Java client (and kafka-python) frame snappy like xerial's SnappyOutputStream
XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = 16  # magic, int32 version, int32 compatible version
_BLOCK_LEN = struct.Struct(">i")
#: what cramjam says when the output buffer is full
_FULL = "failed to write whole buffer"

_STREAMS = {GZIP: cramjam.gzip, LZ4: cramjam.lz4, ZSTD: cramjam.zstd}


class Decompressed(NamedTuple):
    data: memoryview
    #: False: the output reached `limit` and `data` is only its first bytes
    complete: bool


def name(codec: int) -> str:
    return NAMES[codec] if 0 <= codec < len(NAMES) else f"unknown({codec})"


def decompress(codec: int, data: Any, limit: int) -> Decompressed:
    """`data` decompressed, at most `limit` bytes of it; DecodeError if it is corrupt."""
    if codec == NONE:
        view = memoryview(data)
        return Decompressed(view[:limit], len(view) <= limit)
    if codec == SNAPPY:
        return _snappy(memoryview(data), limit)
    module = _STREAMS.get(codec)
    if module is None:
        raise DecodeError(f"unknown compression codec {codec}", "bad_compression")
    out = bytearray(limit)
    try:
        n = module.decompress_into(data, out)
    except cramjam.DecompressionError as exc:
        if str(exc) == _FULL:
            return Decompressed(memoryview(out), False)
        raise DecodeError(f"{name(codec)}: {exc}", "bad_compression") from None
    return Decompressed(memoryview(out)[:n], True)


def _snappy(data: memoryview, limit: int) -> Decompressed:
    if data[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
        return _snappy_blocks([data], limit)
    if len(data) < XERIAL_HEADER:
        raise DecodeError("snappy: truncated xerial header", "bad_compression")
    blocks: list[memoryview] = []
    pos, end = XERIAL_HEADER, len(data)
    while pos < end:
        if end - pos < 4:
            raise DecodeError("snappy: truncated xerial block length", "bad_compression")
        (n,) = _BLOCK_LEN.unpack_from(data, pos)
        pos += 4
        if n < 0 or pos + n > end:
            raise DecodeError(
                f"snappy: xerial block of {n} bytes runs past the end", "bad_compression"
            )
        blocks.append(data[pos : pos + n])
        pos += n
    return _snappy_blocks(blocks, limit)


def _snappy_blocks(blocks: list[memoryview], limit: int) -> Decompressed:
    """Raw snappy blocks, each sized from its own header before it is decompressed.

    A block cannot be decompressed in part, so the output stops at the last
    whole block that fits.
    """
    sizes = []
    total = 0
    try:
        for block in blocks:
            n = cramjam.snappy.decompress_raw_len(block)
            if total + n > limit:
                break
            sizes.append(n)
            total += n
        out = bytearray(total)
        view = memoryview(out)
        at = 0
        for block, n in zip(blocks, sizes, strict=False):
            got = cramjam.snappy.decompress_raw_into(block, view[at : at + n])
            if got != n:
                raise DecodeError(f"snappy: block says {n} bytes, holds {got}", "bad_compression")
            at += n
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"snappy: {exc}", "bad_compression") from None
    return Decompressed(view, len(sizes) == len(blocks))
