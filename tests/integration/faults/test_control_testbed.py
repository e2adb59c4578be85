"""A testbed scenario mixing network, protocol-agnostic and service faults."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from protoproxy.config import ConfigError
from testbed.harness import Testbed
from testbed.scenario import Scenario


async def _rtt(address: str) -> float:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        t0 = time.monotonic()
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        return time.monotonic() - t0
    finally:
        writer.close()


async def test_scenario_faults_mix_toxics_brokers_and_grpc():
    from testbed.grpc.client import AioClient

    scenario = Scenario.ephemeral(
        kafka={"brokers": 2, "topics": {"orders": 2}},
        http={"enabled": False},
        faults=[
            {
                "name": "echo-slow",
                "match": {"listener": "echo"},
                "toxic": {"type": "latency", "attributes": {"latency": 150}},
            },
            {"service": "kafka", "action": {"stop_broker": 1}},
            {"service": "kafka", "action": {"start_broker": 1}, "after": "300ms"},
            {
                "service": "grpc",
                "action": {
                    "program": {"method": "Unary", "status": "UNAVAILABLE", "message": "down"}
                },
            },
            {"service": "proxy", "action": {"disable": "echo"}, "after": "600ms"},
        ],
    )
    async with Testbed(scenario) as tb:
        cluster = tb.services["kafka"]
        assert not cluster.topology.brokers[1].alive
        assert all(cluster.leader("orders", p) == 0 for p in range(2))
        assert await _rtt(tb.addresses["echo"]) >= 0.15
        async with AioClient.connect(tb.addresses["grpc"]) as client:
            result = await client.unary()
            assert result.code is grpc.StatusCode.UNAVAILABLE and result.details == "down"
            tb.faults.grpc_reset()
            assert (await client.unary()).ok
        deadline = time.monotonic() + 10
        while not cluster.topology.brokers[1].alive and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert cluster.topology.brokers[1].alive
        tb.faults.move_leader("orders", 1, 1)
        assert cluster.leader("orders", 1) == 1
        while tb.proxy.listeners["echo"].enabled and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        with pytest.raises(OSError):
            await _rtt(tb.addresses["echo"])
        done = sorted(w.split()[0] for _, w in tb.faults.service_history)
        assert done == ["disable", "move_leader", "program", "reset", "start_broker", "stop_broker"]
        assert tb.faults.injected("echo-slow") == 1


async def test_scenario_fault_errors_name_the_entry():
    bad = Scenario.ephemeral(
        kafka={"enabled": False},
        grpc={"enabled": False},
        http={"enabled": False},
        faults=[
            {"name": "ok", "match": {"listener": "echo"}, "toxic": {"type": "timeout"}},
            {"service": "kafka", "action": {"explode": 1}},
        ],
    )
    with pytest.raises(ConfigError, match=r"faults\[1\].*stop_broker"):
        async with Testbed(bad):
            pass


async def test_scenario_fault_on_an_unknown_listener_names_the_entry():
    bad = Scenario.ephemeral(
        kafka={"enabled": False},
        grpc={"enabled": False},
        http={"enabled": False},
        faults=[
            {"name": "ok", "match": {"listener": "echo"}, "toxic": {"type": "timeout"}},
            {"name": "typo", "match": {"listener": "ecko"}, "toxic": {"type": "timeout"}},
        ],
    )
    problem = r"faults\[1\]\.match\.listener: no listener named 'ecko' \(listeners: echo\)"
    with pytest.raises(ConfigError, match=problem):
        async with Testbed(bad):
            pass
