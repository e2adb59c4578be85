"""Start the fake HTTP/1.1 service for a Testbed and put the proxy in front of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import Testbed


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Start the service on `tb._stack`, record it in `tb.services`, and append
    the proxy listener/upstream config dicts for it.

    The listener is `protocol: http`: the fake service speaks HTTP/1.1 only,
    so there is nothing to sniff, and requests are paired from the first byte.
    """
    from .http import FakeHttpService

    service = await tb._stack.enter_async_context(FakeHttpService(host=tb.scenario.host))
    tb.services["http"] = service
    host, port = service.address
    tb.front("http", "http", [f"{host}:{port}"], listeners, upstreams)
