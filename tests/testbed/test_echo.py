"""The echo service closes its side of every connection a client has left, so
the testbed's file descriptors return to where they were (it once kept one per
closed client: 3,000 clients left 2,893 fds)."""

from __future__ import annotations

import asyncio
import os

from testbed.echo import EchoService
from testbed.harness import Testbed
from testbed.scenario import Scenario

CLIENTS = 300
#: fds the loop or the proxy may still hold a little longer (a pooled socket...)
SLACK = 10
#: seconds to wait for every closed connection to be seen closed
DEADLINE = 30.0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _until_fds_at_most(bound: int) -> int:
    """The fd count once it is at most `bound`, or the last count at the deadline:
    the closes are events of the loop, so give it turns until they have run."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while (count := _fds()) > bound and loop.time() < end:
        await asyncio.sleep(0.01)
    return count


async def _clients(address: str, *, half_close: bool) -> None:
    host, port = address.rsplit(":", 1)
    for i in range(CLIENTS):
        reader, writer = await asyncio.open_connection(host, int(port))
        payload = f"ping {i}".encode()
        writer.write(payload)
        if half_close:
            writer.write_eof()
            assert await reader.read() == payload  # all of it, then the echo's EOF
        else:
            assert await reader.readexactly(len(payload)) == payload
        writer.close()
        await writer.wait_closed()


async def test_closed_clients_leave_no_fds_on_the_echo_service() -> None:
    async with EchoService() as echo:
        baseline = _fds()
        await _clients(echo.address, half_close=False)
        await _clients(echo.address, half_close=True)
        assert await _until_fds_at_most(baseline + SLACK) <= baseline + SLACK
        assert len(echo.connections) <= SLACK


async def test_closed_clients_leave_no_fds_through_the_proxy() -> None:
    scenario = Scenario.ephemeral(
        kafka={"enabled": False}, grpc={"enabled": False}, http={"enabled": False}
    )
    async with Testbed(scenario) as tb:
        baseline = _fds()
        await _clients(tb.addresses["echo"], half_close=False)
        await _clients(tb.addresses["echo"], half_close=True)
        assert await _until_fds_at_most(baseline + SLACK) <= baseline + SLACK


async def test_stop_closes_connections_still_open() -> None:
    echo = EchoService()
    await echo.start()
    host, port = echo.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    await echo.stop()
    assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # the service's side is gone
    writer.close()
    assert not echo.connections
