"""The lifecycle of one proxied connection, as data: states, events, one table.

A sans-IO core in the style of h11's ``_state.py``: `ConnectionMachine` owns
the lifecycle (the state, which direction has half-closed, a client EOF that
arrived before the upstream, why the connection ended) and answers each
`Event` with the `Command`s the socket-owning `Connection` executes. It never
touches a socket, a clock, a codec or a metric, so every transition can be
tested by feeding events and looking at the commands (tests/runtime).

Two things happen in parallel before the data path opens, and the states are
their product: choosing the codec (fixed by config, by ALPN, or sniffed from
the client's first bytes) and connecting upstream (started by ACCEPT_SNIFF
before the codec is known, so sniffing costs no round trip). `OPEN` means
both are done. Half-closes are per direction (`eof`), not states, because an
EOF can arrive in every phase (a server may close while a client is still
being sniffed) and each direction ends on its own.

The open data path never consults this table: `Connection.on_data` checks one
attribute (`server`) and relays. Only lifecycle edges go through `handle`.

A pair missing from `TRANSITIONS` is a bug, not bad input from a peer: it
raises `LifecycleError` after moving the machine to CLOSED with reason
``internal_error``, and the connection's crash boundary turns it into the
same log line, counter and close as any other unexpected exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from protoproxy_codecs.base import Direction

UPSTREAM = Direction.UPSTREAM
DOWNSTREAM = Direction.DOWNSTREAM


class State(enum.Enum):
    """Where a connection is; the value is what the admin API shows."""

    NEW = "new"  # accepted socket, nothing decided (instantaneous)
    HELLO = "hello"  # a TLS listener waits for the ClientHello (SNI routes)
    TLS_HANDSHAKE = "tls"  # terminating TLS with the client
    SNIFF = "sniff"  # codec unknown, upstream connecting
    SNIFF_CONNECTED = "sniff_connected"  # codec unknown, upstream ready
    CONNECTING = "connecting"  # codec known, upstream connecting
    OPEN = "open"  # the data path: codec and both sockets ready
    CLOSED = "closed"  # ending: sockets closing, nothing new starts
    FINISHED = "finished"  # both sockets gone, accounted for

    @property
    def label(self) -> str:
        """The state as reported before the table existed (admin API, logs)."""
        return "sniff" if self is State.SNIFF_CONNECTED else self.value


class Event(enum.Enum):
    """Something the socket side observed that may move the lifecycle."""

    ACCEPT = "accept"  # client socket up, fixed protocol (arg: protocol)
    ACCEPT_SNIFF = "accept_sniff"  # client socket up, protocol auto
    ACCEPT_TLS = "accept_tls"  # client socket up on a TLS listener
    HELLO_PASSTHROUGH = "hello_passthrough"  # ClientHello read, relay TLS as bytes
    HELLO_TERMINATE = "hello_terminate"  # ClientHello read, we terminate TLS
    TLS_READY = "tls_ready"  # client TLS done, codec known (arg: protocol)
    TLS_READY_SNIFF = "tls_ready_sniff"  # client TLS done, codec to be sniffed
    SNIFFED = "sniffed"  # codec decided from bytes (arg: protocol)
    UPSTREAM_READY = "upstream_ready"  # the connect (and its TLS) succeeded
    EOF_UPSTREAM = "eof_upstream"  # the client half-closed
    EOF_DOWNSTREAM = "eof_downstream"  # the server half-closed
    CLOSE = "close"  # a clean end (arg: reason)
    FAIL = "fail"  # an abnormal end (args: reason, detail, graceful)
    IDLE_TIMEOUT = "idle_timeout"  # no traffic for timeouts.idle
    HEADER_TIMEOUT = "header_timeout"  # a head / preface / header block past timeouts.header
    FRAME_TIMEOUT = "frame_timeout"  # a Kafka request frame past timeouts.frame
    MEMORY_SHED = "memory_shed"  # over limits.memory, and this connection held the most
    SOCKETS_GONE = "sockets_gone"  # both sockets' connection_lost came back


# -- commands: what the socket-owning side must do, in order ------------------------


@dataclass(frozen=True, slots=True)
class ChooseCodec:
    """Make the codec for `protocol` (observers may add filters)."""

    protocol: str


@dataclass(frozen=True, slots=True)
class Connect:
    """Start the upstream connect. The only place a connect starts."""


@dataclass(frozen=True, slots=True)
class StartTls:
    """Wrap the client socket in our server TLS and feed it the ClientHello."""


@dataclass(frozen=True, slots=True)
class Connected:
    """Install the upstream socket as an outlet and tell the observers."""


@dataclass(frozen=True, slots=True)
class DropUpstream:
    """An upstream that connected after the connection ended: close it."""


@dataclass(frozen=True, slots=True)
class FlushPending:
    """Relay the client bytes buffered before the path was ready."""


@dataclass(frozen=True, slots=True)
class ForwardEof:
    """Flush the codec for `direction`, pass the half-close on, close if both ended."""

    direction: Direction


@dataclass(frozen=True, slots=True)
class Close:
    """End the connection: close (`graceful`, flushing) or abort both sockets.

    `error` is True for an abnormal end, which gets one log line and one
    `protoproxy_connection_errors_total{reason}` count.
    """

    reason: str
    detail: str = ""
    graceful: bool = True
    error: bool = False


@dataclass(frozen=True, slots=True)
class Finish:
    """Account for the connection (endpoint, held exchanges, close observers)."""


Command = (
    ChooseCodec
    | Connect
    | StartTls
    | Connected
    | DropUpstream
    | FlushPending
    | ForwardEof
    | Close
    | Finish
)


class LifecycleError(Exception):
    """An event the table has no edge for in the current state: a proxy bug."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"event {event.value} is not valid in state {state.value}")
        self.state = state
        self.event = event


