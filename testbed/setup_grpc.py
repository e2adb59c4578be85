"""Start the fake gRPC service for a Testbed and put the proxy in front of it (h2c)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import Testbed


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Start the service on `tb._stack`, record it in `tb.services`, and append
    the proxy listener/upstream config dicts for it.

    The listener is `protocol: grpc` (the HTTP/2 codec without sniffing), so
    per-method metrics start with the first frame. grpcio is imported here,
    not at module load, so scenarios without gRPC do not pay for it.
    """
    from .grpc import FakeGrpcService

    service = await tb._stack.enter_async_context(FakeGrpcService(host=tb.scenario.host))
    tb.services["grpc"] = service
    tb.front("grpc", "grpc", [service.address], listeners, upstreams)
