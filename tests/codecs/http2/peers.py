"""Two real h2 endpoints talking through the passive codec (h11's ConnectionPair idea)."""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.events

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message
from protoproxy_codecs.http2 import Http2Codec


def new_client() -> h2.connection.H2Connection:
    return h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )


class H2Pair:
    """A client and a server h2.Connection wired through one Http2Codec.

    With `upgrade_header` (and a `client` that called
    initiate_upgrade_connection) the pair starts as an h2c upgrade.
    `pump()` relays every pending byte (optionally re-chunked by `chunker`)
    until both sides are quiet, recording every Message the codec produced
    and every h2 event each end received.
    """

    def __init__(
        self,
        codec: Http2Codec | None = None,
        chunker: Callable[[bytes], list[bytes]] | None = None,
        auto_ack: bool = True,
        client: h2.connection.H2Connection | None = None,
        upgrade_header: bytes | None = None,
    ) -> None:
        self.codec = codec or Http2Codec()
        self.client = client or new_client()
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.chunker = chunker or (lambda b: [b])
        self.auto_ack = auto_ack
        self.messages: list[Message] = []
        #: Per direction: message -> bytes to forward instead (None: forward raw).
        self.filters: list[Callable[[Message], bytes | None] | None] = [None, None]
        self.raw: tuple[bytearray, bytearray] = (bytearray(), bytearray())
        self.client_events: list[h2.events.Event] = []
        self.server_events: list[h2.events.Event] = []
        if upgrade_header is None:
            self.client.initiate_connection()
            self.server.initiate_connection()
        else:
            self.server.initiate_upgrade_connection(upgrade_header)
        self.pump()

    def _relay(self, direction: Direction) -> bool:
        src = self.client if direction is UPSTREAM else self.server
        data = src.data_to_send()
        if not data:
            return False
        self.raw[direction].extend(data)
        forwarded = bytearray()
        for chunk in self.chunker(data):
            for msg in self.codec.feed(direction, chunk):
                self.messages.append(msg)
                hook = self.filters[direction]
                replaced = hook(msg) if hook is not None else None
                forwarded += msg.raw if replaced is None else replaced
        self._deliver(direction, bytes(forwarded))
        return True

    def inject(self, direction: Direction, data: bytes) -> None:
        """Bytes the proxy itself writes in `direction` (not seen by the codec)."""
        self._deliver(direction, data)

    def _deliver(self, direction: Direction, data: bytes) -> None:
        dst, events = (
            (self.server, self.server_events)
            if direction is UPSTREAM
            else (self.client, self.client_events)
        )
        new = dst.receive_data(data)
        events.extend(new)
        if self.auto_ack:
            for ev in new:
                if isinstance(ev, h2.events.DataReceived) and ev.flow_controlled_length:
                    dst.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)

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