# -- THE table -------------------------------------------------------------------------

S, E = State, Event
#: limits crossed: abnormal ends whose reason is the event's value
_LIMITS = frozenset({E.IDLE_TIMEOUT, E.HEADER_TIMEOUT, E.FRAME_TIMEOUT, E.MEMORY_SHED})
_ENDINGS = {E.CLOSE: S.CLOSED, E.FAIL: S.CLOSED, **dict.fromkeys(_LIMITS, S.CLOSED)}

TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.NEW, E.ACCEPT): S.CONNECTING,
    (S.NEW, E.ACCEPT_SNIFF): S.SNIFF,
    (S.NEW, E.ACCEPT_TLS): S.HELLO,
    (S.HELLO, E.HELLO_PASSTHROUGH): S.CONNECTING,
    (S.HELLO, E.HELLO_TERMINATE): S.TLS_HANDSHAKE,
    (S.HELLO, E.EOF_UPSTREAM): S.CLOSED,  # client_closed_early
    (S.TLS_HANDSHAKE, E.TLS_READY): S.CONNECTING,
    (S.TLS_HANDSHAKE, E.TLS_READY_SNIFF): S.SNIFF,
    (S.TLS_HANDSHAKE, E.EOF_UPSTREAM): S.CLOSED,  # client_closed_early
    (S.SNIFF, E.SNIFFED): S.CONNECTING,
    (S.SNIFF, E.UPSTREAM_READY): S.SNIFF_CONNECTED,
    (S.SNIFF, E.EOF_UPSTREAM): S.CONNECTING,  # tcp; the EOF waits for the upstream
    (S.SNIFF, E.EOF_DOWNSTREAM): S.SNIFF,
    (S.SNIFF_CONNECTED, E.SNIFFED): S.OPEN,
    (S.SNIFF_CONNECTED, E.EOF_UPSTREAM): S.OPEN,  # tcp, then the EOF
    (S.SNIFF_CONNECTED, E.EOF_DOWNSTREAM): S.SNIFF_CONNECTED,
    (S.CONNECTING, E.UPSTREAM_READY): S.OPEN,
    (S.CONNECTING, E.EOF_UPSTREAM): S.CONNECTING,  # early EOF: passed on once ready
    (S.CONNECTING, E.EOF_DOWNSTREAM): S.CONNECTING,
    (S.OPEN, E.EOF_UPSTREAM): S.OPEN,
    (S.OPEN, E.EOF_DOWNSTREAM): S.OPEN,
    (S.CLOSED, E.SOCKETS_GONE): S.FINISHED,
}
for _s in (S.NEW, S.HELLO, S.TLS_HANDSHAKE, S.SNIFF, S.SNIFF_CONNECTED, S.CONNECTING, S.OPEN):
    for _e, _to in _ENDINGS.items():
        TRANSITIONS[(_s, _e)] = _to
# Ending is absorbing: late callbacks (a connect that finishes after the client
# left, an EOF racing the close) are normal and change nothing.
for _e in Event:
    TRANSITIONS.setdefault((S.CLOSED, _e), S.CLOSED)
    TRANSITIONS[(S.FINISHED, _e)] = S.FINISHED
del _s, _e, _to

#: the states a connection can end from (every state but the two endings)
LIVE = frozenset(s for s in State if s not in (S.CLOSED, S.FINISHED))


@dataclass(slots=True)
class Budgets:
    """Per-connection deadlines and budgets: their one home.

    Owned by the machine so that crossing one is an event (HEADER_TIMEOUT,
    FRAME_TIMEOUT, MEMORY_SHED, like IDLE_TIMEOUT) that the table turns into
    a Close. The open data path pays one comparison per read (`sample_at`);
    the rest is written by the memory accountant (protoproxy.memory) and the
    deadline sweep (protoproxy.deadlines), never per byte.
    """

    #: bytes read (both directions) at which the read path samples `held` next
    sample_at: int = 0
    #: bytes this connection held at its last sample (codec, pending, write buffers)
    held: int = 0
    #: reads paused by the memory accountant (resumed once under its low-water mark)
    paused: bool = False
    #: ns (now_ns) the sweep first saw an unfinished unit whose start the codec
    #: does not know (the HTTP/2 preface); 0 when there is none
    unfinished_seen: int = 0
    #: flood counters (frames per second and the like) join here


