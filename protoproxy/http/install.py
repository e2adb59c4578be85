"""Wire HTTP, HTTP/2 and gRPC support into an App (filled in by the HTTP/gRPC integration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Install HTTP/gRPC filters, observers and admin routes into `app`."""
