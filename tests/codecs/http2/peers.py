"""Two real h2 endpoints talking through the passive codec (h11's ConnectionPair idea)."""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.events

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message
from protoproxy_codecs.http2 import Http2Codec


class H2Pair:
    """A client and a server h2.Connection wired through one Http2Codec.

    `pump()` relays every pending byte (optionally re-chunked by `chunker`)
    until both sides are quiet, recording every Message the codec produced
    and every h2 event each end received.
    """

    def __init__(
        self,
        codec: Http2Codec | None = None,
        chunker: Callable[[bytes], list[bytes]] | None = None,
        auto_ack: bool = True,
    ) -> None:
        self.codec = codec or Http2Codec()
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.chunker = chunker or (lambda b: [b])
        self.auto_ack = auto_ack
        self.messages: list[Message] = []
        self.raw: tuple[bytearray, bytearray] = (bytearray(), bytearray())
        self.client_events: list[h2.events.Event] = []
        self.server_events: list[h2.events.Event] = []
        self.client.initiate_connection()
        self.server.initiate_connection()
        self.pump()

    def _relay(self, direction: Direction) -> bool:
        src, dst, events = (
            (self.client, self.server, self.server_events)
            if direction is UPSTREAM
            else (self.server, self.client, self.client_events)
        )
        data = src.data_to_send()
        if not data:
            return False
        self.raw[direction].extend(data)
        forwarded = bytearray()
        for chunk in self.chunker(data):
            for msg in self.codec.feed(direction, chunk):
                self.messages.append(msg)
                forwarded += msg.raw
        new = dst.receive_data(bytes(forwarded))
        events.extend(new)
        if self.auto_ack:
            for ev in new:
                if isinstance(ev, h2.events.DataReceived) and ev.flow_controlled_length:
                    dst.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        return True

    def pump(self) -> None:
        while self._relay(UPSTREAM) | self._relay(DOWNSTREAM):
            pass

    def of_kind(self, kind: str, direction: Direction | None = None) -> list[Message]:
        return [
            m
            for m in self.messages
            if m.kind == kind and (direction is None or m.direction is direction)
        ]


__all__ = ["DOWNSTREAM", "UPSTREAM", "H2Pair"]
