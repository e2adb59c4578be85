"""Wire Kafka support into a Proxy: rewriting filter, broker listeners, metrics, routing data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import ExchangeSlot, FilterSlot
from .component import KafkaComponent

if TYPE_CHECKING:
    from ..hooks import Hooks
    from ..proxy import Proxy


def install(proxy: Proxy, hooks: Hooks) -> KafkaComponent:
    """Install Kafka filters, observers and routing data; the App keeps it as `app.kafka`."""
    kafka = KafkaComponent(proxy)
    hooks.filter(FilterSlot.KAFKA, kafka.filter_of)
    hooks.listener(kafka.listener_changed)
    hooks.exchanges(ExchangeSlot.KAFKA, kafka.metrics.on_exchanges)
    hooks.exchanges(ExchangeSlot.KAFKA, kafka.on_exchanges)  # after the metrics, as before
    hooks.closed(kafka.connection_closed)
    return kafka
