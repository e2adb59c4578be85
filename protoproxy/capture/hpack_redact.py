"""Credentials out of HTTP/2 header blocks, keeping every frame and the HPACK state valid.

Redacting means overwriting a header value's bytes in place, so frame
lengths stay what they were. "Same length" in HPACK has two parts, and both
are kept: the encoded string keeps its byte length (the frame is intact),
and its *decoded* length stays the same too, because a value added to the
dynamic table counts `len(name) + len(value) + 32` octets of it (RFC 7541
4.1): a filler decoding to another length would make Wireshark evict other
entries than the peer did, and later indexed headers would decode wrongly.

- A raw (non-Huffman) value of N bytes becomes N ``*``.
- A Huffman value of L bytes that decodes to N characters becomes N
  characters chosen so that their Huffman codes fill L bytes exactly (5 to
  15-bit codes, with at most 7 bits of EOS padding); `huffman_filler`.

Indexed fields carry no value bytes (nothing to overwrite), so the walk
keeps the names in the dynamic table, to know a literal's name when it
refers to a dynamic entry. A block that does not parse is filled whole and
that direction stays filled from then on: redaction fails closed.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

SECRET_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
FILL = 0x2A  # "*"

_STATIC = HeaderTable.STATIC_TABLE
_ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
#: one printable character per Huffman code length: the filler's alphabet
_BY_LENGTH: dict[int, int] = {}
for _sym in range(33, 127):
    _BY_LENGTH.setdefault(REQUEST_CODES_LENGTH[_sym], _sym)
_BY_LENGTH[8] = FILL  # "*" itself where a length allows
_LENGTHS = sorted(_BY_LENGTH)
_SHORTEST, _LONGEST = _LENGTHS[0], _LENGTHS[-1]


class HpackError(ValueError):
    """A header block that does not parse: the caller fills it whole."""


@lru_cache(maxsize=256)
def huffman_filler(encoded_len: int, decoded_len: int) -> bytes | None:
    """Huffman bytes of `encoded_len` decoding to `decoded_len` characters; None if none exists."""
    if decoded_len == 0:
        return b"" if encoded_len == 0 else None
    low, high = 8 * encoded_len - 7, 8 * encoded_len  # bits the codes may take
    if decoded_len * _SHORTEST > high or decoded_len * _LONGEST < low:
        return None
    lengths = [_SHORTEST] * decoded_len
    extra = max(0, low - _SHORTEST * decoded_len)
    for i in range(decoded_len):
        if not extra:
            break
        for want in range(min(_LONGEST, _SHORTEST + extra), _SHORTEST - 1, -1):
            if want in _BY_LENGTH:
                extra -= want - _SHORTEST
                lengths[i] = want
                break
    if extra:
        return None
    out = _ENCODER.encode(bytes(_BY_LENGTH[n] for n in lengths))
    return out if len(out) == encoded_len else None


def _integer(block: bytes | bytearray, pos: int, prefix: int) -> tuple[int, int]:
    mask = (1 << prefix) - 1
    if pos >= len(block):
        raise HpackError("integer past the end of the block")
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(block) or shift > 28:
            raise HpackError("bad integer")
        b = block[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


class HpackNames:
    """One direction's HPACK decoder state, names only (plus entry sizes)."""

    def __init__(self) -> None:
        self.table: deque[tuple[bytes, int]] = deque()
        self.size = 0
        self.max_size = 4096
        #: blocks that neither read nor change the dynamic table, as redacted:
        #: repeated requests and responses are walked once
        self.memo: dict[bytes, bytes] = {}
        #: blocks that left the table as they found it (nginx's response block
        #: once the table holds only copies of it): redacted bytes, secrets
        #: overwritten, and the table `version` they hold for
        self.fixed: dict[bytes, tuple[bytes, int, int]] = {}
        #: bumped whenever a block leaves the table different from before
        self.version = 0

    def _name(self, index: int) -> bytes:
        if 0 < index <= len(_STATIC):
            return _STATIC[index - 1][0]
        at = index - len(_STATIC) - 1
        if 0 <= at < len(self.table):
            return self.table[at][0]
        raise HpackError(f"header index {index} out of range")

    def _add(self, name: bytes, size: int) -> None:
        self._evict(self.max_size - size)
        if size <= self.max_size:
            self.table.appendleft((name, size))
            self.size += size

    def _evict(self, room: int) -> None:
        while self.table and self.size > max(room, 0):
            self.size -= self.table.pop()[1]

    def _string(self, block: bytes | bytearray, pos: int) -> tuple[int, int, bool]:
        if pos >= len(block):
            raise HpackError("string past the end of the block")
        huffman = bool(block[pos] & 0x80)
        length, pos = _integer(block, pos, 7)
        if pos + length > len(block):
            raise HpackError("string longer than the block")
        return pos, pos + length, huffman

    def redacted(self, fragment: bytes) -> bytes:
        """`fragment` with its secret values overwritten: the same object when
        there were none (the caller's cue to pass the frame through as it is)."""
        known = self.memo.get(fragment)
        if known is not None:
            return known
        fixed = self.fixed.get(fragment)
        if fixed is not None and fixed[1] == self.version:
            return fixed[0]
        if not fragment or min(fragment) >= 0x80:
            return fragment  # only indexed fields under 127 (repeated requests)
        block = bytearray(fragment)
        self._walk(block, fragment)
        return fragment if block == fragment else bytes(block)

    def redact(self, block: bytearray) -> int:
        """Overwrite secret values in `block` in place; returns how many were."""
        if block and min(block) >= 0x80:
            return 0  # only indexed fields under 127 (repeated requests): no value, no change
        key = bytes(block)
        known = self.memo.get(key)
        if known is not None:
            block[:] = known
            return int(known != key)
        fixed = self.fixed.get(key)
        if fixed is not None and fixed[1] == self.version:
            block[:] = fixed[0]
            return fixed[2]
        return self._walk(block, key)

    def _walk(self, block: bytearray, key: bytes) -> int:
        """Field by field, keeping the table; remembers the result where it may."""
        before = (self.max_size, tuple(self.table))
        pos = 0
        done = 0
        pure = True  # the result does not depend on the dynamic table, nor change it
        while pos < len(block):
            b = block[pos]
            if b & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                self._name(index)
                continue
            if b & 0xE0 == 0x20:  # dynamic table size update
                pure = False
                self.max_size, pos = _integer(block, pos, 5)
                self._evict(self.max_size)
                continue
            indexing = b & 0xC0 == 0x40
            index, pos = _integer(block, pos, 6 if indexing else 4)
            pure = pure and not indexing and index <= len(_STATIC)
            if index:
                name = self._name(index)
            else:
                start, pos, huff = self._string(block, pos)
                raw = bytes(block[start:pos])
                name = _decode(raw) if huff else raw
            start, pos, huff = self._string(block, pos)
            secret = name.lower() in SECRET_HEADERS and pos > start
            # the decoded length matters for the table's size and a Huffman filler only
            value_len = (
                len(_decode(bytes(block[start:pos])))
                if huff and (indexing or secret)
                else pos - start
            )
            if secret:
                if huff:
                    filler = huffman_filler(pos - start, value_len)
                    block[start:pos] = filler if filler is not None else b"\xf9" * (pos - start)
                else:
                    block[start:pos] = b"*" * (pos - start)
                done += 1
            if indexing:
                self._add(name, len(name) + value_len + 32)
        result = key if not done else bytes(block)  # unchanged: the key itself, for `is`
        if pure:
            if len(self.memo) >= 1024:
                self.memo.clear()
            self.memo[key] = result
        elif (self.max_size, tuple(self.table)) == before:
            # Same table after as before: the same block again gives the same
            # bytes and the same table, for as long as the table stays as it is.
            if len(self.fixed) >= 1024:
                self.fixed.clear()
            self.fixed[key] = (result, self.version, done)
        else:
            self.version += 1
        return done


@lru_cache(maxsize=4096)
def _decode(raw: bytes) -> bytes:
    """Huffman-decoded; cached, since headers repeat (a Date value for a second, a path...)."""
    try:
        return decode_huffman(raw)
    except Exception as exc:  # hpack raises its own HPACKDecodingError and IndexError
        raise HpackError(f"bad Huffman string: {exc}") from None
