"""Sans-IO wire codecs for protoproxy: no asyncio, no sockets, no runtime imports."""

from .base import (
    DOWNSTREAM,
    UPSTREAM,
    BaseCodec,
    Codec,
    DecodeError,
    Direction,
    Exchange,
    FloodError,
    Http2FloodLimits,
    Limits,
    Message,
    Sniff,
)

__all__ = [
    "DOWNSTREAM",
    "UPSTREAM",
    "BaseCodec",
    "Codec",
    "DecodeError",
    "Direction",
    "Exchange",
    "FloodError",
    "Http2FloodLimits",
    "Limits",
    "Message",
    "Sniff",
]
