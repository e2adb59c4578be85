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
    Message,
    Sniff,
    now_ns,
)
from protoproxy_codecs.base import Limits as CodecLimits
from protoproxy_codecs.tls import parse_client_hello

from .pipeline import is_opaque
from .tls import TlsEngine, TlsError
from .upstream import ConnectError

if TYPE_CHECKING:
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


class Side(asyncio.Protocol):
    """One socket of a proxied connection, optionally wrapped in TLS.

    `reads` is the direction of the bytes this socket delivers: the client
    side reads UPSTREAM-bound bytes, the server side reads DOWNSTREAM-bound.
    """

    def __init__(self, conn: Connection, reads: Direction, tls: TlsEngine | None = None) -> None:
        self.conn = conn
        self.reads = reads
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.eof_sent = False
        self.eof_seen = False
        self.closed = False
        self.paused = False  # our reading is paused by backpressure
        #: ns the connect (and TLS handshake) took, for an upstream socket
        self.connect_time = 0
        self._sink: Callable[[bytes], None] = self._deliver

    # -- asyncio callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = cast(asyncio.Transport, transport)
        limits = self.conn.proxy.config.limits
        self.transport.set_write_buffer_limits(limits.write_buffer_high, limits.write_buffer_low)
        if self.reads is DOWNSTREAM:  # an upstream socket we opened
            if self.tls is not None:
                self.transport.write(self.tls.start())
            else:
                self.ready.set_result(None)
        else:
            self.conn.accepted(self)

    def data_received(self, data: bytes) -> None:
        tls = self.tls
        if tls is None:
            self.conn.on_data(self.reads, data)
            return
        was_ready = tls.handshaked
        try:
            out = tls.receive(data, self._sink)
        except TlsError as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
                self.ready.exception()  # consumed by whoever awaits; don't warn
            self.conn.tls_failed(self, exc)
            return
        if out and self.transport is not None:
            self.transport.write(out)
        if not was_ready and tls.handshaked:
            if self.reads is DOWNSTREAM:
                if not self.ready.done():
                    self.ready.set_result(None)
            else:
                self.conn.downstream_tls_ready(self)
        if tls.eof and not self.eof_seen:
            self.eof_received()

    def _deliver(self, plain: bytes) -> None:
        self.conn.on_data(self.reads, plain)

    def eof_received(self) -> bool:
        if not self.eof_seen:
            self.eof_seen = True
            self.conn.on_eof(self.reads)
        return True  # keep the transport open: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed during setup"))
            self.ready.exception()
        self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.conn.backpressure(self, True)

    def resume_writing(self) -> None:
        self.conn.backpressure(self, False)

    # -- used by the connection --------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is None or self.eof_sent:
            return
        if self.tls is not None:
            data = self.tls.send(data)
        self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if self.transport is None or self.eof_sent:
            return
        if self.tls is not None:
            self.transport.write(self.tls.send(b"".join(chunks)))
        else:
            self.transport.writelines(chunks)

    def when_sent(self, callback: Callable[[], None]) -> None:
        if self.transport is not None and not self.eof_sent and not self.transport.is_closing():
            callback()

    def write_eof(self) -> None:
        if self.eof_sent or self.transport is None or self.transport.is_closing():
            return
        self.eof_sent = True
        if self.tls is not None:
            self.transport.write(self.tls.close_notify())
        elif self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def peername(self) -> str:
        if self.transport is None:
            return "-"
        peer = self.transport.get_extra_info("peername")
        if not peer:
            return "-"
        return f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"


