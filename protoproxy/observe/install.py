"""Wire observability into an App: metrics, exporters, access log, tail, redaction.

What runs per message or per exchange is only what the config turns on: the
tail filter joins a connection only when the tail is enabled (and never on
opaque TCP connections, which keeps their zero-decode fast path), and the
access log observer only when the access log is enabled.
"""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Direction, Message

from ..admin import routes_messages, routes_metrics
from ..pipeline import ExchangeSlot, FilterSlot
from .access_log import AccessLog
from .exchanges import ExchangeMetrics
from .prometheus import Exporter, live_bytes
from .redact import LogRedactor, config_secrets
from .tail import MessageTail
from .upstreams import UpstreamErrors

if TYPE_CHECKING:
    from ..connection import Connection
    from ..hooks import Hooks
    from ..proxy import Proxy


class Observe:
    """Everything this component holds, as `app.observe`."""

    def __init__(self, proxy: Proxy) -> None:
        cfg = proxy.config
        m = cfg.metrics
        proxy.stats.configure(
            m.max_series,
            m.families,
            m.max_total_series,
            m.max_label_bytes,
            m.max_family_bytes,
            m.family_bytes,
            m.max_total_bytes,
        )
        self.exporter = Exporter(proxy.stats, live_bytes(proxy))
        self.exchange_metrics = ExchangeMetrics(proxy.stats)
        self.upstream_errors = UpstreamErrors(proxy.stats)
        self.tail = MessageTail(
            cfg.tail,
            proxy.stats.counter(
                "protoproxy_tail_dropped_total",
                "Messages the /messages tail did not keep or could not deliver",
                ("reason",),
            ),
        )
        self.access_log = AccessLog(cfg.access_log) if cfg.access_log.enabled else None
        self.redactor = LogRedactor(config_secrets(cfg))

    def tail_filter(self, conn: Connection) -> MessageTail | None:
        """The FilterSlot.TAIL factory."""
        return self.tail if self.tail.wants(conn) else None

    def injected(self, conn: Connection, direction: Direction, messages: list[Message]) -> None:
        """Fault-made messages never pass the filter chain: the tail takes them here."""
        if self.tail.wants(conn):
            self.tail.on_messages(conn, direction, messages)

    def connection_closed(self, conn: Connection) -> None:
        self.exchange_metrics.closed(conn)
        self.tail.closed(conn)
        if self.access_log is not None:
            self.access_log.closed(conn)
        self.upstream_errors.closed(conn)


def install(proxy: Proxy, hooks: Hooks) -> Observe:
    """Install the Prometheus export, /stats, access log and message tail.

    The state routes (/connections, /kafka/..., /grpc/...) span components:
    the App adds them once every component is installed.
    """
    obs = Observe(proxy)
    obs.redactor.install()
    if proxy.config.metrics.exchanges:
        hooks.exchanges(ExchangeSlot.STATS, obs.exchange_metrics.observe)
    if obs.access_log is not None:
        hooks.exchanges(ExchangeSlot.ACCESS_LOG, obs.access_log.observe)
        atexit.register(obs.access_log.flush)
    hooks.filter(FilterSlot.TAIL, obs.tail_filter)
    hooks.injected(obs.injected)
    hooks.closed(obs.connection_closed)
    if not hooks.admin:
        return obs
    hooks.routes(routes_metrics.routes(proxy, obs.exporter))
    hooks.routes(routes_messages.routes(obs.tail))
    tail = obs.tail

    async def _end_follows(_: object) -> None:
        tail.close_followers()

    hooks.admin_shutdown(_end_follows)
    if obs.access_log is not None:
        log = obs.access_log

        async def _close_log(_: object) -> None:
            log.close()

        hooks.admin_cleanup(_close_log)
    return obs
