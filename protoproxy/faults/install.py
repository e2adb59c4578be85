"""Wire fault injection into a Proxy: the engine, its filters, stages and admin routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..pipeline import ExchangeSlot, FilterSlot
from . import marks, message_http, message_http2, message_kafka
from .engine import FaultEngine
from .handler import Handler
from .message_filter import MessageFaults
from .toxic_manager import ToxicManager

if TYPE_CHECKING:
    from ..hooks import Hooks
    from ..proxy import Proxy


class Installed(NamedTuple):
    """What the App keeps: `app.faults`, `app.toxics`, `app.message_faults`."""

    engine: FaultEngine
    toxics: ToxicManager
    message_faults: MessageFaults


def install(proxy: Proxy, hooks: Hooks) -> Installed:
    """Create the engine from config (seed, faults) with its stream toxics and
    message faults; the marks observer runs first among exchange observers
    (ExchangeSlot.MARKS) so that the stats and access log see ``attrs["fault"]``."""
    engine = FaultEngine(proxy, seed=proxy.config.seed)
    toxics = ToxicManager(engine, proxy)
    hooks.upstream(toxics.connected)  # links its stages once both outlets exist
    hooks.closed(toxics.closed)
    message_faults = MessageFaults(
        engine,
        proxy,
        {
            "kafka": message_kafka.KafkaHandler,
            "http2": message_http2.Http2Handler,
            "http": message_http.Http1Handler,
            "tcp": Handler,
        },
    )
    hooks.filter(FilterSlot.FAULTS, message_faults.filter_for)
    hooks.closed(message_faults.closed)
    hooks.exchanges(ExchangeSlot.MARKS, marks.observe)
    for spec in proxy.config.faults:
        engine.add(spec)
    if hooks.admin:
        from . import routes, routes_toxiproxy

        hooks.routes(routes.routes(engine))
        hooks.routes(routes_toxiproxy.routes(proxy, engine))
    return Installed(engine, toxics, message_faults)
