"""HPACK per direction: an in-order decoder with a provably safe block cache,
plus the two encoders injection needs.

Why a cache is safe here. Decoding a block is a pure function of the block's
bytes and the dynamic table it is decoded against (plus the decoder's limits).
A block that neither inserts nor resizes leaves the table as it found it. So we
number table states with a generation that moves whenever a real decode changed
the table, keep cached results only for blocks observed not to change it, and
drop the whole cache when the generation moves. A hit is then a block with the
same bytes against the same table: the same headers, and still no change. The
change check compares the table's length, its newest entry (by identity: an
insertion always creates a new tuple at the front) and its max size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import hpack
from hpack.table import HeaderTable

from ..base import DecodeError

Header = tuple[str, str]
Headers = tuple[Header, ...]

_CACHE_MAX = 512


class HeaderDecoder:
    """The passive twin of one receiver's HPACK decoder."""

    __slots__ = ("_cache", "_decoder", "_table", "hits", "misses")

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._table = self._decoder.header_table
        self._cache: dict[bytes, Headers] = {}
        self.hits = 0
        self.misses = 0

    def decode(self, block: bytes | memoryview) -> Headers:
        cached = self._cache.get(block)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        table = self._table
        entries = table.dynamic_entries
        before_len = len(entries)
        before_first = entries[0] if entries else None
        before_max = table.maxsize
        try:
            headers = tuple(self._decoder.decode(block))
        except hpack.OversizedHeaderListError as exc:
            raise DecodeError(str(exc), "header_list_too_large") from exc
        except hpack.HPACKError as exc:
            raise DecodeError(f"HPACK: {exc}", "compression_error") from exc
        if (
            len(entries) == before_len
            and (entries[0] if entries else None) is before_first
            and table.maxsize == before_max
        ):
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[bytes(block)] = headers
        elif self._cache:
            self._cache.clear()
        return headers

    def allow_table_size(self, size: int) -> None:
        """The receiver advertised SETTINGS_HEADER_TABLE_SIZE = size (in effect)."""
        self._decoder.max_allowed_table_size = size
        self._cache.clear()  # validity of size updates depends on the limit

    @property
    def max_allowed_table_size(self) -> int:
        return self._decoder.max_allowed_table_size

    def table_snapshot(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """(max size, entries newest first): what a mirror encoder starts from."""
        return self._table.maxsize, list(self._table.dynamic_entries)

    def mirror_encoder(self) -> MirrorEncoder:
        size, entries = self.table_snapshot()
        return MirrorEncoder(size, entries, self.max_allowed_table_size)


class MirrorEncoder:
    """An hpack Encoder whose dynamic table starts equal to the destination decoder's.

    Used once a direction switches to re-encoding (DESIGN: "HPACK is connection
    state"): every later block in that direction goes through this encoder, so
    the destination's table tracks this encoder and not the source's.
    """

    __slots__ = ("_encoder", "max_allowed")

    def __init__(self, size: int, entries: Sequence[tuple[bytes, bytes]], max_allowed: int) -> None:
        enc = hpack.Encoder()
        table = enc.header_table
        table.maxsize = size
        for name, value in reversed(entries):  # oldest first, so the newest ends at index 62
            table.add(name, value)
        table.resized = False
        self._encoder = enc
        self.max_allowed = max_allowed

    def encode(self, headers: Iterable[tuple[str | bytes, str | bytes]]) -> bytes:
        return self._encoder.encode(headers)

    def set_table_size(self, size: int) -> None:
        """The destination acked a new SETTINGS_HEADER_TABLE_SIZE: shrink if needed."""
        self.max_allowed = size
        if self._encoder.header_table_size > size:
            self._encoder.header_table_size = size  # emits a size update next block

    @property
    def table_entries(self) -> list[tuple[bytes, bytes]]:
        return list(self._encoder.header_table.dynamic_entries)


def _static_index() -> tuple[dict[tuple[bytes, bytes], int], dict[bytes, int]]:
    full: dict[tuple[bytes, bytes], int] = {}
    names: dict[bytes, int] = {}
    for i, (name, value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
        full.setdefault((name, value), i)
        names.setdefault(name, i)
    return full, names


_STATIC_FULL, _STATIC_NAMES = _static_index()


def _int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return _int(len(data), 7, 0) + data


def encode_context_free(headers: Iterable[tuple[str | bytes, str | bytes]]) -> bytes:
    """An HPACK block that neither reads nor writes any dynamic table.

    Only static-table references and literals "without indexing", so it decodes
    the same whatever the receiver's table holds and leaves that table as it
    was. That is what makes it safe to inject into a relayed direction without
    switching the direction to re-encoding.
    """
    out = bytearray()
    for name, value in headers:
        n = name.encode() if isinstance(name, str) else name
        v = value.encode() if isinstance(value, str) else value
        index = _STATIC_FULL.get((n, v))
        if index is not None:
            out += _int(index, 7, 0x80)
            continue
        name_index = _STATIC_NAMES.get(n, 0)
        out += _int(name_index, 4, 0x00)
        if not name_index:
            out += _string(n)
        out += _string(v)
    return bytes(out)
