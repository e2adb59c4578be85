"""The codec interface every protocol implements.

Codecs are sans-IO: bytes in, messages out; messages in, bytes out. The runtime
owns sockets, timers and the event loop; a codec only owns parse state. This is
what lets hypothesis drive every codec directly, with any chunking.

Codecs serve the proxy. The testbed's fake services do not run them: they read
and write frames with the framing layers underneath (for Kafka,
``protoproxy_codecs.kafka.framing`` and ``schema``), as a server would, since
a codec's job (pairing, Exchanges, redaction) is an observer's.
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


#: The clock of every Exchange stamp: integer nanoseconds, monotonic.
#:
#: ``time.perf_counter_ns`` rather than ``time.monotonic_ns``: on Linux both
#: read CLOCK_MONOTONIC (1 ns resolution, about 50 ns a call, the same as
#: uvloop's ``loop.time()``), but perf_counter is the clock Python documents as
#: the highest-resolution one for short durations on every platform (on Windows
#: before Python 3.13 ``monotonic`` ticks every 15.6 ms). It is system-wide, so
#: stamps from different codecs and the runtime compare. The event loop's clock
#: (whole milliseconds under uvloop) serves timers only. Reading a clock is not
#: I/O: codecs stay sans-IO, and tests pass their own clock.
now_ns: Callable[[], int] = time.perf_counter_ns

NS = 1_000_000_000  # nanoseconds per second

_new = object.__new__


@dataclass(slots=True, kw_only=True)
class Exchange:
    """A request paired with its response: the unit stats and the access log use.

    For gRPC an Exchange is one call; `counts` then holds message counts and
    bytes per direction. `status` is protocol-specific: a Kafka error name, a
    gRPC status name, an HTTP status code as a string.

    Every stamp is an int from the codec's clock (`now_ns`: nanoseconds, one
    monotonic clock for the whole process); every duration is an int of
    nanoseconds. A codec creates the Exchange when the request's first byte is
    read and stamps it as its messages pass (see `BaseCodec.touch`); the
    runtime moves the write stamps to when the bytes really left
    (`BaseCodec.written`). docs/access-log.md#timings has the diagram.
    """

    protocol: str
    operation: str  # "Produce v9", "/pkg.Svc/Method", "GET /path"
    #: the request's first byte read
    started: int = 0
    #: the exchange's last byte written (normally the response's; for a request
    #: that gets no response, the request's)
    finished: int = 0
    status: str = "OK"
    request_bytes: int = 0
    response_bytes: int = 0
    key: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: the request's last byte written upstream
    request_written: int = 0
    #: the response's first byte read; 0 while (or if) there is none
    response_started: int = 0
    #: ns the exchange's bytes spent inside the proxy (read to written), summed
    #: over the reads that carried them; fault holds are left out
    proxy_time: int = 0
    #: ns its bytes were held by fault delays (message delays, stream toxics)
    fault_delay: int = 0
    #: ns the upstream connection took to connect (and handshake TLS), on the
    #: first exchange a connection reports; None on later ones (the connection
    #: was reused) and outside the proxy
    upstream_connect: int | None = None
    #: the codec's feed count when this exchange was last touched (dedupes
    #: touches from several messages of one read)
    fed: int = field(default=-1, repr=False, compare=False)

    @classmethod
    def begin(cls, protocol: str, operation: str, key: Any, started: int) -> Exchange:
        """A new exchange as codecs open one, at its request's first byte.

        Equal to ``Exchange(protocol=..., operation=..., key=..., started=...)``
        (a test holds the two together field by field), at about a third of
        the cost: a class call with keywords into the dataclass's 15-parameter
        ``__init__`` takes ~0.4 µs, which every gRPC call and HTTP/2 request pays.
        """
        ex = _new(cls)
        ex.protocol = protocol
        ex.operation = operation
        ex.started = started
        ex.finished = 0
        ex.status = "OK"
        ex.request_bytes = 0
        ex.response_bytes = 0
        ex.key = key
        ex.attrs = {}
        ex.request_written = 0
        ex.response_started = 0
        ex.proxy_time = 0
        ex.fault_delay = 0
        ex.upstream_connect = None
        ex.fed = -1
        return ex

    @property
    def duration(self) -> int:
        """ns from the request's first byte read to the exchange's last byte written."""
        return self.finished - self.started

    @property
    def request_duration(self) -> int:
        """ns from the request's first byte read to its last byte written upstream."""
        return max(self.request_written - self.started, 0)

    @property
    def upstream_service_time(self) -> int | None:
        """ns from the request's last byte written to the response's first byte read.

        None without a response; 0 when the response began before the request
        ended (streaming calls, early HTTP/1 responses).
        """
        if not self.response_started:
            return None
        return max(self.response_started - self.request_written, 0)

    @property
    def response_duration(self) -> int | None:
        """ns from the response's first byte read to its last byte written downstream."""
        if not self.response_started:
            return None
        return max(self.finished - self.response_started, 0)