class Connection:
    """The pairing of a downstream client socket with one upstream socket."""

    UPSTREAM_SIDE = DOWNSTREAM  # the upstream socket *reads* responses

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
        self.eof = [False, False]  # by Direction: that direction's sender half-closed
        self.state = "new"
        self.end_reason: str | None = None
        self.passthrough = False
        self.early_eof = False
        self.opaque = False
        self.extra: dict[str, Any] = {}
        self._setup: asyncio.Task[None] | None = None

    # -- setup ---------------------------------------------------------------
    def accepted(self, side: Side) -> None:
        self.client = side
        self.outlets[DOWNSTREAM] = side
        self.proxy.connection_opened(self)
        lst = self.listener
        if lst.tls_mode is not None:
            self.state = "hello"  # wait for the ClientHello
        elif lst.config.protocol == "auto":
            self.state = "sniff"
            self._start_upstream()
        else:
            self._choose_codec(lst.config.protocol)
            self._start_upstream()

    def _start_upstream(self) -> None:
        self.state = "connecting" if self.state in ("new", "hello", "tls") else self.state
        self._setup = self.loop.create_task(self._connect_upstream())

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
        if self.end_reason is not None:  # the client went away meanwhile
            up.close()
            endpoint.active -= 1
            return
        self.server, self.endpoint = up, endpoint
        self.upstream_connect = up.connect_time
        self.outlets[UPSTREAM] = up
        if self.codec is None and self.state == "sniff" and self.pending_size == 0:
            pass  # still waiting for client bytes to sniff
        elif self.state == "connecting":
            self.state = "open"
        self.proxy.upstream_connected(self)
        if up.eof_seen:
            self.on_eof(DOWNSTREAM)
        self._flush_pending()
        if self.early_eof:
            self.early_eof = False
            self.on_eof(UPSTREAM)

    def _choose_codec(self, protocol: str) -> None:
        name = {"grpc": "http2", "auto": "tcp"}.get(protocol, protocol)
        cls = registry.get(name)
        limits = self.proxy.config.limits
        self.codec = cls(  # type: ignore[call-arg]
            limits=CodecLimits(
                max_message_size=limits.max_message_size, max_pending=limits.max_pending
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
            self._choose_codec("http2")
        elif proto == "auto" and self.alpn == "http/1.1":
            self._choose_codec("http")
        elif proto != "auto":
            self._choose_codec(proto)
        else:
            self.state = "sniff"
        if self.state != "sniff":
            self.state = "connecting"
        self._setup = self.loop.create_task(self._connect_upstream())

    # -- the data path -----------------------------------------------------------
    def on_data(self, direction: Direction, data: bytes) -> None:
        self.last_activity = self.loop.time()
        self.bytes[direction] += len(data)
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
        if self.state == "hello" and direction is UPSTREAM:
            self.head += data
            self._on_hello()
            return
        if direction is DOWNSTREAM:
            # The server spoke first: nothing to sniff from the client, so tcp.
            if self.codec is None:
                self._choose_codec(self.listener.config.protocol if self.passthrough else "tcp")
                self.state = "open"
            self._flush_pending()
            self._relay(direction, data)
            return
        if not self.pending:
            self.pending_at = now_ns()
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > SNIFF_LIMIT and self.client is not None:
            self.client.pause_reading()  # bounded until the upstream is ready
        if self.codec is None and self.state == "sniff":
            head = b"".join(self.pending)
            name, verdict = registry.sniff(head)
            if verdict is Sniff.NEED_MORE and len(head) < SNIFF_LIMIT:
                return
            self._choose_codec(name if name not in (None, "tls") else "tcp")
        if self.server is not None:
            self.state = "open"
            self._flush_pending()

    def _flush_pending(self) -> None:
        if not self.pending or self.server is None or self.codec is None:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_size = 0
        if self.client is not None:
            self.client.resume_reading()
        self.state = "open"
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
        head, self.head = self.head, b""
        if self.listener.tls_mode == "passthrough":
            self.passthrough = True
            self.alpn = None
            self._choose_codec("tcp")
            self.pending.append(head)
            self.pending_size += len(head)
            self._start_upstream()
            return
        server = self.listener.server_tls
        assert server is not None and self.client is not None
        if self.listener.route(self) is None:
            self.fail("no_route", f"no route for SNI {self.sni!r} and no default upstream")
            return
        self.state = "tls"
        self.client.tls = server.engine()
        self.client.data_received(head)

    # -- half-close, backpressure, endings -------------------------------------
    def on_eof(self, direction: Direction) -> None:
        """The sender of `direction` half-closed: flush and pass the EOF on."""
        if self.eof[direction]:
            return
        if self.state in ("hello", "tls"):
            self.fail("client_closed_early", "client closed before the TLS handshake")
            return
        if direction is UPSTREAM:
            if self.codec is None:
                self._choose_codec("tcp")  # EOF before enough bytes to sniff
            if self.server is None:
                self.early_eof = True  # passed on once the upstream is ready
                return
            self._flush_pending()
        self.eof[direction] = True
        if self.codec is not None:
            try:
                rest = self.codec.eof(direction)
            except DecodeError as exc:
                self.decode_failed(direction, exc)
                return
            if rest:
                self.send(direction, rest)
            if self.codec.touched:
                self.codec.written(now_ns())
            exchanges = self.codec.take_exchanges()
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
        if not (self.eof[UPSTREAM] and self.eof[DOWNSTREAM]):
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
        if self.end_reason is not None:
            self._finish()
            return
        which = "downstream" if side is self.client else "upstream"
        if exc is not None:
            self.fail(f"{which}_reset", f"{which} {side.peername} reset: {exc}")
            return
        if self.eof[UPSTREAM] and self.eof[DOWNSTREAM]:
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
        if self.end_reason is not None:
            return  # already ending (e.g. EOF after the bad frame): count it once
        self.proxy.metrics.decode_errors.inc((self.listener.name, self.protocol, exc.reason))
        to_sender, to_peer = self.codec.error_reply(direction, exc)
        sender = self.client if direction is UPSTREAM else self.server
        peer = self.server if direction is UPSTREAM else self.client
        if to_sender and sender is not None:
            sender.write(to_sender)
        if to_peer and peer is not None:
            peer.write(to_peer)
        self.fail("decode_error", f"{self.protocol} decode error from {direction.name}: {exc}")

    def fail(self, reason: str, detail: str) -> None:
        """End abnormally: one log line and one counter per connection."""
        if self.end_reason is not None:
            return
        log.warning(
            "conn %d listener=%s peer=%s upstream=%s ended: %s (%s)",
            self.id,
            self.listener.name,
            self.client.peername if self.client else "-",
            self.endpoint.name if self.endpoint else "-",
            reason,
            detail,
        )
        self.proxy.metrics.connection_errors.inc((self.listener.name, reason))
        self._end(reason, graceful=reason == "decode_error")

    def close(self, reason: str = "done") -> None:
        if self.end_reason is None:
            self._end(reason, graceful=True)

    def _end(self, reason: str, graceful: bool) -> None:
        self.end_reason = reason
        self.state = "closed"
        if self._setup is not None and not self._setup.done():
            self._setup.cancel()
        for side in (self.client, self.server):
            if side is None:
                continue
            if graceful:
                side.close()  # flushes what is buffered first
            else:
                side.abort()
        self._finish()

    def _finish(self) -> None:
        """Account for the connection once both sockets are really gone."""
        if self.state == "finished":
            return
        for side in (self.client, self.server):
            if side is not None and not side.closed:
                return  # its connection_lost comes back here
        self.state = "finished"
        if self.endpoint is not None:
            self.endpoint.active -= 1
        while self.held:  # bytes a fault still held when the connection ended
            self.held[0].release()
        self.proxy.connection_closed(self)

    def exchanges(self, exchanges: list[Exchange]) -> None:
        self.report(exchanges)

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
