"""Wire fault injection into an App (filled in by the fault engine)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Install the fault engine, its filters and admin routes (native and Toxiproxy) into `app`."""
