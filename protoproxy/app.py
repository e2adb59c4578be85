"""Wiring a Proxy with its admin API and observers, for `protoproxy run`."""

from __future__ import annotations

from .proxy import Proxy


async def run_app(proxy: Proxy) -> None:
    """Serve until a signal; the admin API and observers attach here as they exist."""
    await proxy.serve_forever()
