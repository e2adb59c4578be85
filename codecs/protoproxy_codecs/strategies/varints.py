"""Base-128 varints, as Kafka's records and protobuf both write them."""

from __future__ import annotations


def uvarint(n: int) -> bytes:
    """An unsigned varint (protobuf's, Kafka's compact lengths): 7 bits a byte, low first."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint(n: int) -> bytes:
    """A signed zig-zag varint/varlong (Kafka's record fields, protobuf's sint64)."""
    return uvarint(((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)
