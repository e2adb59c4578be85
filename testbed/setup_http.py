"""Start the fake http service(s) for a Testbed and put the proxy in front (filled in by the http integration)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import Testbed


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Start the service(s) on `tb._stack`, record them in `tb.services`, and append
    the proxy listener/upstream config dicts for them."""
