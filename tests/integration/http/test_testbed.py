"""The testbed puts the fake gRPC and HTTP services behind the proxy."""

from __future__ import annotations

import asyncio
import socket

from testbed.grpc import Behaviour
from testbed.grpc.client import AioClient
from testbed.harness import Testbed
from testbed.scenario import DEFAULT_PORTS, Scenario
from tests.peers import PORT_ATTEMPTS, port_taken

from .conftest import http_metrics


async def test_testbed_serves_grpc_and_http_through_the_proxy() -> None:
    scenario = Scenario.ephemeral(kafka={"enabled": False}, echo={"enabled": False})
    async with Testbed(scenario) as tb:
        assert set(tb.services) == {"grpc", "http"}
        async with AioClient.connect(tb.addresses["grpc"]) as client:
            r = await client.server_stream(Behaviour.make(count=2))
        assert r.ok and len(r.responses) == 2

        host, _, port = tb.addresses["http"].rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /status/202 HTTP/1.1\r\nHost: tb.test\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        assert response.startswith(b"HTTP/1.1 202 ")

        assert tb.app is not None
        m = http_metrics(tb.app)
        method = ("grpc", "protoproxy.testbed.v1.TestService", "ServerStream")
        assert m.grpc_finished.get((*method, "OK")) == 1
        assert m.http_requests.get(("http", "tb.test", "GET", "2xx")) == 1
        listeners = {lst.name: lst.config.protocol for lst in tb.proxy.listeners.values()}  # type: ignore[union-attr]
        assert listeners == {"grpc": "grpc", "http": "http"}


async def test_testbed_listens_on_the_scenario_ports() -> None:
    for attempt in range(PORT_ATTEMPTS):
        ports = {}
        for name in ("grpc", "http"):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports[name] = s.getsockname()[1]
        scenario = Scenario.ephemeral(kafka={"enabled": False}, echo={"enabled": False})
        scenario.ports.update(ports)
        try:
            async with Testbed(scenario) as tb:
                assert tb.addresses["grpc"] == f"127.0.0.1:{ports['grpc']}"
                assert tb.addresses["http"] == f"127.0.0.1:{ports['http']}"
            break
        except OSError as exc:
            # another process took a picked port before the testbed bound it
            if not port_taken(exc) or attempt == PORT_ATTEMPTS - 1:
                raise
    assert DEFAULT_PORTS["grpc"] == 15051 and DEFAULT_PORTS["http"] == 18080
