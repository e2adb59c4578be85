"""HPACK per direction: an in-order decoder with provably safe caches, plus
the two encoders injection needs.

Why caching is safe here. Decoding a block is a pure function of its bytes and
the dynamic table it is decoded against (plus the decoder's limits), and its
only effect is on that table. Three layers use that, each checked against a
plain hpack.Decoder by a differential hypothesis test:

- Block cache: a block seen not to change the table (its change counter,
  `DynamicTable.version`, unmoved) is cached by its bytes; the cache is dropped
  whenever a decode changes the table or the allowed size changes. A hit is the
  same bytes against the same table, so the same headers and still no change.
- Replay cache: a block that inserts but never reads the dynamic table (static
  or literal names only, no size update) decodes the same against any table;
  a hit returns its headers and replays its insertions into the table.
- Literal cache: one literal field whose name is static or literal, by its
  exact bytes; an inserting one is replayed into the table.

Indexed fields are resolved here against the static table and the dynamic
table (our `DynamicTable`, installed as the hpack decoder's `header_table`); everything else goes through hpack one field at a time, and the
per-block checks hpack makes (size updates first, list size, table size limit)
are repeated per block.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import hpack
from hpack.table import HeaderTable

from ..base import DecodeError

Header = tuple[str, str]
Headers = tuple[Header, ...]

# Memory bounds per direction: at most _CACHE_MAX blocks of up to _CACHE_BLOCK
# bytes, and _STRS_MAX dynamic entries of up to _STRS_ENTRY bytes (RFC size).
# gRPC and typical HTTP heads fit easily; bigger blocks are simply not cached.
_CACHE_MAX = 256
_CACHE_BLOCK = 1024
_STRS_MAX = 512
_STRS_ENTRY = 1024
# Literal-field cache per direction: _LITERALS_MAX fields of up to _LITERAL_MAX bytes.
_LITERALS_MAX = 512
_LITERAL_MAX = 256
_STATIC_LEN = len(HeaderTable.STATIC_TABLE)
_STATIC_BYTES: tuple[tuple[bytes, bytes], ...] = tuple(HeaderTable.STATIC_TABLE)
#: Static entries as str with their size, 1-based like HPACK indices.
_STATIC_STR: tuple[tuple[Header, int], ...] = (
    (("", ""), 0),
    *(((n.decode(), v.decode()), len(n) + len(v) + 32) for n, v in HeaderTable.STATIC_TABLE),
)


def _text(raw: bytes) -> str:
    """A header name or value as str. Field values are octets (RFC 9113 8.2.1: obs-text
    is allowed), not UTF-8: a peer's byte 0xff must not end the connection, and
    `wire` gives the same bytes back when a block is re-encoded."""
    return raw.decode("utf-8", "surrogateescape")


def wire(text: str) -> bytes:
    """The octets a header str came from (`_text`'s inverse)."""
    return text.encode("utf-8", "surrogateescape")


def _read_int(block: bytes | memoryview, pos: int, value: int) -> tuple[int, int]:
    """Continue an HPACK integer whose prefix was all ones; returns (value, next pos)."""
    shift = 0
    while True:
        byte = block[pos]  # IndexError on truncation -> compression_error
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise DecodeError("HPACK: integer too long", "compression_error")


def _skip_string(block: bytes | memoryview, pos: int) -> int:
    length = block[pos] & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _read_int(block, pos, 0x7F)
    pos += length
    if pos > len(block):
        raise DecodeError("HPACK: truncated string", "compression_error")
    return pos


def _field_end(block: bytes | memoryview, pos: int, first: int) -> int:
    """End offset of the non-indexed field starting at `pos`."""
    if first & 0x40:
        mask = 0x3F  # literal with incremental indexing
    elif first & 0x20:
        mask = 0x1F  # dynamic table size update: an integer only
        pos += 1
        if first & mask == mask:
            _, pos = _read_int(block, pos, mask)
        return pos
    else:
        mask = 0x0F  # literal without indexing / never indexed
    index = first & mask
    pos += 1
    if index == mask:
        index, pos = _read_int(block, pos, mask)
    if index == 0:
        pos = _skip_string(block, pos)
    return _skip_string(block, pos)


def _static_name(block: bytes | memoryview, pos: int, first: int) -> bool:
    """Whether the literal field at `pos` names its header without the dynamic table.

    Why it matters: such a field decodes to the same (name, value) whatever the
    table holds, so its decoded form can be reused by its bytes alone (servers
    like nginx send `date`, `server`, `content-length` with incremental
    indexing in every response, and Huffman-decoding them again is most of a
    passive decode). Fields naming a dynamic entry depend on the table.
    """
    mask = 0x3F if first & 0x40 else 0x0F
    index = first & mask
    if index == mask:
        index, _ = _read_int(block, pos + 1, mask)
    return index <= _STATIC_LEN


_Insert = tuple[tuple[bytes, bytes], int]  # an entry and its RFC 7541 size


class _Replayed:
    """How to rebuild the table as it was before a replayed block, lazily.

    Why lazy: copying the table before every replay (once per nginx response)
    costs more than the replay, and the copy is needed only when a fault
    switches a direction to re-encoding. A replay only inserts, none of its
    entries larger than the table, so the old table is what is left of it
    after the block's own entries, then the evicted old entries.
    """

    __slots__ = ("evicted", "inserted")

    def __init__(self, inserted: int, evicted: list[tuple[bytes, bytes]]) -> None:
        self.inserted = inserted
        self.evicted = evicted

    def before(self, table: DynamicTable) -> tuple[int, list[tuple[bytes, bytes]]]:
        now = list(table.dynamic_entries)
        # The block's entries are the newest; if any old entry survived, all of
        # the block's did. Evictions pop the oldest first: old entries, then
        # (only if every old one went) the block's own earliest ones.
        present = min(self.inserted, len(now))
        own_evicted = self.inserted - present
        old_evicted = self.evicted[: len(self.evicted) - own_evicted]
        return table.max_size, now[present:] + old_evicted[::-1]


class DynamicTable:
    """The dynamic table a `hpack.Decoder` reads and writes, kept by us.

    Why our own: hpack's `HeaderTable.add` recomputes each entry's size and
    logs every eviction, and replayed blocks (every nginx response) insert
    several entries each. This class has the interface `hpack.Decoder` uses
    (`add`, `get_by_index`, `maxsize`) with the same semantics (RFC 7541 4.3,
    4.4), and is installed as the decoder's public `header_table`; the cache
    layers then insert with sizes they already know. The differential tests
    hold it equal to a plain `hpack.Decoder`'s table.
    """

    __slots__ = ("dynamic_entries", "max_size", "resized", "size", "version")

    def __init__(self, max_size: int = 4096) -> None:
        #: Entries newest first, as hpack's `HeaderTable.dynamic_entries`.
        self.dynamic_entries: deque[tuple[bytes, bytes]] = deque()
        self.max_size = max_size
        self.size = 0
        self.resized = False
        #: Bumped by every change (insert, eviction, resize): "did this block
        #: leave the table alone" is one compare, whatever objects it holds.
        self.version = 0

    @property
    def maxsize(self) -> int:
        return self.max_size

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        value = int(value)
        old = self.max_size
        self.max_size = value
        self.resized = value != old
        if value != old:
            self.version += 1
        if value <= 0:
            self.dynamic_entries.clear()
            self.size = 0
        elif old > value:
            self._evict()

    def get_by_index(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= _STATIC_LEN:
            return _STATIC_BYTES[index - 1]
        dyn = index - _STATIC_LEN - 1
        if 0 <= dyn < len(self.dynamic_entries):
            return self.dynamic_entries[dyn]
        raise hpack.InvalidTableIndex(f"Invalid table index {index}")

    def add(self, name: bytes, value: bytes) -> None:
        self.insert((name, value), len(name) + len(value) + 32)

    def insert(self, entry: tuple[bytes, bytes], size: int) -> None:
        """Add `entry` whose RFC 7541 size is `size` (already known to the caller)."""
        self.version += 1
        if size > self.max_size:
            self.dynamic_entries.clear()
            self.size = 0
            return
        self.dynamic_entries.appendleft(entry)
        self.size += size
        if self.size > self.max_size:
            self._evict()

    def insert_all(self, inserts: Sequence[_Insert]) -> list[tuple[bytes, bytes]]:
        """`insert` each entry (none larger than the table); returns the evicted
        entries, oldest first, so that `_Replayed` can rebuild the table before."""
        self.version += 1
        entries = self.dynamic_entries
        size = self.size
        limit = self.max_size
        evicted: list[tuple[bytes, bytes]] = []
        for entry, n in inserts:
            entries.appendleft(entry)
            size += n
            while size > limit:
                old = entries.pop()
                evicted.append(old)
                size -= len(old[0]) + len(old[1]) + 32
        self.size = size
        return evicted

    def _evict(self) -> None:
        entries = self.dynamic_entries
        size = self.size
        limit = self.max_size
        while size > limit:
            name, value = entries.pop()
            size -= len(name) + len(value) + 32
        self.size = size


class HeaderDecoder:
    """The passive twin of one receiver's HPACK decoder."""

    __slots__ = (
        "_cache",
        "_decoder",
        "_fixed_replay",
        "_fixed_version",
        "_inserts",
        "_literals",
        "_replays",
        "_strs",
        "_table",
        "_undo",
        "hits",
        "last_size",
        "literal_hits",
        "misses",
        "replay_hits",
    )

    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._table = DynamicTable(self._decoder.header_table_size)
        self._decoder.header_table = self._table  # type: ignore[assignment]
        #: Blocks that read no table change, by their bytes: headers and list size.
        self._cache: dict[bytes, tuple[Headers, int]] = {}
        #: The header list size (RFC 7541: names, values, 32 per field) of the
        #: last decoded block, which the flood rules meter (flood.py).
        self.last_size = 0
        #: Dynamic entries as str, with their RFC 7541 size, keyed by hpack's bytes tuple.
        self._strs: dict[tuple[bytes, bytes], tuple[Header, int]] = {}
        #: The table as it was before the last block, if that block changed it
        #: (for a replayed block: what it takes to rebuild that, see `_Replayed`).
        self._undo: tuple[int, list[tuple[bytes, bytes]]] | _Replayed | None = None
        #: Literal fields whose name is static or literal, by their exact bytes:
        #: (name, value) as the table stores them, the str pair, the RFC size.
        self._literals: dict[bytes, tuple[tuple[bytes, bytes], Header, int]] = {}
        #: Blocks that insert but name nothing in the dynamic table: their
        #: headers, the entries they insert with their sizes, and the largest
        #: size; the same whatever the table holds.
        self._replays: dict[bytes, tuple[Headers, tuple[_Insert, ...], int, int]] = {}
        #: Entries the last decoded block inserted, or None if it read the dynamic table.
        self._inserts: list[_Insert] | None = None
        #: A replay whose block leaves the table as it found it, and the table
        #: version at which it did: until the table changes, it is a no-op.
        self._fixed_replay: tuple[Headers, tuple[_Insert, ...], int, int] | None = None
        self._fixed_version = -1
        self.hits = 0
        self.misses = 0
        self.literal_hits = 0
        self.replay_hits = 0

    def decode(self, block: bytes | memoryview) -> Headers:
        cached = self._cache.get(block)
        if cached is not None:
            self.hits += 1
            self._undo = None
            self.last_size = cached[1]
            return cached[0]
        table = self._table
        entries = table.dynamic_entries
        replay = self._replays.get(block)
        if replay is not None:
            # e.g. nginx's `server`/`date`/`content-type` literals, every response
            self.replay_hits += 1
            headers, inserts, biggest, self.last_size = replay
            if replay is self._fixed_replay and table.version == self._fixed_version:
                # The table is a fixed point of this block (see below): applying
                # it again would evict exactly the copies it inserts.
                self._undo = None
            elif biggest > table.max_size:  # an insert clears the table: keep it all
                self._undo = (table.max_size, list(entries))
                for entry, size in inserts:
                    table.insert(entry, size)
                self._cache.clear()
            else:
                evicted = table.insert_all(inserts)
                k = len(inserts)
                if len(evicted) == k and k < len(entries):
                    # Every inserted entry survived and as many old ones went: if
                    # the table is what it was (a server repeating one block fills
                    # it with copies of that block), the next same block is free.
                    now = list(entries)
                    if now == now[k:] + evicted[::-1]:
                        self._fixed_replay = replay
                        self._fixed_version = table.version
                        self._undo = None
                    else:
                        self._undo = _Replayed(k, evicted)
                        self._cache.clear()
                else:
                    self._undo = _Replayed(k, evicted)
                    self._cache.clear()
            if table.max_size > self._decoder.max_allowed_table_size:
                # hpack's end-of-block check: after a smaller SETTINGS was acked
                # the next block must start with a size update; a replay has none.
                raise DecodeError("HPACK: table larger than the peer allows", "compression_error")
            return headers
        self.misses += 1
        before = table.version
        headers = self._decode_fields(block)
        if table.version == before:
            if len(block) <= _CACHE_BLOCK:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[bytes(block)] = (headers, self.last_size)
        else:
            if self._cache:
                self._cache.clear()
            inserts = self._inserts
            if inserts is not None and len(block) <= _CACHE_BLOCK:
                if len(self._replays) >= _CACHE_MAX:
                    self._replays.clear()
                self._replays[bytes(block)] = (
                    headers,
                    tuple(inserts),
                    max((size for _, size in inserts), default=0),
                    self.last_size,
                )
        return headers

    def _decode_fields(self, block: bytes | memoryview) -> Headers:
        """Decode field by field: indexed fields are resolved here, everything
        else (literals, size updates) by hpack on that field's bytes alone.

        Why: hpack's per-call cost dominates a gRPC block, which is mostly
        indexed references. Every table read and write still happens in
        hpack's table, so this is the same decoder state, just fewer calls.
        The checks hpack makes per block are repeated here per block: size
        updates only at the start, the header list size, the table size limit.
        """
        decoder = self._decoder
        entries = self._table.dynamic_entries
        strs = self._strs
        literals = self._literals
        limit = decoder.max_header_list_size
        out: list[Header] = []
        inserts: list[tuple[bytes, bytes]] | None = []
        undo = None
        size = 0
        n = len(block)
        pos = 0
        try:
            while pos < n:
                first = block[pos]
                if first & 0x80:  # indexed field
                    index = first & 0x7F
                    pos += 1
                    if index == 0x7F:
                        index, pos = _read_int(block, pos, 0x7F)
                    if 0 < index <= _STATIC_LEN:
                        header, hsize = _STATIC_STR[index]
                    elif index > _STATIC_LEN and index - _STATIC_LEN <= len(entries):
                        inserts = None  # reads the dynamic table
                        entry = entries[index - _STATIC_LEN - 1]
                        hit = strs.get(entry)
                        if hit is None:
                            hit = (
                                (_text(entry[0]), _text(entry[1])),
                                len(entry[0]) + len(entry[1]) + 32,
                            )
                            if hit[1] <= _STRS_ENTRY:
                                if len(strs) >= _STRS_MAX:
                                    strs.clear()
                                strs[entry] = hit
                        header, hsize = hit
                    else:
                        raise DecodeError(
                            f"HPACK: invalid table index {index}", "compression_error"
                        )
                else:
                    end = _field_end(block, pos, first)
                    if (first & 0xE0) == 0x20 and out:
                        raise DecodeError(
                            "HPACK: table size update after a header", "compression_error"
                        )
                    if undo is None and first & 0x60:  # inserts or resizes: keep the old table
                        undo = (self._table.max_size, list(entries))
                    if (first & 0xE0) == 0x20:  # a table size update: hpack checks it
                        inserts = None
                        decoder.decode(block[pos:end], raw=True)
                        pos = end
                        continue
                    key = bytes(block[pos:end])
                    lit = literals.get(key)
                    if lit is not None:
                        # Same bytes, name not from the dynamic table: same field.
                        self.literal_hits += 1
                        pair, header, hsize = lit
                        if first & 0x40:
                            self._table.insert(pair, hsize)
                            if inserts is not None:
                                inserts.append((pair, hsize))
                        pos = end
                    else:
                        fields = decoder.decode(block[pos:end], raw=True)
                        name, value = fields[0]
                        header = (_text(name), _text(value))
                        hsize = len(name) + len(value) + 32
                        if _static_name(block, pos, first):
                            if first & 0x40 and inserts is not None:
                                inserts.append(((name, value), hsize))
                            if len(key) <= _LITERAL_MAX:
                                if len(literals) >= _LITERALS_MAX:
                                    literals.clear()
                                literals[key] = ((name, value), header, hsize)
                        else:
                            inserts = None
                        pos = end
                size += hsize
                if size > limit:
                    raise DecodeError(
                        f"header list larger than {limit} bytes", "header_list_too_large"
                    )
                out.append(header)
        except hpack.OversizedHeaderListError as exc:
            raise DecodeError(str(exc), "header_list_too_large") from exc
        except hpack.HPACKError as exc:
            raise DecodeError(f"HPACK: {exc}", "compression_error") from exc
        except (UnicodeDecodeError, IndexError) as exc:
            raise DecodeError(f"HPACK: {exc}", "compression_error") from exc
        if decoder.header_table_size > decoder.max_allowed_table_size:
            raise DecodeError("HPACK: table larger than the peer allows", "compression_error")
        self._undo = undo
        self._inserts = inserts
        self.last_size = size
        return tuple(out)

    def allow_table_size(self, size: int) -> None:
        """The receiver advertised SETTINGS_HEADER_TABLE_SIZE = size (in effect)."""
        self._decoder.max_allowed_table_size = size
        self._cache.clear()  # validity of size updates depends on the limit

    @property
    def max_allowed_table_size(self) -> int:
        return self._decoder.max_allowed_table_size

    def table_snapshot(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """(max size, entries newest first): what a mirror encoder starts from."""
        return self._table.max_size, list(self._table.dynamic_entries)

    def mirror_encoder(self, before_last_block: bool = False) -> MirrorEncoder:
        """An encoder mirroring the receiver's table: as of now, or as of just
        before the last block (when that block is the first to be re-encoded,
        the receiver never sees its original and so never applied it)."""
        undo = self._undo
        if before_last_block and undo is not None:
            size, entries = undo.before(self._table) if isinstance(undo, _Replayed) else undo
        else:
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
        return self._encoder.encode(
            [
                (wire(n) if isinstance(n, str) else n, wire(v) if isinstance(v, str) else v)
                for n, v in headers
            ]
        )

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
        n = wire(name) if isinstance(name, str) else name
        v = wire(value) if isinstance(value, str) else value
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
