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
    frame's bytes in memory.
    """

    __slots__ = ("compressed", "direction", "index", "payload", "stream_id")

    def __init__(
        self,
        direction: Direction,
        stream_id: int,
        index: int,
        compressed: int,
        payload: memoryview | bytes,
    ) -> None:
        self.direction = direction
        self.stream_id = stream_id
        self.index = index  # 0-based position within this call and direction
        self.compressed = compressed
        self.payload = payload

    @property
    def length(self) -> int:
        return len(self.payload)

    def __repr__(self) -> str:
        return (
            f"GrpcMessage({self.direction.name}, stream={self.stream_id}, #{self.index}, "
            f"compressed={self.compressed}, {len(self.payload)}B)"
        )


class MessageReader:
    """Messages of one direction of one call."""

    __slots__ = ("_length", "_partial", "bytes", "count", "direction", "max_size", "stream_id")

    def __init__(self, direction: Direction, stream_id: int, max_size: int) -> None:
        self.direction = direction
        self.stream_id = stream_id
        self.max_size = max_size
        self.count = 0  # messages completed
        self.bytes = 0  # payload bytes of completed messages
        self._partial: bytearray | None = None  # prefix and payload of a spanning message
        self._length = -1  # payload length of the spanning message, once its prefix is in

    @property
    def pending(self) -> int:
        """Bytes held for a message that has not completed (0 at a message boundary)."""
        return len(self._partial) if self._partial is not None else 0

    def _check(self, length: int) -> None:
        if length > self.max_size:
            raise DecodeError(
                f"gRPC message of {length} bytes exceeds the {self.max_size}-byte limit",
                "message_too_large",
            )

    def _emit(self, out: list[GrpcMessage], compressed: int, payload: memoryview | bytes) -> None:
        out.append(GrpcMessage(self.direction, self.stream_id, self.count, compressed, payload))
        self.count += 1
        self.bytes += len(payload)

    def feed(self, data: memoryview) -> list[GrpcMessage]:
        """Messages completed by this DATA payload (padding already removed)."""
        out: list[GrpcMessage] = []
        n = len(data)
        pos = 0
        part = self._partial
        if part is not None:
            if len(part) < PREFIX_LEN:
                take = min(PREFIX_LEN - len(part), n)
                part += data[:take]
                pos = take
                if len(part) < PREFIX_LEN:
                    return out
                self._length = _LEN.unpack_from(part, 1)[0]
                self._check(self._length)
            want = PREFIX_LEN + self._length - len(part)
            take = min(want, n - pos)
            part += data[pos : pos + take]
            pos += take
            if take < want:
                return out
            self._partial = None
            self._emit(out, part[0], bytes(memoryview(part)[PREFIX_LEN:]))
        while pos < n:
            if n - pos < PREFIX_LEN:
                self._partial = bytearray(data[pos:])
                break
            length = _LEN.unpack_from(data, pos + 1)[0]
            self._check(length)
            end = pos + PREFIX_LEN + length
            if end > n:
                self._partial = bytearray(data[pos:])
                self._length = length
                break
            self._emit(out, data[pos], data[pos + PREFIX_LEN : end])
            pos = end
        return out
