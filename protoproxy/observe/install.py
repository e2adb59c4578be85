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

from ..admin import routes_messages, routes_metrics, routes_state
from .access_log import AccessLog
from .exchanges import ExchangeMetrics
from .prometheus import Exporter, live_bytes
from .redact import LogRedactor, config_secrets
from .tail import MessageTail
from .upstreams import UpstreamErrors

if TYPE_CHECKING:
    from ..app import App
    from ..connection import Connection


class Observe:
    """Everything this component holds, as `app.components["observe"]`."""

    def __init__(self, app: App) -> None:
        proxy = app.proxy
        cfg = app.config
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

    def codec_chosen(self, conn: Connection) -> None:
        if self.tail.wants(conn):
            conn.filters.append(self.tail)

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


def install(app: App) -> None:
    """Install the Prometheus export, /stats, state routes, access log and message tail."""
    obs = Observe(app)
    app.components["observe"] = obs
    proxy = app.proxy
    obs.redactor.install()
    if app.config.metrics.exchanges:
        proxy.exchange_observers.append(obs.exchange_metrics.observe)
    if obs.access_log is not None:
        proxy.exchange_observers.append(obs.access_log.observe)
        atexit.register(obs.access_log.flush)
    proxy.codec_observers.append(obs.codec_chosen)
    proxy.inject_observers.append(obs.injected)
    proxy.close_observers.append(obs.connection_closed)
    if app.admin is not None:
        app.admin.add_routes(routes_metrics.routes(proxy, obs.exporter))
        app.admin.add_routes(routes_state.routes(proxy, app.components))
        app.admin.add_routes(routes_messages.routes(obs.tail))
        tail = obs.tail

        async def _end_follows(_: object) -> None:
            tail.close_followers()

        app.admin.app.on_shutdown.append(_end_follows)
        if obs.access_log is not None:
            log = obs.access_log

            async def _close_log(_: object) -> None:
                log.close()

            app.admin.app.on_cleanup.append(_close_log)
