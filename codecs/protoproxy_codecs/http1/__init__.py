"""HTTP/1.1 codec: passive framing of both directions, byte-exact (RFC 9112)."""

from .codec import Http1Codec

__all__ = ["Http1Codec"]
