"""One proxied connection: two Sides, a codec, and the path between them.

Bytes read on a Side go through `codec.feed()`; the messages it returns go
through the filter chain and their `raw` bytes are written to the other Side.
With no filter acting, what is written equals what was read, in order, with
half-closes kept. Backpressure is the transports' own: when one Side's write
buffer passes its high-water mark, the other Side stops reading.

Time: exchanges are stamped from one nanosecond clock (`now_ns`, an int); the
codec stamps the read time once per `feed`, and the relay takes one reading
after writing and hands it to the codec once per relay call (`written`), not
per message. When a fault stage holds the bytes, the hold is measured with
`Outlet.when_sent` and reported as `fault_delay` (docs/access-log.md#timings).
The loop's clock serves timers only.

Lifecycle: setup, half-closes and the end are edges of the table in
`connection_state` (a sans-IO machine); this module executes its commands.
The one place that catches any exception (THE crash boundary) is `Side`'s
asyncio callbacks and `Connection._connect_task`: see `Connection.crashed`.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from protoproxy_codecs import registry
from protoproxy_codecs.base import (
    BaseCodec,
    Codec,
    DecodeError,
    Direction,
    Exchange,
    FloodError,
    Http2FloodLimits,
    Message,
    Sniff,
    now_ns,
)
from protoproxy_codecs.base import Limits as CodecLimits
from protoproxy_codecs.tls import parse_client_hello

from .connection_state import (
    LIVE,
    ChooseCodec,
    Close,
    Command,
    Connect,
    Connected,
    ConnectionMachine,
    DropUpstream,
    Event,
    Finish,
    FlushPending,
    ForwardEof,
    StartTls,
    State,
)
from .pipeline import is_opaque
from .side import Role, Side
from .tls import TlsError
from .upstream import ConnectError

__all__ = ["Connection", "Filter", "Outlet", "Role", "Side"]

if TYPE_CHECKING:
    from .config import Http2Limits
    from .listener import ListenerRuntime
    from .proxy import Proxy
    from .upstream import Cluster, Endpoint

log = logging.getLogger("protoproxy.connection")

UPSTREAM = Direction.UPSTREAM
DOWNSTREAM = Direction.DOWNSTREAM
SNIFF_LIMIT = 64 * 1024  # bytes buffered while deciding protocol / route
_ids = itertools.count(1)


class Filter(Protocol):
    """A stage of the message path (stats, routing data, faults, rewrites).

    Returns the messages to forward, in order: the same list when it does not
    act. Filters run in their slot order (`protoproxy.pipeline.FilterSlot`).
    """

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]: ...


class Outlet(Protocol):
    """Where one direction's bytes go: a Side, or a fault stage in front of it.

    Stream toxics wrap a direction's outlet (delay, throttle, slice, cut) and
    unwrap it when removed, so live connections keep flowing.
    """

    def write(self, data: bytes) -> None: ...

    def writelines(self, chunks: list[bytes]) -> None: ...

    def write_eof(self) -> None: ...

    def when_sent(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the bytes written so far have left for the socket.

        Never called if those bytes are dropped (a toxic, the connection ending)
        first: that is how per-message accounting learns what was delivered.
        """


class ChainedOutlet(Outlet, Protocol):
    """An outlet in front of another one: a fault stage (`Connection.attach_stage`)."""

    next: Outlet | None


