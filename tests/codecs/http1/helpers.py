"""Test helpers for the HTTP/1.1 codec: chunking, feeding, and an h11 pair.

`H11Pair` follows the idea of h11's own ConnectionPair test helper (a client
and a server Connection wired back to back), written for our purpose: every
byte one side sends is also fed to the codec under test, so the events the
peer decoded are the oracle for the codec's messages.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import h11
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message
from protoproxy_codecs.http1 import Http1Codec


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Split `data` anywhere into consecutive non-empty pieces."""
    if not data:
        return []
    points = draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=min(len(data), 40)))
    edges = [0, *sorted(p for p in points if p < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def feed_pieces(codec: Http1Codec, direction: Direction, pieces: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for piece in pieces:
        out.extend(codec.feed(direction, piece))
    return out


def raw_of(messages: list[Message], direction: Direction) -> bytes:
    return b"".join(m.raw for m in messages if m.direction == direction)


def dechunk(raw: bytes) -> bytes:
    """Payload of a complete chunked body (framing included in `raw`)."""
    out = bytearray()
    pos = 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";")[0].strip(b" \t"), 16)
        if size == 0:
            return bytes(out)
        out += raw[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


@dataclass
class Seen:
    """What one direction carried, as h11 decoded it."""

    events: list[object] = field(default_factory=list)
    data: bytes = b""


class H11Pair:
    """An h11 client and server back to back, with every wire byte recorded."""

    def __init__(self) -> None:
        self.client = h11.Connection(h11.CLIENT)
        self.server = h11.Connection(h11.SERVER)
        self.wire = {UPSTREAM: bytearray(), DOWNSTREAM: bytearray()}

    def _send(self, direction: Direction, events: list[object]) -> list[object]:
        sender, receiver = (
            (self.client, self.server) if direction == UPSTREAM else (self.server, self.client)
        )
        data = b""
        for event in events:
            chunk = sender.send(event)  # type: ignore[arg-type]
            if chunk:
                data += chunk
        self.wire[direction] += data
        receiver.receive_data(data)
        seen: list[object] = []
        while True:
            event = receiver.next_event()
            if event in (h11.NEED_DATA, h11.PAUSED):
                break
            seen.append(event)
        return seen

    def request(self, *events: object) -> list[object]:
        return self._send(UPSTREAM, list(events))

    def respond(self, *events: object) -> list[object]:
        return self._send(DOWNSTREAM, list(events))

    def next_cycle(self) -> None:
        self.client.start_next_cycle()
        self.server.start_next_cycle()


def heads(messages: list[Message], direction: Direction) -> list[Message]:
    return [m for m in messages if m.direction == direction and m.kind == "head"]


def payload_by_key(messages: list[Message], direction: Direction) -> dict[int, bytes]:
    """Body payload per key (de-chunked when the head said chunked)."""
    raw: dict[int, bytes] = {}
    chunked: dict[int, bool] = {}
    for m in messages:
        if m.direction != direction:
            continue
        if m.kind == "head" and not (m.info or {}).get("interim"):
            chunked[m.key] = (b"transfer-encoding", b"chunked") in [
                (n, v.lower()) for n, v in m.info["headers"]
            ]
            raw.setdefault(m.key, b"")
        elif m.kind in ("body", "end"):
            raw[m.key] = raw.get(m.key, b"") + m.raw
    return {k: (dechunk(v) if chunked.get(k) and v else v) for k, v in raw.items()}
