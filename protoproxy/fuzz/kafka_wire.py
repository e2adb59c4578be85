"""The Kafka fuzz driver's socket and JSON helpers, shared by its single cases
(kafka.py) and its request sequences (kafka_machine.py)."""

from __future__ import annotations

import socket
import struct
import uuid
from typing import Any

from protoproxy_codecs.base import DecodeError

from .driver import Target

_I32 = struct.Struct(">i")
_RECV = 1 << 16


def jsonable(value: Any) -> Any:
    """A decoded field value as JSON: bytes as hex, UUIDs as text, sets as sorted lists."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return value


class Connection:
    """One blocking socket with a frame reader; `dirty` once it may not be reused."""

    def __init__(self, via: Target, timeout: float) -> None:
        self.via = via
        self.sock = socket.create_connection((via.host, via.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.dirty = False

    def send(self, chunk: bytes) -> None:
        self.sock.sendall(chunk)

    def read_frame(self) -> bytes | None:
        """The next frame without its size prefix; None when the peer closed first.
        TimeoutError when none comes within the socket's timeout."""
        buf = self.buf
        while True:
            if len(buf) >= 4:
                size = _I32.unpack_from(buf, 0)[0]
                if size < 0:
                    raise DecodeError(f"negative frame size {size}", "negative_size")
                if len(buf) >= 4 + size:
                    frame = bytes(buf[4 : 4 + size])
                    del buf[: 4 + size]
                    return frame
            chunk = self.sock.recv(_RECV)
            if not chunk:
                return None
            buf += chunk

    def close(self) -> None:
        self.dirty = True
        try:
            self.sock.close()
        except OSError:
            pass
