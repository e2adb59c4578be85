"""The message tail: a ring of recent messages, bounded in count and bytes.

Capture is a Filter that stores a reference to each Message (its `raw` and
the `info` the codec already built) plus a few cheap fields; nothing is
decoded or copied on the data path. Rendering, decoding and redaction happen
in `render.py` only when /messages is read. Followers (SSE clients) get the
same entries through bounded queues; a slow follower loses entries (counted)
rather than holding memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import Direction, Message

if TYPE_CHECKING:
    from ..config import Tail as TailConfig
    from ..connection import Connection
    from .stats import Counter

#: Streams per connection whose gRPC method is remembered for DATA frames.
_MAX_STREAMS = 1024
#: Entries queued per follower before it starts losing them.
FOLLOW_QUEUE = 1000


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


class Follower:
    """One SSE client: a bounded queue plus a count of what it missed."""

    def __init__(self, maxsize: int = FOLLOW_QUEUE) -> None:
        self.queue: asyncio.Queue[Entry | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.closed = False

    def offer(self, entry: Entry) -> None:
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1


class MessageTail:
    """The ring and its followers. All on the event loop thread: no locks."""

    def __init__(self, config: TailConfig, dropped: Counter | None = None) -> None:
        self.enabled = config.enabled
        self.max_messages = config.max_messages
        self.max_bytes = config.max_bytes
        self.listeners = frozenset(config.listeners)
        self.ring: deque[Entry] = deque()
        self.bytes = 0
        self.seq = 0
        self.followers: set[Follower] = set()
        self.dropped = dropped  # protoproxy_tail_dropped_total, by reason
        self._methods: dict[int, dict[int, str]] = {}  # conn id -> stream id -> :path

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
        now = time.time()
        protocol = conn.protocol
        listener = conn.listener.name
        conn_id = conn.id
        grpc = protocol == "http2"
        ring = self.ring
        max_bytes = self.max_bytes
        seq = self.seq
        added = 0
        for msg in messages:
            size = len(msg.raw)
            if size > max_bytes:
                if self.dropped is not None:
                    self.dropped.inc(("too_large",))
                continue
            seq += 1
            entry = Entry(
                seq,
                now,
                conn_id,
                listener,
                protocol,
                direction,
                msg,
                self._method(conn_id, msg) if grpc else None,
            )
            ring.append(entry)
            added += size
            if self.followers:
                for f in self.followers:
                    f.offer(entry)
        self.seq = seq
        self.bytes += added
        max_messages = self.max_messages
        while len(ring) > max_messages or self.bytes > max_bytes:
            self.bytes -= len(ring.popleft().message.raw)
        return messages

    def _method(self, conn_id: int, msg: Message) -> str | None:
        """The :path of the message's stream, learned from its request HEADERS."""
        sid = msg.key
        if not sid:
            return None
        info = msg.info
        streams = self._methods.get(conn_id)
        if info is not None and msg.direction is Direction.UPSTREAM:
            headers = info.get("headers")
            if headers is not None:
                for name, value in headers:
                    if name == ":path":
                        if streams is None:
                            streams = self._methods[conn_id] = {}
                        elif len(streams) >= _MAX_STREAMS:
                            streams.clear()
                        streams[sid] = value
                        return value
        return streams.get(sid) if streams is not None else None

    def closed(self, conn: Connection) -> None:
        self._methods.pop(conn.id, None)

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
        return list(self.ring)

    def clear(self) -> None:
        self.ring.clear()
        self.bytes = 0

    def info(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "messages": len(self.ring),
            "bytes": self.bytes,
            "max_messages": self.max_messages,
            "max_bytes": self.max_bytes,
            "followers": len(self.followers),
        }
