"""Acceptance 2: the proxy relays real grpcio traffic byte for byte.

Recording relays sit on both sides of the proxy (client -> tap -> proxy ->
tap -> service). Many concurrent calls of every kind, with payloads that span
DATA frames and flow-control windows, interleave frames of many streams.
The bytes before the proxy must equal the bytes after it, in each direction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from testbed.grpc import Behaviour, FakeGrpcService
from testbed.grpc.client import AioClient, CallResult

from .conftest import http_metrics, running_app
from .tap import Tap


def _calls(client: AioClient) -> list[Awaitable[CallResult]]:
    calls = []
    for i in range(40):
        kind = ("Unary", "ServerStream", "ClientStream", "Bidi")[i % 4]
        size = (0, 10, 20_000, 200_000)[i % 4]
        calls.append(
            client.call(
                kind,
                Behaviour.make(count=3, size=size),
                n=3,
                payload=bytes([i]) * (i * 997),
                metadata=[("x-i", str(i)), ("x-bin-bin", bytes([i]) * i)],
            )
        )
    return calls


async def test_byte_exact_with_grpcio_traffic() -> None:
    async with (
        FakeGrpcService() as service,
        Tap("127.0.0.1", service.port) as server_tap,
        running_app(
            [{"name": "g", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "s"}],
            [{"name": "s", "endpoints": [server_tap.address]}],
        ) as app,
        Tap("127.0.0.1", app.proxy.listeners["g"].port) as client_tap,
    ):
        async with AioClient.connect(client_tap.address) as client:
            results = await asyncio.gather(*_calls(client))
            assert all(r.ok for r in results)
        await client_tap.wait_closed()
        await server_tap.wait_closed()
        assert http_metrics(app).grpc_finished.total() == 40

    assert len(client_tap.connections) == 1 and len(server_tap.connections) == 1
    before, after = client_tap.connections[0], server_tap.connections[0]
    assert len(before.up) > 1_000_000 or len(before.down) > 1_000_000
    assert bytes(after.up) == bytes(before.up)
    assert bytes(before.down) == bytes(after.down)
