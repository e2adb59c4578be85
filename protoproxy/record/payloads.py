"""gRPC message payloads made plain: decompressed within a bound."""

from __future__ import annotations

import zlib


class TooLarge(ValueError):
    """A payload that inflates past the recording's per-exchange bound."""


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def plain(compressed: int, payload: bytes, encoding: str | None, limit: int) -> bytes | None:
    """The message bytes; None for a compression this recorder cannot undo."""
    if not compressed:
        return payload
    wbits = _WBITS.get((encoding or "").strip().lower())
    if wbits is None:
        return None
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(payload, limit)
    except zlib.error:
        return None
    if d.unconsumed_tail:
        raise TooLarge(f"a message inflates past {limit} bytes")
    return out
