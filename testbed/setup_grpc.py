"""Start the fake gRPC service for a Testbed and put the proxy in front of it (h2c).

By default the service runs in a child process (`testbed.grpc_process`), so
grpcio's C-core never shares the proxy's process; ``grpc.in_process: true``
in the scenario keeps it on the testbed's loop, as `FakeGrpcService`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import Testbed


def launch(tb: Testbed) -> None:
    """Fork the service's process now, before the other services start, so that
    its interpreter start and grpcio import overlap theirs; `start` waits for it."""
    if tb.scenario.grpc.in_process:
        return
    from .grpc_process import GrpcServiceProcess

    service = GrpcServiceProcess.launch(tb.scenario.host)
    tb._stack.push_async_callback(service.stop)
    tb.services["grpc"] = service


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Wait for the service (started by `launch`, or start it here in-process),
    record it in `tb.services`, and append the proxy listener/upstream config
    dicts for it.

    The listener is `protocol: grpc` (the HTTP/2 codec without sniffing), so
    per-method metrics start with the first frame. grpcio is imported here
    (in-process) or in the child, not at module load, so scenarios without gRPC
    do not pay for it.
    """
    service = tb.services.get("grpc")
    if service is not None:
        await service.wait_ready()
    else:
        from .grpc import FakeGrpcService

        service = await tb._stack.enter_async_context(FakeGrpcService(host=tb.scenario.host))
        tb.services["grpc"] = service
    tb.front("grpc", "grpc", [service.address], listeners, upstreams)
