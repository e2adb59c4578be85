"""Opaque byte streams: each chunk read is one message."""

from __future__ import annotations

from typing import ClassVar

from .base import BaseCodec, Direction, Message, Sniff


class TcpCodec(BaseCodec):
    name: ClassVar[str] = "tcp"
    #: The runtime may skip Message creation entirely for codecs that set this
    #: and have no filter interested in messages: bulk TCP is the hot path.
    opaque: ClassVar[bool] = True

    @classmethod
    def sniff(cls, head: bytes) -> Sniff:
        return Sniff.YES

    def feed(self, direction: Direction, data: bytes, at: int = 0) -> list[Message]:
        if not data:
            return []
        return [Message(direction, "chunk", data)]
