"""The proxy process: clusters, listeners, connections, and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction, Exchange, Message

from . import fdlimits
from .accept_errors import AcceptErrorWatch
from .config import Config, Listener
from .deadlines import Deadlines
from .fdlimits import REJECT_DETAIL, ConnectionLimits
from .listener import ListenerRuntime
from .memory import MemoryAccountant
from .metrics import ProxyMetrics
from .observe.stats import Stats
from .pipeline import ExchangeObserver, Pipeline
from .ratelimited_log import RateLimitedLog
from .upstream import Cluster

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("protoproxy")

ConnectionObserver = Callable[["Connection"], None]
InjectObserver = Callable[["Connection", Direction, list[Message]], None]


def install_uvloop() -> bool:
    """Use uvloop when it is installed: ~30% more throughput on bulk forwarding."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


#: lines of one kind (listener, reason) written at once before the limit of one
#: a second applies: a handful of errors are all seen, a flood is not
WARNING_BURST = 10


def _call_later(delay: float, callback: Callable[[], None]) -> None:
    """Schedule on the running loop; outside one (a test driving a Proxy by hand)
    the summary waits for the next line of its kind instead."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_later(delay, callback)


class Proxy:
    """Everything one `protoproxy run` serves. Also the Python API for tests."""

    def __init__(self, config: Config, stats: Stats | None = None) -> None:
        self.config = config
        self.stats = stats or Stats()
        self.metrics = ProxyMetrics(self.stats)
        self.clusters = {
            u.name: Cluster(u, connect_timeout=config.timeouts.connect) for u in config.upstreams
        }
        #: which filters a connection gets and which exchange observers run, in order
        self.pipeline = Pipeline()
        #: in ExchangeSlot order (the pipeline's own list; register through Hooks)
        self.exchange_observers: list[ExchangeObserver] = self.pipeline.exchange_observers
        #: called when a connection's codec is known, after the pipeline built its
        #: filters (probes in tests add their own here)
        self.codec_observers: list[ConnectionObserver] = []
        self.close_observers: list[ConnectionObserver] = []
        #: called when a connection's upstream is connected: both outlets exist
        #: (stream toxics link in here)
        self.upstream_observers: list[ConnectionObserver] = []
        #: called with (listener config, added) when a listener is added or removed at
        #: run time (protoproxy.runtime_listeners); Kafka opens broker listeners here
        self.listener_observers: list[Callable[[Listener, bool], None]] = []
        #: called with messages a fault made up (answers no peer sent) as they are
        #: written; the filter chain never sees them, so the tail learns of them here
        self.inject_observers: list[InjectObserver] = []
        self.listeners: dict[str, ListenerRuntime] = {}
        self.connections: dict[int, Connection] = {}
        self.closed_bytes = [0, 0]
        self._idle_task: asyncio.Task[None] | None = None
        #: limits.memory across all connections (protoproxy.memory)
        self.memory = MemoryAccountant(self)
        #: timeouts.header and timeouts.frame (protoproxy.deadlines)
        self.deadlines = Deadlines(self)
        self._limits_task: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None
        self.accepting = False
        self.conn_limits = ConnectionLimits(config.limits)
        #: repeated WARNINGs (connection ends, rejections, accept errors) go through here
        self.warnings = RateLimitedLog(schedule=_call_later, burst=WARNING_BURST)
        self.accept_errors = AcceptErrorWatch(self)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        for cfg in self.config.listeners:
            lst = ListenerRuntime(self, cfg)
            self.listeners[cfg.name] = lst
        started: list[ListenerRuntime] = []
        try:
            for lst in self.listeners.values():
                if lst.enabled:
                    await lst.start()
                    started.append(lst)
        except OSError:
            for lst in started:  # a port in use: release the ones already bound
                lst.stop_accepting()
            raise
        fdlimits.fit_at_start(self.conn_limits)
        self.accept_errors.install(asyncio.get_running_loop())
        self.accepting = True
        self._idle_task = asyncio.get_running_loop().create_task(self._sweep_idle())
        self._limits_task = asyncio.get_running_loop().create_task(self._sweep_limits())

    async def add_listener(self, lst: ListenerRuntime) -> None:
        self.listeners[lst.name] = lst
        await lst.start()

    async def stop(self, drain: float | None = None) -> None:
        """Stop accepting, let connections finish for `drain` seconds, then close them."""
        drain = self.config.timeouts.drain if drain is None else drain
        self.accepting = False
        for lst in self.listeners.values():
            lst.stop_accepting()
        if self.connections and drain > 0:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain):
                    await self._drained.wait()
        for conn in list(self.connections.values()):
            conn.fail("shutdown", "closed at shutdown after the drain deadline")
        if self._idle_task is not None:
            self._idle_task.cancel()
        if self._limits_task is not None:
            self._limits_task.cancel()
        for lst in self.listeners.values():
            if lst.server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lst.server.wait_closed(), 1.0)
        await asyncio.sleep(0)
        self.warnings.flush()  # what the rate limit held back is still said once

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(drain=0)

    async def _sweep_idle(self) -> None:
        idle = self.config.timeouts.idle
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, idle / 4))
            now = loop.time()
            for conn in list(self.connections.values()):
                if now - conn.last_activity > idle:
                    conn.fail("idle_timeout", f"no traffic for {idle:g}s")

    async def _sweep_limits(self) -> None:
        """The coarse timer of the memory budget and the header/frame deadlines."""
        t = self.config.timeouts
        period = max(0.01, min(0.25, t.header / 4, t.frame / 4))
        while True:
            await asyncio.sleep(period)
            self.memory.sweep()
            self.deadlines.sweep()

    # -- called by connections ----------------------------------------------------
    def connection_opened(self, conn: Connection) -> None:
        name = conn.listener.name
        if not self.accepting or not conn.listener.enabled:
            self.metrics.rejected.inc((name, "not_accepting"))
            conn.fail("rejected", "listener is not accepting")
            return
        refused = self.conn_limits.admit(name, conn.listener.config.max_connections)
        if refused is not None:
            self.metrics.rejected.inc((name, refused))
            conn.fail("rejected", REJECT_DETAIL[refused])
            return
        self.connections[conn.id] = conn
        self.metrics.connections.inc((name,))
        self.metrics.active.inc((name,))

    def upstream_connected(self, conn: Connection) -> None:
        assert conn.cluster is not None and conn.endpoint is not None
        self.metrics.upstream_connections.inc((conn.cluster.name, conn.endpoint.name))
        for obs in self.upstream_observers:
            obs(conn)

    def codec_chosen(self, conn: Connection) -> None:
        for obs in self.codec_observers:
            obs(conn)

    def connection_closed(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is None:
            return
        name = conn.listener.name
        self.conn_limits.release(name)
        self.metrics.active.dec((name,))
        self.metrics.duration.observe((name,), conn.age)
        self.metrics.bytes.inc((name, "upstream"), conn.bytes[Direction.UPSTREAM])
        self.metrics.bytes.inc((name, "downstream"), conn.bytes[Direction.DOWNSTREAM])
        for obs in self.close_observers:
            obs(conn)
        if self._drained is not None and not self.connections:
            self._drained.set()

    def exchanges_done(self, conn: Connection, exchanges: list[Exchange]) -> None:
        for obs in self.exchange_observers:
            obs(conn, exchanges)
