"""The codec interface every protocol implements.

Codecs are sans-IO: bytes in, messages out; messages in, bytes out. The runtime
owns sockets, timers and the event loop; a codec only owns parse state. This is
what lets hypothesis drive every codec directly, with any chunking, and what
lets the same codec serve the proxy and the fake services in the testbed.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable


class DecodeError(Exception):
    """Bytes that the codec cannot parse.

    `reason` is a short, stable token for metrics (``frame_too_large``,
    ``bad_preface``...); the message is for humans and the log.
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class Direction(enum.IntEnum):
    """Which way bytes travel. Requests go upstream, responses downstream."""

    UPSTREAM = 0  # client -> proxy -> server
    DOWNSTREAM = 1  # server -> proxy -> client

    @property
    def other(self) -> Direction:
        return Direction(1 - self)


UPSTREAM = Direction.UPSTREAM
DOWNSTREAM = Direction.DOWNSTREAM


class Sniff(enum.Enum):
    YES = "yes"
    NO = "no"
    NEED_MORE = "need_more"


class Message:
    """One complete protocol unit, ready to forward.

    `raw` is exactly the bytes read from the wire; the transparent path writes
    `raw` and nothing else. `info` is the cheap decoded view the codec fills in
    while framing (api, stream id, method...). `view` is the expensive decode,
    computed lazily via `decode_view` only when someone asks (tail, faults).
    Plain ``__slots__`` class rather than a dataclass: this is built per message
    on the hot path.
    """

    __slots__ = ("_decode", "_view", "direction", "info", "key", "kind", "raw")

    def __init__(
        self,
        direction: Direction,
        kind: str,
        raw: bytes,
        key: Any = None,
        info: dict[str, Any] | None = None,
        decode: Callable[[], Any] | None = None,
    ) -> None:
        self.direction = direction
        self.kind = kind
        self.raw = raw
        self.key = key
        self.info = info
        self._decode = decode
        self._view: Any = None

    @property
    def view(self) -> Any:
        """The full decoded form, computed on first use (may be None)."""
        if self._view is None and self._decode is not None:
            self._view = self._decode()
            self._decode = None
        return self._view

    def __repr__(self) -> str:
        return (
            f"Message({self.direction.name}, {self.kind!r}, {len(self.raw)}B, "
            f"key={self.key!r}, info={self.info!r})"
        )


@dataclass(slots=True)
class Exchange:
    """A request paired with its response: the unit stats and the access log use.

    For gRPC an Exchange is one call; `counts` then holds message counts and
    bytes per direction. `status` is protocol-specific: a Kafka error name, a
    gRPC status name, an HTTP status code as a string.
    """

    protocol: str
    operation: str  # "Produce v9", "/pkg.Svc/Method", "GET /path"
    started: float  # monotonic clock, seconds
    finished: float
    status: str = "OK"
    request_bytes: int = 0
    response_bytes: int = 0
    key: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a peer can make a codec hold."""

    max_message_size: int = 16 * 1024 * 1024
    max_pending: int = 4096  # outstanding correlations / open streams
    max_header_list_size: int = 256 * 1024


Clock = Callable[[], float]


@runtime_checkable
class Codec(Protocol):
    """One instance per proxied connection; it sees both directions."""

    name: ClassVar[str]

    @classmethod
    def sniff(cls, head: bytes) -> Sniff: ...

    def feed(self, direction: Direction, data: bytes) -> list[Message]:
        """Consume bytes (any chunking) and return the messages now complete.

        Raises DecodeError on bytes it cannot parse; after that the codec is
        unusable for this connection.
        """
        ...

    def eof(self, direction: Direction) -> list[Message]:
        """The peer half-closed: flush what EOF completes (close-delimited bodies)."""
        ...

    def encode(self, message: Message) -> bytes: ...

    def take_exchanges(self) -> list[Exchange]:
        """Exchanges completed since the last call (usually empty)."""
        ...

    def error_reply(self, direction: Direction, error: DecodeError) -> tuple[bytes, bytes]:
        """Bytes to send (toward the sender of `direction`, toward its peer) before closing.

        This is how a bad frame ends a connection "in the protocol's own way":
        GOAWAY for HTTP/2, a 400 for an HTTP/1 request, nothing for Kafka/TCP.
        """
        ...


class BaseCodec:
    """Defaults shared by codecs; subclasses override what they need."""

    name: ClassVar[str] = "base"

    def __init__(self, limits: Limits | None = None, clock: Clock = time.monotonic) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.exchanges: list[Exchange] = []

    @classmethod
    def sniff(cls, head: bytes) -> Sniff:
        return Sniff.NO

    def eof(self, direction: Direction) -> list[Message]:
        return []

    def encode(self, message: Message) -> bytes:
        return message.raw

    def take_exchanges(self) -> list[Exchange]:
        if not self.exchanges:
            return self.exchanges
        done = self.exchanges
        self.exchanges = []
        return done

    def error_reply(self, direction: Direction, error: DecodeError) -> tuple[bytes, bytes]:
        return b"", b""
