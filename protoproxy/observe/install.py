"""Wire observability into an App (filled in by the observability work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Install the Prometheus export, /stats, state routes, access log and message tail."""