class FloodError(DecodeError):
    """Well-formed bytes sent at a cost the proxy refuses to bear.

    Each frame is valid; the pattern is the attack (HTTP/2 rapid reset, PING
    or CONTINUATION floods, HPACK amplification). The connection ends like
    for any DecodeError (the protocol's goodbye, e.g. GOAWAY
    ENHANCE_YOUR_CALM), and the runtime also counts it as a flood.
    """


@dataclass(frozen=True, slots=True)
class Http2FloodLimits:
    """Rates and ratios past which an HTTP/2 peer is taken for an attacker.

    Defaults sit near Envoy's and HAProxy's (docs/security.md#http2-floods-what-the-proxy-refuses). A zero
    turns a rule off.
    """

    #: premature resets (RST_STREAM from the client before any response byte)
    #: allowed per stream the client opened, once `reset_check_after` were opened
    max_reset_ratio: float = 0.5
    reset_check_after: int = 100
    #: PING, SETTINGS, WINDOW_UPDATE, PRIORITY, empty DATA, empty CONTINUATION
    #: a sender may send per second (token bucket; bursts of one second's worth)
    control_frames_per_s: int = 20000
    #: CONTINUATION frames in one header block
    max_continuations: int = 64
    #: decoded header bytes (RFC 7541 sizes) a sender may make the proxy produce
    #: per second (token bucket; bursts of one second's worth)
    header_bytes_per_s: int = 64 * 1024 * 1024
    #: new streams one read (one `feed`) may open
    max_requests_per_read: int = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a peer can make a codec hold."""

    max_message_size: int = 16 * 1024 * 1024
    max_pending: int = 4096  # outstanding correlations / open streams
    max_header_list_size: int = 256 * 1024
    http2: Http2FloodLimits = Http2FloodLimits()


#: A codec's clock: integer nanoseconds, monotonic (`now_ns` unless a test passes one).
Clock = Callable[[], int]


@runtime_checkable
class Codec(Protocol):
    """One instance per proxied connection; it sees both directions."""

    name: ClassVar[str]
    #: exchanges the current feed's messages belong to (see BaseCodec.touch)
    touched: list[Exchange]

    @classmethod
    def sniff(cls, head: bytes) -> Sniff: ...

    def feed(self, direction: Direction, data: bytes, at: int = 0) -> list[Message]:
        """Consume bytes (any chunking) and return the messages now complete.

        `at` is when the bytes were read (the codec's clock); 0 means now.
        Raises DecodeError on bytes it cannot parse; after that the codec is
        unusable for this connection.
        """
        ...

    def written(self, at: int, sent: int = 0) -> list[Exchange]:
        """The messages of the last `feed` were written by `at`: stamp their exchanges.

        `at` is read after the write and ends the feed's proxy time (and a
        response's `finished`); `sent`, read just before handing requests to
        the socket, is their `request_written` (0: use `at`), so that the
        upstream's service time can never start after the upstream got the
        bytes, whatever preempts the proxy between the write and its clock
        reading. Returns the exchanges touched by that feed (for a caller that
        learns later that the bytes were held, see `BaseCodec.held`).
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

    def internal_error_reply(self) -> tuple[bytes, bytes]:
        """Bytes to send (toward the client, toward the server) when the proxy itself failed.

        The runtime's crash boundary sends them before closing: GOAWAY
        INTERNAL_ERROR for HTTP/2 and gRPC, a 500 for HTTP/1 while a request
        waits and no response has started, nothing for Kafka/TCP. The codec
        may be in any state (it may be what raised), so this must only read it.
        """
        ...


class BaseCodec:
    """Defaults shared by codecs; subclasses override what they need."""

    name: ClassVar[str] = "base"

    def __init__(self, limits: Limits | None = None, clock: Clock = now_ns) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.exchanges: list[Exchange] = []
        #: exchanges whose messages the current feed carried, each once
        self.touched: list[Exchange] = []
        #: when the current feed's bytes were read (proxy_time runs from here)
        self.read_at = 0
        #: when the first of them was read: `feed`'s `at`, else `read_at`
        self.first_read = 0
        #: feeds so far (an Exchange's `fed` says which feed touched it last)
        self.feeds = 0
        self.fed_direction = UPSTREAM

    def _begin(self, direction: Direction, at: int) -> int:
        """Start a feed: stamp its read time; returns `first_read`.

        Codecs call this first in `feed`. `at` (bytes that waited, e.g. for the
        upstream connection) moves where the exchange starts, not where its
        proxy time starts: that wait is not the proxy's work. A driver that
        never calls `written` (the testbed's fakes, tests) keeps the
        provisional stamps `touch` made, so `touched` is simply dropped.
        """
        now = self.read_at = self.clock()
        self.fed_direction = direction
        self.feeds += 1
        if self.touched:
            self.touched = []
        if at:
            now = at
        self.first_read = now
        return now

    def touch(self, ex: Exchange, direction: Direction) -> None:
        """`ex` has a message in the current feed: count it once per feed.

        Stamps provisionally with the read time; `written` moves the stamp to
        the write time when the runtime reports it.
        """
        if ex.fed != self.feeds:
            ex.fed = self.feeds
            self.touched.append(ex)
            if direction:
                ex.finished = self.read_at
            else:
                ex.request_written = ex.finished = self.read_at

    def written(self, at: int, sent: int = 0) -> list[Exchange]:
        touched = self.touched
        if not touched:
            return touched
        self.touched = []
        spent = at - self.read_at
        if self.fed_direction:
            for ex in touched:
                ex.proxy_time += spent
                ex.finished = at
        else:
            sent = sent or at
            for ex in touched:
                ex.proxy_time += spent
                ex.request_written = sent
                ex.finished = at
        return touched

    @staticmethod
    def held(touched: list[Exchange], direction: Direction, since: int, until: int) -> None:
        """Bytes written at `since` were held by a fault until `until`: a fault delay."""
        delay = until - since
        if direction:
            for ex in touched:
                ex.fault_delay += delay
                ex.finished = until
        else:
            for ex in touched:
                ex.fault_delay += delay
                ex.request_written = ex.finished = until

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

    def internal_error_reply(self) -> tuple[bytes, bytes]:
        return b"", b""

    # -- what the runtime's memory budget and deadlines read (never per byte) ----

    def buffered(self) -> int:
        """Bytes held for units not complete yet (heads, frames, header blocks).

        The runtime's memory accountant reads this when it samples a
        connection (every 64 KiB read, and on its periodic sweep), so codecs
        answer from lengths they keep anyway instead of counting per byte.
        """
        return 0

    def unfinished(self) -> tuple[str, int] | None:
        """What the client started and has not finished, and since when.

        ``("header", since)`` for a request head, the HTTP/2 client preface and
        first SETTINGS, or an HTTP/2 header block; ``("frame", since)`` for a
        Kafka request frame. `since` is the codec clock when its first byte was
        read, 0 when the codec does not know (the runtime then counts from when
        its sweep first saw it). None when nothing is unfinished. Only the
        client is held to deadlines: a slow server is the idle timeout's job.
        """
        return None

    def release(self) -> None:
        """The connection ended: drop the bytes of unfinished units now.

        A connection and its sockets reference each other, so without this a
        dead connection's buffers (a 16 MiB partial Kafka frame) would wait
        for the cycle collector, which counts objects, not bytes.
        """

    def limit_reply(self, reason: str) -> tuple[bytes, bytes]:
        """Bytes to send (toward the client, toward the server) before a limit closes.

        `reason` is ``header_timeout``, ``frame_timeout`` or ``memory_shed``:
        HTTP/1 answers 408 / 503 while it may, HTTP/2 sends GOAWAY
        ENHANCE_YOUR_CALM to the client; Kafka and TCP only close.
        """
        return b"", b""
