"""The message tail: a ring of recent messages, bounded in count and bytes.

Capture is a Filter that stores, per filter call, one Batch: references to the
Messages (their `raw` and the `info` the codec already built) plus a few cheap
fields; nothing is decoded or copied on the data path. Per-message entries,
decoding and redaction happen in `render.py` only when /messages is read.
Followers (SSE clients) get the same batches through bounded queues; a slow
follower loses messages (counted) rather than holding memory.

The ring's `max_bytes` counts wire bytes, but what /messages serves is the
decoded view, which can be hundreds of times larger (a 140 KB ring once made
a 103 MB answer). So what is served is bounded by rendered size too: each
entry's JSON by `MAX_ENTRY_RENDERED` (a larger decoded view is replaced by a
note saying how large it was), and one answer's entries together by
`render_budget`, newest first (older entries are left out and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import Direction, Message
from protoproxy_codecs.protobuf_display import DescriptorCatalog

if TYPE_CHECKING:
    from ..config import Tail as TailConfig
    from ..connection import Connection
    from .stats import Counter

#: Streams per connection whose gRPC method is remembered for DATA frames.
_MAX_STREAMS = 1024
#: Entries queued per follower before it starts losing them.
FOLLOW_QUEUE = 1000
#: Bytes of JSON one served entry may take.
MAX_ENTRY_RENDERED = 256 * 1024
#: The least rendered budget of one /messages answer (see `MessageTail.render_budget`).
MIN_RENDER_BUDGET = 1024 * 1024


class Entry:
    __slots__ = ("conn_id", "direction", "listener", "message", "method", "protocol", "seq", "ts")

    def __init__(
        self,
        seq: int,
        ts: float,
        conn_id: int,
        listener: str,
        protocol: str,
        direction: Direction,
        message: Message,
        method: str | None,
    ) -> None:
        self.seq = seq
        self.ts = ts
        self.conn_id = conn_id
        self.listener = listener
        self.protocol = protocol
        self.direction = direction
        self.message = message
        self.method = method

    @property
    def size(self) -> int:
        return len(self.message.raw)


class Batch:
    """The messages of one filter call: what capture stores, one object per batch.

    Capturing a batch costs one small object however many messages it holds;
    per-message Entry objects are built only when the tail is read.
    """

    __slots__ = (
        "conn_id",
        "direction",
        "listener",
        "messages",
        "protocol",
        "seq",
        "size",
        "streams",
        "ts",
    )

    def __init__(
        self,
        seq: int,
        ts: float,
        conn_id: int,
        listener: str,
        protocol: str,
        direction: Direction,
        messages: list[Message],
        size: int,
        streams: dict[int, str] | None,
    ) -> None:
        self.seq = seq  # of the first message
        self.ts = ts
        self.conn_id = conn_id
        self.listener = listener
        self.protocol = protocol
        self.direction = direction
        self.messages = messages
        self.size = size
        self.streams = streams  # HTTP/2: stream id -> :path, shared per connection

    def entries(self) -> list[Entry]:
        streams = self.streams
        return [
            Entry(
                self.seq + i,
                self.ts,
                self.conn_id,
                self.listener,
                self.protocol,
                self.direction,
                msg,
                streams.get(msg.key) if streams is not None and msg.key else None,
            )
            for i, msg in enumerate(self.messages)
        ]


class Follower:
    """One SSE client: a bounded queue plus a count of what it missed."""

    def __init__(self, maxsize: int = FOLLOW_QUEUE) -> None:
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.closed = False

    def offer(self, batch: Batch) -> None:
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.dropped += len(batch.messages)


def load_catalog(paths: list[Path]) -> DescriptorCatalog:
    """One catalog from every configured FileDescriptorSet (read once, at start)."""
    catalog = DescriptorCatalog()
    for path in paths:
        catalog.add(Path(path).read_bytes())
    return catalog


class MessageTail:
    """The ring and its followers. All on the event loop thread: no locks."""

    def __init__(self, config: TailConfig, dropped: Counter | None = None) -> None:
        self.enabled = config.enabled
        self.max_messages = config.max_messages
        self.max_bytes = config.max_bytes
        self.listeners = frozenset(config.listeners)
        self.ring: deque[Batch] = deque()
        self.count = 0  # messages in the ring
        self.bytes = 0
        self.seq = 0
        self.followers: set[Follower] = set()
        self.dropped = dropped  # protoproxy_tail_dropped_total, by reason
        self._streams: dict[int, dict[int, str]] = {}  # conn id -> stream id -> :path
        #: typed display of gRPC payloads, from the configured descriptor sets
        self.catalog = load_catalog(config.descriptors) if config.descriptors else None

    # -- capture (data path) ------------------------------------------------------
    def wants(self, conn: Connection) -> bool:
        return (
            self.enabled
            and conn.protocol != "tcp"
            and (not self.listeners or conn.listener.name in self.listeners)
        )

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if not self.enabled:
            return messages
        kept = list(messages)  # filters after us may return a different list; keep ours
        size = 0
        secret_ok = conn.protocol != "kafka"
        for i, msg in enumerate(kept):
            if not secret_ok and msg.info is not None and msg.info.get("secret"):
                kept[i] = msg = _stand_in(msg)
            size += len(msg.raw)
        if size > self.max_bytes or len(kept) > self.max_messages:
            kept, size, trimmed = self._fit(kept)
            if not kept:
                return messages
            if trimmed:
                self.clear()  # this batch alone fills the ring: it replaces what is held
        streams = None
        if conn.protocol == "http2":
            streams = (
                self._learn_paths(conn.id, kept)
                if direction is Direction.UPSTREAM
                else (self._streams.get(conn.id))
            )
        batch = Batch(
            self.seq + 1,
            time.time(),
            conn.id,
            conn.listener.name,
            conn.protocol,
            direction,
            kept,
            size,
            streams,
        )
        self.seq += len(kept)
        ring = self.ring
        ring.append(batch)
        self.count += len(kept)
        self.bytes += size
        while self.count > self.max_messages or self.bytes > self.max_bytes:
            old = ring.popleft()
            self.count -= len(old.messages)
            self.bytes -= old.size
        if self.followers:
            for f in self.followers:
                f.offer(batch)
        return messages

    def _fit(self, messages: list[Message]) -> tuple[list[Message], int, bool]:
        """A batch larger than the whole ring: keep what fits, newest last.

        Single messages larger than the ring are counted and left out; the
        third value says whether older messages had to go to fit the rest.
        """
        kept: list[Message] = []
        size = 0
        for msg in messages:
            n = len(msg.raw)
            if n > self.max_bytes:
                if self.dropped is not None:
                    self.dropped.inc(("too_large",))
                continue
            kept.append(msg)
            size += n
        trimmed = False
        while kept and (len(kept) > self.max_messages or size > self.max_bytes):
            size -= len(kept.pop(0).raw)
            trimmed = True
        return kept, size, trimmed

    def _learn_paths(self, conn_id: int, messages: list[Message]) -> dict[int, str] | None:
        """Remember each request stream's :path, so its DATA frames name the method too."""
        streams = self._streams.get(conn_id)
        for msg in messages:
            info = msg.info
            if info is None or not msg.key:
                continue
            headers = info.get("headers")
            if headers is None:
                continue
            for name, value in headers:
                if name == ":path":
                    if streams is None or len(streams) >= _MAX_STREAMS:
                        # A new map rather than clear(): batches already held keep theirs.
                        streams = self._streams[conn_id] = {}
                    streams[msg.key] = value
                    break
        return streams

    def closed(self, conn: Connection) -> None:
        self._streams.pop(conn.id, None)

    # -- reading (admin API) ------------------------------------------------------
    def follow(self) -> Follower:
        f = Follower()
        self.followers.add(f)
        return f

    def close_followers(self) -> None:
        """End every follow stream (admin shutdown): they see None and return."""
        for f in self.followers:
            f.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                f.queue.put_nowait(None)

    def unfollow(self, f: Follower) -> None:
        self.followers.discard(f)
        if f.dropped and self.dropped is not None:
            self.dropped.inc(("slow_follower",), f.dropped)

    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        for batch in self.ring:
            out += batch.entries()
        return out

    @property
    def render_budget(self) -> int:
        """Bytes of rendered entries one /messages answer may hold: the ring's
        own byte cap, counted in rendered bytes (at least `MIN_RENDER_BUDGET`,
        so that a ring sized for small messages still serves its JSON)."""
        return max(self.max_bytes, MIN_RENDER_BUDGET)

    def clear(self) -> None:
        self.ring.clear()
        self.count = 0
        self.bytes = 0

    def info(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "messages": self.count,
            "bytes": self.bytes,
            "max_messages": self.max_messages,
            "max_bytes": self.max_bytes,
            "followers": len(self.followers),
        }


def newest_within(
    entries: Sequence[Entry], render: Callable[[Entry], str], budget: int
) -> tuple[list[str], int]:
    """The rendered `entries` that fit in `budget` bytes, newest kept, in order,
    and how many older ones were left out.

    The newest is always served (`render` bounds each entry); rendering stops at
    the first entry that does not fit, so older ones are never rendered.
    """
    kept: list[str] = []
    used = 0
    for e in reversed(entries):
        text = render(e)
        used += len(text)
        if kept and used > budget:
            break
        kept.append(text)
    kept.reverse()
    return kept, len(entries) - len(kept)


def _stand_in(msg: Message) -> Message:
    """A SASL frame without its bytes: credentials are never held by the tail."""
    info = dict(msg.info or {})
    info["size"] = len(msg.raw)
    return Message(msg.direction, msg.kind, b"", msg.key, info)