@dataclass(slots=True)
class ConnectionMachine:
    """A connection's lifecycle state and the flags the table needs beside it."""

    state: State = State.NEW
    #: by Direction: that direction's sender half-closed and it was passed on
    eof: list[bool] = field(default_factory=lambda: [False, False])
    #: the client half-closed before the upstream was ready: passed on after
    early_eof: bool = False
    #: TLS from the client is relayed as bytes (SNI routing only)
    passthrough: bool = False
    #: why the connection ended; None while live
    end_reason: str | None = None
    budgets: Budgets = field(default_factory=Budgets)

    def handle(
        self,
        event: Event,
        protocol: str = "",
        reason: str = "",
        detail: str = "",
        graceful: bool = False,
    ) -> list[Command]:
        """Take `event`; return the commands to execute, in order."""
        before = self.state
        after = TRANSITIONS.get((before, event))
        if after is None:
            self.crash()
            raise LifecycleError(before, event)
        self.state = after
        if before is S.CLOSED or before is S.FINISHED:
            if event is E.SOCKETS_GONE and before is S.CLOSED:
                return [Finish()]
            if event is E.UPSTREAM_READY:
                return [DropUpstream()]
            return []
        if after is S.CLOSED:
            return self._ending(before, event, reason, detail, graceful)
        return self._step(before, event, protocol)

    def _step(self, before: State, event: Event, protocol: str) -> list[Command]:
        if event is E.ACCEPT or event is E.TLS_READY:
            return [ChooseCodec(protocol), Connect()]
        if event is E.ACCEPT_SNIFF or event is E.TLS_READY_SNIFF:
            return [Connect()]
        if event is E.HELLO_PASSTHROUGH:
            self.passthrough = True
            return [ChooseCodec("tcp"), Connect()]
        if event is E.HELLO_TERMINATE:
            return [StartTls()]
        if event is E.ACCEPT_TLS:
            return []  # the ClientHello decides
        if event is E.SNIFFED:
            if self.state is S.OPEN:
                return [ChooseCodec(protocol), FlushPending()]
            return [ChooseCodec(protocol)]
        if event is E.UPSTREAM_READY:
            if self.state is S.SNIFF_CONNECTED:
                return [Connected()]
            out: list[Command] = [Connected(), FlushPending()]
            if self.early_eof:
                self.early_eof = False
                out.extend(self._eof(UPSTREAM))
            return out
        if event is E.EOF_DOWNSTREAM:
            return self._eof(DOWNSTREAM)
        if event is E.EOF_UPSTREAM:
            if before is S.SNIFF:
                self.early_eof = True  # EOF before enough bytes to sniff
                return [ChooseCodec("tcp")]
            if before is S.CONNECTING:
                self.early_eof = True
                return []
            if before is S.SNIFF_CONNECTED:
                return [ChooseCodec("tcp"), *self._eof(UPSTREAM)]
            return self._eof(UPSTREAM)
        raise AssertionError(f"{event} in {before} has an edge but no action")  # pragma: no cover

    def _eof(self, direction: Direction) -> list[Command]:
        if self.eof[direction]:
            return []
        self.eof[direction] = True
        if direction is UPSTREAM:
            return [FlushPending(), ForwardEof(UPSTREAM)]
        return [ForwardEof(DOWNSTREAM)]

    def _ending(
        self, before: State, event: Event, reason: str, detail: str, graceful: bool
    ) -> list[Command]:
        if event is E.EOF_UPSTREAM:  # in HELLO / TLS_HANDSHAKE
            reason, detail, graceful = (
                "client_closed_early",
                "client closed before the TLS handshake",
                False,
            )
            event = E.FAIL
        elif event in _LIMITS:
            reason, event = event.value, E.FAIL
        self.end_reason = reason or ("done" if event is E.CLOSE else "internal_error")
        if event is E.CLOSE:
            return [Close(self.end_reason, detail, graceful=True, error=False)]
        return [Close(self.end_reason, detail, graceful=graceful, error=True)]

    def crash(self) -> list[Command]:
        """Force CLOSED with reason ``internal_error`` (the crash boundary's exit).

        Returns a graceful Close, so an error reply already written is flushed;
        it is not an `error` Close because the crash boundary logs and counts.
        """
        if self.state is S.FINISHED:
            return []
        self.state = S.CLOSED
        if self.end_reason is None:
            self.end_reason = "internal_error"
        return [Close(self.end_reason, graceful=True)]

    @property
    def live(self) -> bool:
        return self.state in LIVE
