"""Wire Kafka support into an App (filled in by the Kafka integration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Install Kafka filters, observers and admin routes into `app`."""
