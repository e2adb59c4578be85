"""gRPC length-prefixed messages: reassembled across DATA frames, split within one.

Each message is a 1-byte compressed flag, a 4-byte big-endian length, then the
payload. A message wholly inside one DATA frame is handed out as a memoryview
of the frame (no copy); only a message that spans frames is copied, once, into
its own buffer. The buffer is bounded by the maximum message size.
"""

from __future__ import annotations

import struct

from ..base import DecodeError, Direction

_LEN = struct.Struct(">L")
PREFIX_LEN = 5


class GrpcMessage:
    """One gRPC message as a call event.

    `payload` is a memoryview into the DATA frame's bytes when the message fit
    in one frame, else bytes. Keep it only as long as needed: a view pins the
    frame's bytes in memory. When the connection's reassembly budget was spent
    the payload of a spanning message is not kept: `truncated` is then True
    and `payload` empty; `length` is always the length on the wire.
    """

    __slots__ = ("compressed", "direction", "index", "length", "payload", "stream_id", "truncated")

    def __init__(
        self,
        direction: Direction,
        stream_id: int,
        index: int,
        compressed: int,
        payload: memoryview | bytes,
        length: int,
        truncated: bool = False,
    ) -> None:
        self.direction = direction
        self.stream_id = stream_id
        self.index = index  # 0-based position within this call and direction
        self.compressed = compressed
        self.payload = payload
        self.length = length
        self.truncated = truncated

    def __repr__(self) -> str:
        return (
            f"GrpcMessage({self.direction.name}, stream={self.stream_id}, #{self.index}, "
            f"compressed={self.compressed}, {self.length}B{', truncated' if self.truncated else ''})"
        )


class Budget:
    """Bytes a connection may hold for messages that span DATA frames, across
    all its streams: without it, many streams each holding a partial message
    could pin max_pending x max_message_size."""

    __slots__ = ("left",)

    def __init__(self, size: int) -> None:
        self.left = size


class MessageReader:
    """Messages of one direction of one call."""

    __slots__ = (
        "_body",
        "_budget",
        "_flag",
        "_head",
        "_left",
        "_length",
        "_reserved",
        "bytes",
        "count",
        "direction",
        "max_size",
        "stream_id",
    )

    def __init__(
        self, direction: Direction, stream_id: int, max_size: int, budget: Budget | None = None
    ) -> None:
        self.direction = direction
        self.stream_id = stream_id
        self.max_size = max_size
        self.count = 0  # messages completed
        self.bytes = 0  # payload bytes of completed messages
        self._budget = budget
        self._head: bytearray | None = None  # a prefix split across frames
        self._left = -1  # payload bytes still due for a spanning message; -1: none
        self._body: bytearray | None = None  # its payload so far, unless not retained
        self._flag = 0
        self._length = 0
        self._reserved = 0

    @property
    def pending(self) -> int:
        """Bytes held for a message that has not completed (0 at a message boundary)."""
        held = len(self._head) if self._head is not None else 0
        return held + (len(self._body) if self._body is not None else 0)

    def _check(self, length: int) -> None:
        if length > self.max_size:
            raise DecodeError(
                f"gRPC message of {length} bytes exceeds the {self.max_size}-byte limit",
                "message_too_large",
            )

    def _emit(
        self,
        out: list[GrpcMessage],
        flag: int,
        payload: memoryview | bytes,
        length: int,
        truncated: bool,
    ) -> None:
        out.append(
            GrpcMessage(
                self.direction, self.stream_id, self.count, flag, payload, length, truncated
            )
        )
        self.count += 1
        self.bytes += length

    def release(self) -> None:
        """The call ended: give back any budget a partial message held."""
        if self._left < 0 and self._head is None:
            return  # at a message boundary: nothing held
        if self._reserved and self._budget is not None:
            self._budget.left += self._reserved
        self._reserved = 0
        self._body = None
        self._head = None
        self._left = -1

    def feed(self, data: memoryview) -> list[GrpcMessage]:
        """Messages completed by this DATA payload (padding already removed)."""
        out: list[GrpcMessage] = []
        n = len(data)
        pos = 0
        unpack = _LEN.unpack_from
        if self._left < 0 and self._head is None:
            # The common case, inline: whole messages from a message boundary.
            direction, stream_id, max_size = self.direction, self.stream_id, self.max_size
            while n - pos >= PREFIX_LEN:
                length = unpack(data, pos + 1)[0]
                end = pos + PREFIX_LEN + length
                if end > n or length > max_size:
                    break  # spans frames, or too large: the general path below
                out.append(
                    GrpcMessage(
                        direction,
                        stream_id,
                        self.count,
                        data[pos],
                        data[pos + PREFIX_LEN : end],
                        length,
                    )
                )
                self.count += 1
                self.bytes += length
                pos = end
            if pos == n:
                return out
        while True:
            if self._left >= 0:  # inside a message that spans frames
                take = min(self._left, n - pos)
                if self._body is not None:
                    self._body += data[pos : pos + take]
                pos += take
                self._left -= take
                if self._left:
                    return out
                self._left = -1
                body = self._body
                if body is not None:
                    self._body = None
                    self._emit(out, self._flag, bytes(body), self._length, False)
                else:
                    self._emit(out, self._flag, b"", self._length, True)
                if self._reserved:
                    assert self._budget is not None
                    self._budget.left += self._reserved
                    self._reserved = 0
                continue
            if pos >= n:
                return out
            head = self._head
            if head is None and n - pos >= PREFIX_LEN:
                flag = data[pos]
                length = unpack(data, pos + 1)[0]
                self._check(length)
                end = pos + PREFIX_LEN + length
                if end <= n:  # the common case: the whole message is in this frame
                    self._emit(out, flag, data[pos + PREFIX_LEN : end], length, False)
                    pos = end
                    continue
                pos += PREFIX_LEN
            else:
                if head is None:
                    head = self._head = bytearray()
                take = min(PREFIX_LEN - len(head), n - pos)
                head += data[pos : pos + take]
                pos += take
                if len(head) < PREFIX_LEN:
                    return out
                self._head = None
                flag = head[0]
                length = unpack(head, 1)[0]
                self._check(length)
            self._flag = flag
            self._length = length
            self._left = length
            budget = self._budget
            if budget is None or budget.left >= length:
                if budget is not None:
                    budget.left -= length
                    self._reserved = length
                self._body = bytearray()
            else:
                self._body = None  # over budget: count it, do not keep it
