"""Label values from the wire, made safe to keep and export: escaped and cut.

A client chooses its Kafka client_id (up to 32 KiB), an HTTP path or Host, a
topic, a gRPC method name. Kept verbatim, 10,000 such values hold hundreds of
megabytes and make /metrics gigabytes long, so every label value is passed
through `safe_value` when a family is about to hold a new series (never on
the increment of a series that exists, see stats.py).

The rules, so that the same input always exports the same value:

- a printable value (``str.isprintable``) of at most `limit` UTF-8 bytes is
  kept exactly as it is, so ordinary labels export as they always did;
- every other character is escaped: ``\\xNN`` below U+0100, ``\\uNNNN`` below
  U+10000, ``\\UNNNNNNNN`` above (lone surrogates from undecodable bytes too);
- a value whose escaped form is longer than `limit` bytes is cut after whole
  characters (never inside an escape or a UTF-8 sequence) and ends with the
  marker ``…`` and 8 hex digits of a CRC-32 of the whole value, so two long
  values that share a prefix still make two series.
"""

from __future__ import annotations

import zlib

#: Bytes a label value may take once escaped (`metrics.max_label_bytes`).
MAX_LABEL_BYTES = 128
#: Smallest limit accepted: the marker and the hash must fit with some prefix.
MIN_LABEL_BYTES = 16
MARKER = "\u2026"  # …
_TAIL_BYTES = len(MARKER.encode()) + 8


def _escape_char(c: str) -> str:
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def safe_value(value: str, limit: int = MAX_LABEL_BYTES) -> str:
    """`value` escaped and cut to at most `limit` UTF-8 bytes (see the module rules)."""
    if not isinstance(value, str):
        value = str(value)
    if value.isprintable() and (len(value) * 4 <= limit or len(value.encode()) <= limit):
        return value
    budget = limit - _TAIL_BYTES  # what a cut value keeps of its prefix
    parts: list[str] = []
    used = 0
    keep = 0  # parts that fit within `budget`
    for c in value:
        piece = c if c.isprintable() else _escape_char(c)
        used += len(piece) if piece.isascii() else len(piece.encode())
        if used > limit:
            # Only about `limit` bytes were escaped: a 32 KiB value costs its
            # prefix plus one CRC pass, never a 32 KiB escaped copy.
            crc = zlib.crc32(value.encode("utf-8", "surrogatepass"))
            return f"{''.join(parts[:keep])}{MARKER}{crc:08x}"
        parts.append(piece)
        if used <= budget:
            keep = len(parts)
    return "".join(parts)


def safe_key(key: tuple[str, ...], limit: int = MAX_LABEL_BYTES) -> tuple[str, ...]:
    """`key` with every value made safe; the very same tuple when none had to change.

    Callers compare the result with ``is`` to learn whether the raw key may be
    stored (it may, only when nothing changed).
    """
    for v in key:
        if not (isinstance(v, str) and v.isprintable() and len(v) * 4 <= limit) and (
            safe_value(v, limit) != v
        ):
            return tuple(safe_value(x, limit) for x in key)
    return key