class Connection:
    """The pairing of a downstream client socket with one upstream socket.

    The lifecycle is `machine` (protoproxy.connection_state): every edge is an
    event handed to it, and this class executes the commands it answers with
    (`_run`). The open data path (`on_data`) does not go through it.
    """

    def __init__(self, proxy: Proxy, listener: ListenerRuntime) -> None:
        self.id = next(_ids)
        self.proxy = proxy
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.last_activity = self.started
        self.client: Side | None = None
        self.server: Side | None = None
        self.cluster: Cluster | None = None
        self.endpoint: Endpoint | None = None
        self.codec: Codec | None = None
        self.protocol = "-"
        self.sni: str | None = None
        self.alpn: str | None = None
        self.bytes = [0, 0]  # by Direction
        #: the message path (protoproxy.pipeline), and each filter's FilterSlot
        self.filters: list[Filter] = []
        self.filter_slots: list[int] = []
        #: by Direction: where that direction's bytes are written (see Outlet)
        self.outlets: list[Outlet | None] = [None, None]
        self.pending: list[bytes] = []  # client bytes that arrived before the upstream
        self.pending_size = 0
        self.pending_at = 0  # when the first of them was read (now_ns)
        #: batches of exchanges whose bytes a fault stage still holds
        self.held: list[_Held] = []
        #: ns the upstream connect (and TLS handshake) took; None until connected,
        #: and again once the first exchange carries it
        self.upstream_connect: int | None = None
        self.head = b""  # bytes buffered while sniffing the ClientHello / protocol
        self.machine = ConnectionMachine()
        #: the machine's deadlines and budgets (read by on_data: one lookup)
        self.budgets = self.machine.budgets
        #: no filter and an opaque codec: relay bytes without making Messages
        self.opaque = False
        self.extra: dict[str, Any] = {}
        self._setup: asyncio.Task[None] | None = None
        #: the upstream socket between a successful connect and `Connected`
        self._arrived: tuple[Side, Endpoint] | None = None
        self._crashed = False

    # -- the lifecycle, as the admin API and observers read it -----------------
    @property
    def state(self) -> str:
        return self.machine.state.label

    @property
    def end_reason(self) -> str | None:
        return self.machine.end_reason

    @property
    def eof(self) -> list[bool]:
        """By Direction: that direction's sender half-closed (and it was passed on)."""
        return self.machine.eof

    @property
    def passthrough(self) -> bool:
        return self.machine.passthrough

    def _handle(self, event: Event, **args: Any) -> None:
        self._run(self.machine.handle(event, **args))

    def _run(self, commands: list[Command]) -> None:
        """Execute the machine's commands in order.

        A command that ends the connection makes the rest moot: once the
        machine has ended, only the commands that account for the end run.
        """
        machine = self.machine
        for cmd in commands:
            kind = type(cmd)
            if machine.state not in LIVE and kind not in _AFTER_END:
                continue
            if kind is ChooseCodec:
                self._choose_codec(cast(ChooseCodec, cmd).protocol)
            elif kind is Connect:
                self._setup = self.loop.create_task(self._connect_task())
            elif kind is FlushPending:
                self._flush_pending()
            elif kind is ForwardEof:
                self._forward_eof(cast(ForwardEof, cmd).direction)
            elif kind is Connected:
                self._connected()
            elif kind is StartTls:
                self._start_tls()
            elif kind is Close:
                self._end(cast(Close, cmd))
            elif kind is DropUpstream:
                self._drop_upstream()
            elif kind is Finish:
                self._account()
            else:  # pragma: no cover - the Command union is closed
                raise AssertionError(f"unknown command {cmd!r}")

    # -- setup ---------------------------------------------------------------
    def accepted(self, side: Side) -> None:
        self.client = side
        self.outlets[DOWNSTREAM] = side
        self.proxy.connection_opened(self)  # may reject: the machine then ignores ACCEPT
        lst = self.listener
        if lst.tls_mode is not None:
            self._handle(Event.ACCEPT_TLS)  # wait for the ClientHello
        elif lst.config.protocol == "auto":
            self._handle(Event.ACCEPT_SNIFF)
        else:
            self._handle(Event.ACCEPT, protocol=lst.config.protocol)

    async def _connect_task(self) -> None:
        """The upstream connect, started by the `Connect` command only.

        The second half of THE crash boundary (the first is in `Side`): an
        unexpected exception here ends this connection as ``internal_error``.
        """
        try:
            await self._connect_upstream()
        except Exception as exc:
            self.crashed(exc)

    async def _connect_upstream(self) -> None:
        cluster = self.listener.route(self)
        if cluster is None:
            self.fail("no_route", f"no route for SNI {self.sni!r} and no default upstream")
            return
        self.cluster = cluster
        alpn = (self.alpn,) if self.alpn else ()
        try:
            up, endpoint = await cluster.connect(self, alpn)
        except ConnectError as exc:
            self.fail(exc.reason, str(exc))
            return
        self.upstream_ready(up, endpoint)

    def upstream_ready(self, up: Side, endpoint: Endpoint) -> None:
        """The connect (and its TLS handshake) to `endpoint` succeeded with `up`."""
        self._arrived = (up, endpoint)
        self._handle(Event.UPSTREAM_READY)

    def _connected(self) -> None:
        assert self._arrived is not None
        up, endpoint = self._arrived
        self._arrived = None
        self.server, self.endpoint = up, endpoint
        self.upstream_connect = up.connect_time
        self.outlets[UPSTREAM] = up
        self.proxy.upstream_connected(self)
        if up.eof_seen:
            self.on_eof(DOWNSTREAM)

    def _drop_upstream(self) -> None:
        """The client went away while we connected: that socket is not ours to keep."""
        assert self._arrived is not None
        up, endpoint = self._arrived
        self._arrived = None
        up.close()
        endpoint.active -= 1

    def _choose_codec(self, protocol: str) -> None:
        name = {"grpc": "http2", "auto": "tcp"}.get(protocol, protocol)
        cls = registry.get(name)
        limits = self.proxy.config.limits
        self.codec = cls(  # type: ignore[call-arg]
            limits=CodecLimits(
                max_message_size=limits.max_message_size,
                max_pending=limits.max_pending,
                http2=_flood_limits(limits.http2),
            ),
            clock=now_ns,
        )
        self.protocol = name
        self.filters = self.proxy.pipeline.build_filters(self, self.filter_slots)
        self.proxy.codec_chosen(self)
        # Opaque codecs with no filter skip Message creation entirely.
        self.opaque = is_opaque(cls, self.filters)

    def downstream_tls_ready(self, side: Side) -> None:
        assert side.tls is not None
        self.alpn = side.tls.alpn
        proto = self.listener.config.protocol
        if proto == "auto" and self.alpn == "h2":
            self._handle(Event.TLS_READY, protocol="http2")
        elif proto == "auto" and self.alpn == "http/1.1":
            self._handle(Event.TLS_READY, protocol="http")
        elif proto != "auto":
            self._handle(Event.TLS_READY, protocol=proto)
        else:
            self._handle(Event.TLS_READY_SNIFF)
            if self.pending:  # plaintext that came with the client's Finished
                self._sniff()

    # -- the data path -----------------------------------------------------------
    def on_data(self, direction: Direction, data: bytes) -> None:
        self.last_activity = self.loop.time()
        counts = self.bytes
        counts[direction] += len(data)
        if counts[0] + counts[1] >= self.budgets.sample_at:
            self.proxy.memory.sample(self, direction)  # every 64 KiB (opaque: 1 MiB) read
        codec = self.codec
        if codec is not None and self.server is not None:
            if self.opaque:
                self.outlets[direction].write(data)  # type: ignore[union-attr]
                return
            self._relay(direction, data)
            return
        self._early(direction, data)

    def _relay(self, direction: Direction, data: bytes, at: int = 0) -> None:
        codec = self.codec
        assert codec is not None
        try:
            messages = codec.feed(direction, data, at)
        except DecodeError as exc:
            self.decode_failed(direction, exc)
            return
        sent = 0
        if messages:
            for f in self.filters:
                messages = f.on_messages(self, direction, messages)
                if not messages:
                    break
            if messages:
                if not direction:  # requests: handed to the upstream from here on
                    sent = now_ns()
                self.send(direction, messages)
        if codec.touched:
            # One clock reading per relay call (two for requests): the write
            # stamp of every exchange this read carried.
            t = now_ns()
            out = self.outlets[direction]
            if out is None or type(out) is Side or not getattr(out, "busy", False):
                codec.written(t, sent)
            else:  # a fault stage holds the bytes: report once they leave
                self._hold(direction, codec.written(t), codec.take_exchanges(), t, out)
                return
        exchanges = codec.take_exchanges()
        if exchanges:
            self.report(exchanges)

    def _hold(
        self,
        direction: Direction,
        touched: list[Exchange],
        exchanges: list[Exchange],
        since: int,
        out: Outlet,
    ) -> None:
        # take_exchanges() gives the codec's own list when it is empty: not ours to keep
        held = _Held(self, direction, touched, exchanges if exchanges else [], since)
        self.held.append(held)
        out.when_sent(held.release)

    def report(self, exchanges: list[Exchange]) -> None:
        """Hand completed exchanges to the observers; the first carries upstream_connect."""
        if self.upstream_connect is not None:
            exchanges[0].upstream_connect = self.upstream_connect
            self.upstream_connect = None  # later exchanges reuse the connection
        self.proxy.exchanges_done(self, exchanges)

    def send(self, direction: Direction, messages: list[Message]) -> None:
        """Write messages toward the receiver of `direction`."""
        out = self.outlets[direction]
        if out is None:
            return
        if len(messages) == 1:
            out.write(messages[0].raw)
        else:
            out.writelines([m.raw for m in messages])

    def send_raw(self, direction: Direction, data: bytes) -> None:
        """Write bytes toward the receiver of `direction` (injection, rewrites)."""
        out = self.outlets[direction]
        if out is not None:
            out.write(data)

    def _early(self, direction: Direction, data: bytes) -> None:
        """Bytes before the path is set up: ClientHello, sniffing, or a slow upstream."""
        machine = self.machine
        state = machine.state
        if state not in LIVE:
            return  # the connection ended; what was still in flight goes nowhere
        if state is State.HELLO and direction is UPSTREAM:
            self.head += data
            self._on_hello()
            return
        if direction is DOWNSTREAM:
            # The server spoke first: nothing to sniff from the client, so tcp.
            if self.codec is None:
                protocol = self.listener.config.protocol if machine.passthrough else "tcp"
                self._handle(Event.SNIFFED, protocol=protocol)
            self._flush_pending()
            self._relay(direction, data)
            return
        if not self.pending:
            self.pending_at = now_ns()
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > SNIFF_LIMIT and self.client is not None:
            self.client.pause_reading()  # bounded until the upstream is ready
        if self.codec is None and state in _SNIFFING:
            self._sniff()
            return
        if self.server is not None:
            self._flush_pending()

    def _sniff(self) -> None:
        """Pick the codec from the client bytes so far, once they tell (or fill the limit)."""
        head = b"".join(self.pending)
        name, verdict = registry.sniff(head)
        if verdict is Sniff.NEED_MORE and len(head) < SNIFF_LIMIT:
            return
        # With the upstream ready this opens the path and flushes.
        self._handle(Event.SNIFFED, protocol=name if name not in (None, "tls") else "tcp")

    def _flush_pending(self) -> None:
        if not self.pending or self.server is None or self.codec is None:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_size = 0
        if self.client is not None:
            self.client.resume_reading()
        if self.opaque:
            self.outlets[UPSTREAM].write(data)  # type: ignore[union-attr]
        else:
            self._relay(UPSTREAM, data, self.pending_at)

    def _on_hello(self) -> None:
        try:
            hello = parse_client_hello(self.head)
        except DecodeError as exc:
            self.proxy.metrics.tls_failures.inc((self.listener.name, "downstream", exc.reason))
            self.fail("tls_bad_client_hello", f"bad ClientHello: {exc}")
            return
        if hello is None:
            if len(self.head) > SNIFF_LIMIT:
                self.fail("tls_bad_client_hello", "ClientHello too large")
            return
        self.sni = hello.sni
        if self.listener.tls_mode == "passthrough":
            head, self.head = self.head, b""
            self.alpn = None
            self.pending.append(head)
            self.pending_size += len(head)
            self._handle(Event.HELLO_PASSTHROUGH)
            return
        if self.listener.route(self) is None:
            self.fail("no_route", f"no route for SNI {self.sni!r} and no default upstream")
            return
        self._handle(Event.HELLO_TERMINATE)

    def _start_tls(self) -> None:
        server = self.listener.server_tls
        assert server is not None and self.client is not None
        head, self.head = self.head, b""
        self.client.tls = server.engine()
        self.client.data_received(head)

    # -- half-close, backpressure, endings -------------------------------------
    def on_eof(self, direction: Direction) -> None:
        """The sender of `direction` half-closed: flush and pass the EOF on."""
        self._handle(Event.EOF_UPSTREAM if direction is UPSTREAM else Event.EOF_DOWNSTREAM)

    def _forward_eof(self, direction: Direction) -> None:
        codec = self.codec
        if codec is not None:
            try:
                rest = codec.eof(direction)
            except DecodeError as exc:
                self.decode_failed(direction, exc)
                return
            if rest:
                self.send(direction, rest)
            if codec.touched:
                codec.written(now_ns())
            exchanges = codec.take_exchanges()
            if exchanges:
                self.report(exchanges)
        out = self.outlets[direction]
        if out is not None:
            out.write_eof()
        self.outlet_drained()

    def outlet_drained(self) -> None:
        """Close once both directions ended and no outlet still holds bytes.

        A fault stage holding delayed bytes sets `busy` and calls this when it
        has written everything (EOF included).
        """
        eof = self.machine.eof
        if not (eof[UPSTREAM] and eof[DOWNSTREAM]):
            return
        if any(getattr(o, "busy", False) for o in self.outlets):
            return
        self.close("done")

    def backpressure(self, writer: Side, paused: bool) -> None:
        """`writer`'s buffer is full (or drained): stop (or resume) the other side's reads."""
        reader = self.client if writer is self.server else self.server
        if reader is None:
            return
        if paused:
            reader.pause_reading()
        else:
            reader.resume_reading()

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        if self.machine.state not in LIVE:
            self._finish()
            return
        which = "downstream" if side is self.client else "upstream"
        if exc is not None:
            self.fail(f"{which}_reset", f"{which} {side.peername} reset: {exc}")
            return
        eof = self.machine.eof
        if eof[UPSTREAM] and eof[DOWNSTREAM]:
            self.outlet_drained()  # closes now, or once a fault stage lets go
        elif side.eof_seen:
            # A clean close after EOF: the other direction may still drain.
            other = self.server if side is self.client else self.client
            if other is None or other.closed or other.eof_sent:
                self.close("done")
        else:
            self.fail(f"{which}_closed", f"{which} {side.peername} closed without a FIN")

    def tls_failed(self, side: Side, exc: TlsError) -> None:
        which = "downstream" if side is self.client else "upstream"
        self.proxy.metrics.tls_failures.inc((self.listener.name, which, exc.reason))
        if which == "upstream" and self.server is None:
            return  # the connect loop reports it
        self.fail(f"tls_{exc.reason}", f"{which} TLS failed: {exc}")

    def decode_failed(self, direction: Direction, exc: DecodeError) -> None:
        """A bad frame: answer in the protocol's own way, count, log, and close."""
        assert self.codec is not None
        if self.machine.end_reason is not None:
            return  # already ending (e.g. EOF after the bad frame): count it once
        self.proxy.metrics.decode_errors.inc((self.listener.name, self.protocol, exc.reason))
        if isinstance(exc, FloodError):
            self.proxy.metrics.http2_flood_closed.inc((self.listener.name, exc.reason))
        to_sender, to_peer = self.codec.error_reply(direction, exc)
        sender = self.client if direction is UPSTREAM else self.server
        peer = self.server if direction is UPSTREAM else self.client
        if to_sender and sender is not None:
            sender.write(to_sender)
        if to_peer and peer is not None:
            peer.write(to_peer)
        self.fail("decode_error", f"{self.protocol} decode error from {direction.name}: {exc}")

    def crashed(self, exc: BaseException) -> None:
        """THE crash boundary's handler: a bug ends this connection, and only it.

        Called by `Side`'s asyncio callbacks and the connect task with whatever
        escaped the connection. One ERROR log line with the traceback and one
        ``protoproxy_connection_errors_total{reason="internal_error"}`` per
        connection; the peers get the protocol's internal-error goodbye when
        the codec has one (HTTP/2 GOAWAY INTERNAL_ERROR, HTTP/1 500 if no
        response started), then both sockets close.
        """
        if self._crashed:
            return  # one log line and one count per connection
        self._crashed = True
        log.error(
            "conn %d listener=%s peer=%s upstream=%s ended: internal_error (%s: %s)",
            self.id,
            self.listener.name,
            self.client.peername if self.client else "-",
            self.endpoint.name if self.endpoint else "-",
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        self.proxy.metrics.connection_errors.inc((self.listener.name, "internal_error"))
        if self.machine.state in LIVE:
            self._internal_error_reply()
        self._run(self.machine.crash())

    def _internal_error_reply(self) -> None:
        codec = self.codec
        reply = getattr(codec, "internal_error_reply", None)
        if reply is None:
            return
        try:
            to_client, to_server = reply()
        except Exception:  # the codec may be what broke: then just close
            log.debug("conn %d: no internal error reply", self.id, exc_info=True)
            return
        if to_client and self.client is not None:
            self.client.write(to_client)
        if to_server and self.server is not None:
            self.server.write(to_server)

    def fail(self, reason: str, detail: str) -> None:
        """End abnormally: one log line and one counter per connection."""
        event = Event.IDLE_TIMEOUT if reason == "idle_timeout" else Event.FAIL
        self._handle(event, reason=reason, detail=detail, graceful=reason == "decode_error")

    def overstep(self, event: Event, detail: str, graceful: bool = True) -> None:
        """A limit ended the connection (protoproxy.deadlines, protoproxy.memory).

        The client gets the codec's `limit_reply` (HTTP/1 408 or 503, HTTP/2
        GOAWAY ENHANCE_YOUR_CALM) when there is a codec; `graceful` flushes it.
        """
        if self.machine.state not in LIVE:
            return
        reply = getattr(self.codec, "limit_reply", None)  # stand-in codecs may lack it
        if reply is not None and self.client is not None:
            to_client, to_server = reply(event.value)
            if to_client:
                self.client.write(to_client)
            if to_server and self.server is not None:
                self.server.write(to_server)
        self._handle(event, detail=detail, graceful=graceful)
        self.release_buffers()  # the goodbye is written: free the rest now

    def close(self, reason: str = "done") -> None:
        self._handle(Event.CLOSE, reason=reason)

    def _end(self, cmd: Close) -> None:
        if cmd.error:
            self.proxy.warnings.warning(  # rate-limited per (listener, reason): floods
                log,
                (self.listener.name, cmd.reason),
                "conn %d listener=%s peer=%s upstream=%s ended: %s (%s)",
                self.id,
                self.listener.name,
                self.client.peername if self.client else "-",
                self.endpoint.name if self.endpoint else "-",
                cmd.reason,
                cmd.detail,
            )
            self.proxy.metrics.connection_errors.inc((self.listener.name, cmd.reason))
        if self._setup is not None and not self._setup.done():
            self._setup.cancel()
        for side in (self.client, self.server):
            if side is None:
                continue
            if cmd.graceful:
                side.close()  # flushes what is buffered first
            else:
                side.abort()
        self._finish()

    def _finish(self) -> None:
        """Account for the connection once both sockets are really gone."""
        for side in (self.client, self.server):
            if side is not None and not side.closed:
                return  # its connection_lost comes back here
        self._handle(Event.SOCKETS_GONE)

    def _account(self) -> None:
        if self.endpoint is not None:
            self.endpoint.active -= 1
        while self.held:  # bytes a fault still held when the connection ended
            self.held[0].release()
        self.proxy.connection_closed(self)
        self.release_buffers()

    def release_buffers(self) -> None:
        """Drop what this connection buffers now, not when the cycle collector runs.

        The connection and its Sides reference each other; a dead one's codec
        buffers (up to a partial frame of max_message_size) would otherwise
        outlive it by seconds to minutes (issue 12).
        """
        self.pending.clear()
        self.pending_size = 0
        self.head = b""
        release = getattr(self.codec, "release", None)  # stand-in codecs may lack it
        if release is not None:
            release()

    # -- joining a live connection ---------------------------------------------------
    def add_filter(self, slot: int, f: Filter) -> None:
        """Put `f` on this live connection in its slot's place (a fault added at run
        time); the opaque fast path ends, since there is now a filter to feed."""
        at = bisect.bisect_right(self.filter_slots, slot)
        self.filters.insert(at, f)
        self.filter_slots.insert(at, slot)
        self.opaque = False

    def attach_stage(self, direction: Direction, stage: ChainedOutlet, outermost: bool) -> None:
        """Link a fault stage into `direction`'s outlets, live.

        Outermost: the first thing written to (the message-delay Gate, which
        the filter writes into). Otherwise innermost: after the stages already
        linked, next to the Side (Toxiproxy appends new toxics to the chain's end).
        """
        first = self.outlets[direction]
        if outermost or not _is_stage(first):
            stage.next = first
            self.outlets[direction] = stage
            return
        outer = cast(ChainedOutlet, first)
        while _is_stage(outer.next):
            outer = cast(ChainedOutlet, outer.next)
        stage.next = outer.next
        outer.next = stage

    def detach_stage(self, direction: Direction, stage: ChainedOutlet) -> None:
        """Unlink a stage (it has handed on what it held) and close if it held a close back."""
        prev = self.outlets[direction]
        if prev is stage:
            self.outlets[direction] = stage.next
        else:
            while _is_stage(prev):
                link = cast(ChainedOutlet, prev)
                if link.next is stage:
                    link.next = stage.next
                    break
                prev = link.next
        stage.next = None
        self.outlet_drained()

    @property
    def age(self) -> float:
        return self.loop.time() - self.started


_SNIFFING = frozenset({State.SNIFF, State.SNIFF_CONNECTED})
#: commands that still run once the connection has ended
_AFTER_END = frozenset({Close, Finish, DropUpstream})


def _flood_limits(cfg: Http2Limits) -> Http2FloodLimits:
    """The codec's copy of `limits.http2` (the codecs never import the config)."""
    return Http2FloodLimits(
        max_reset_ratio=cfg.max_reset_ratio,
        reset_check_after=cfg.reset_check_after,
        control_frames_per_s=cfg.control_frames_per_s,
        max_continuations=cfg.max_continuations,
        header_bytes_per_s=int(cfg.header_bytes_per_s),
        max_requests_per_read=cfg.max_requests_per_read,
    )


def _is_stage(outlet: Outlet | None) -> bool:
    """A stage links to a next outlet; the chain ends at the receiving Side."""
    return hasattr(outlet, "next")


class _Held:
    """Exchanges of one relay call whose bytes a fault stage (a message-delay
    Gate, a latency toxic...) held after the relay wrote them.

    `release` runs as the stage's `when_sent` callback, when the bytes really
    leave: the hold becomes `fault_delay` (not `proxy_time`), the write stamps
    move to then, and the exchanges completed in that relay are reported. A
    connection that ends first releases what is left as it finishes.
    """

    __slots__ = ("conn", "direction", "exchanges", "since", "touched")

    def __init__(
        self,
        conn: Connection,
        direction: Direction,
        touched: list[Exchange],
        exchanges: list[Exchange],
        since: int,
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.touched = touched
        self.exchanges = exchanges
        self.since = since

    def release(self) -> None:
        conn = self.conn
        try:
            conn.held.remove(self)
        except ValueError:
            return  # released already (the connection ended first)
        BaseCodec.held(self.touched, self.direction, self.since, now_ns())
        if self.exchanges:
            conn.report(self.exchanges)
