"""The protocol handler's base: what the message fault filter asks of a protocol.

Its own module so that the per-protocol handlers (`message_kafka`,
`message_http2`, `message_http`) and the filter that runs them
(`message_filter`) both import it and neither imports the other's runtime:
the filter picks a handler class per connection, the handlers only need
this interface and the vocabulary in `actions`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction, Message

from .actions import CODEC_MATCH_KEYS, GENERIC_MATCH, Action

if TYPE_CHECKING:
    from .engine import ActiveFault
    from .message_filter import MessageFaultFilter

Matcher = Callable[[Message], bool]


def always(msg: Message) -> bool:
    """The matcher of a fault with no protocol keys (handlers test for it by identity)."""
    return True


def flip_bits(data: bytes, span: tuple[int, int], action: Action, rng: random.Random) -> bytes:
    """`data` with one bit flipped at each of ``bytes`` (default 1) random places in `span`.

    The one place corruption draws from the filter's RNG: a seeded run must
    corrupt the same bits whichever message kind (whole message, HTTP/1 body)
    is hit, so the draws are always position then bit, once per flip.
    """
    raw = bytearray(data)
    flips = int(action.params.get("bytes", action.params.get("value", 1)))
    for _ in range(max(1, flips)):
        at = rng.randrange(span[0], span[1])
        raw[at] ^= 1 << rng.randrange(8)
    return bytes(raw)


class Handler:
    """What a protocol adds to the generic filter. This base is raw TCP."""

    protocol = "tcp"
    #: match keys this handler understands besides the generic ones (`actions` owns them)
    keys: frozenset[str] = CODEC_MATCH_KEYS["tcp"]
    #: set (to the fault's name) when a fault has stalled the whole connection
    stalled: str | None = None

    def __init__(self, filt: MessageFaultFilter) -> None:
        self.filt = filt
        self.conn = filt.conn

    def compile(self, fault: ActiveFault, action: Action) -> Matcher | None:
        """A predicate for the fault's protocol keys; None when it can never match here."""
        if set(fault.spec.match) - GENERIC_MATCH - self.keys:
            return None
        return always

    def forward(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        """Pass a message on (handlers track state and rewrite here)."""
        out.append(msg)

    def drop(self, direction: Direction, msg: Message, out: list[Message], name: str) -> None:
        """Never deliver `msg` (protocols with flow control credit the sender);
        `name` is the fault's, for marks."""

    def stalled_message(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        """A message while `stalled` (Kafka after a drop); faults no longer apply."""

    def payload_span(self, msg: Message) -> tuple[int, int] | None:
        """Where `corrupt` may flip bytes and framing survives; None: not here."""
        return (0, len(msg.raw)) if msg.raw else None

    def act(
        self, fault: ActiveFault, action: Action, direction: Direction, msg: Message, out: list
    ) -> bool:
        """Protocol actions (abort, duplicate, rst_stream...); False if not supported."""
        return False

    def closed(self) -> None:
        """The connection is gone."""
