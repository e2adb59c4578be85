"""Wire Kafka support into an App: rewriting filter, broker listeners, metrics, routing data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .component import KafkaComponent

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Install Kafka filters, observers and routing data into `app`.

    The routing data is ``app.components["kafka"]`` (``snapshot()`` is JSON-able).
    """
    app.components["kafka"] = KafkaComponent(app.proxy)
