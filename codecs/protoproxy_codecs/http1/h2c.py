"""What the HTTP/2 codec needs to take over after `Upgrade: h2c` (RFC 7540 §3.2).

After the 101 the upgrade request is stream 1, already half closed by the
client, and the HTTP2-Settings header carried the client's SETTINGS. Both are
known only to the HTTP/1.1 side, so they are handed over with the bytes.
"""

from __future__ import annotations

import base64
import binascii

from ..base import DecodeError
from .head import Head

# Connection-specific fields that do not exist in HTTP/2 (RFC 9113 §8.2.2).
_HOP_BY_HOP = frozenset(
    {b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection", b"host"}
)


def h2c_seed(
    head: Head, method: str, target: str, host: str | None
) -> tuple[list[tuple[str, str]], bytes | None]:
    """(the request as HTTP/2 header pairs, the decoded HTTP2-Settings payload)."""
    pairs = [(":method", method), (":scheme", "http"), (":path", target)]
    if host is not None:
        pairs.insert(2, (":authority", host))
    settings: bytes | None = None
    for name, value in head.headers:
        if name == b"http2-settings":
            settings = _settings(value)
        elif name not in _HOP_BY_HOP:
            pairs.append((name.decode("ascii"), value.decode("latin-1")))
    return pairs, settings


def _settings(value: bytes) -> bytes:
    # token68 in base64url without padding; a bounded head bounds its size.
    try:
        return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as e:
        raise DecodeError(f"bad HTTP2-Settings: {e}", "bad_h2c_settings") from e
