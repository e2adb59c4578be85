"""Behaviour programs: per request, per method, and how they combine."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.grpc import Behaviour, FakeGrpcService, status_code
from testbed.grpc.behaviour import MAX_SIZE, BehaviourError, resolve
from testbed.grpc.client import AioClient, make_request, make_requests
from testbed.grpc.names import method_name, method_path

Code = grpc.StatusCode


# -- pure parts ---------------------------------------------------------------

statuses = st.sampled_from(list(grpc.StatusCode))
behaviours = st.builds(
    Behaviour,
    latency=st.none() | st.integers(0, 60_000).map(lambda ms: ms / 1000),
    interval=st.none() | st.integers(0, 60_000).map(lambda ms: ms / 1000),
    status=st.none() | statuses,
    message=st.none() | st.text(max_size=20),
    count=st.none() | st.integers(0, 2**32 - 1),
    size=st.none() | st.integers(0, 2**32 - 1),
    fail_after=st.none() | st.integers(0, 2**32 - 1),
)


@given(behaviours)
def test_behaviour_survives_the_wire(behaviour: Behaviour) -> None:
    wire = behaviour.to_proto().SerializeToString()
    assert Behaviour.from_proto(type(behaviour.to_proto()).FromString(wire)) == behaviour


@given(behaviours, behaviours)
def test_request_fields_win_over_the_program(request: Behaviour, program: Behaviour) -> None:
    merged = request.over(program)
    for name in ("latency", "interval", "status", "message", "count", "size", "fail_after"):
        mine = getattr(request, name)
        assert getattr(merged, name) == (getattr(program, name) if mine is None else mine)


def test_defaults_and_caps() -> None:
    plan = resolve(None, None)
    assert (plan.count, plan.size, plan.status, plan.fail_after) == (1, 0, Code.OK, None)
    with pytest.raises(BehaviourError):
        resolve(Behaviour(size=MAX_SIZE + 1), None)
    with pytest.raises(BehaviourError):
        resolve(Behaviour(latency=61.0), None)


def test_status_and_method_names() -> None:
    assert status_code(14) is status_code("unavailable") is Code.UNAVAILABLE
    with pytest.raises(ValueError):
        status_code(99)
    assert method_name(method_path("Bidi")) == "Bidi"
    with pytest.raises(ValueError):
        method_name("/other.Svc/Unary")
    with pytest.raises(ValueError):
        method_name("Nope")


# -- against the running service ------------------------------------------------


async def test_method_program_applies_and_request_overrides(
    service: FakeGrpcService, client: AioClient
) -> None:
    service.program("ServerStream", count=4, size=3, status="RESOURCE_EXHAUSTED", message="full")
    result = await client.server_stream(timeout=10)
    assert result.code is Code.RESOURCE_EXHAUSTED and result.details == "full"
    assert [len(r.payload) for r in result.responses] == [3, 3, 3, 3]

    result = await client.server_stream(Behaviour.make(status=0, count=2), timeout=10)
    assert result.ok and len(result.responses) == 2

    # Programs are per method: Unary is untouched.
    assert (await client.unary(timeout=10)).ok

    service.reset()
    result = await client.server_stream(timeout=10)
    assert result.ok and len(result.responses) == 1
    assert service.stats("ServerStream").started == 1  # counters were zeroed


@pytest.mark.parametrize(
    ("kind", "sent"),
    [("Unary", 0), ("ServerStream", 2), ("ClientStream", 0), ("Bidi", 2)],
)
async def test_fail_after(
    client: AioClient, service: FakeGrpcService, kind: str, sent: int
) -> None:
    result = await client.call(kind, Behaviour(count=5, fail_after=2), n=3, timeout=10)
    if kind == "Unary":  # a single response is never "more than 2": fail_after=0 fails it
        assert result.ok
        result = await client.call(kind, Behaviour(fail_after=0), timeout=10)
    assert result.code is Code.UNAVAILABLE, result.details
    assert len(result.responses) == sent
    if kind == "ClientStream":  # fails once the second request arrives
        assert result.trailer("x-testbed-received") == "2"
    assert service.stats(kind).statuses["UNAVAILABLE"] == 1


async def test_fail_after_uses_the_programmed_status(client: AioClient) -> None:
    behaviour = Behaviour.make(count=3, fail_after=1, status="ABORTED", message="cut")
    result = await client.bidi(behaviour, n=2, timeout=10)
    assert (result.code, result.details, len(result.responses)) == (Code.ABORTED, "cut", 1)


async def test_bad_program_is_invalid_argument(client: AioClient, service: FakeGrpcService) -> None:
    result = await client.unary(Behaviour(size=MAX_SIZE + 1), timeout=10)
    assert result.code is Code.INVALID_ARGUMENT
    request = make_request()
    request.behaviour.status_code = 99  # not a gRPC status
    result = await client.unary(requests=[request], timeout=10)
    assert result.code is Code.INVALID_ARGUMENT
    assert service.stats("Unary").statuses == {"INVALID_ARGUMENT": 2}


async def _finished(service: FakeGrpcService, method: str, n: int) -> None:
    """Wait until the server has counted `n` calls out (the client may see its end first)."""
    async with asyncio.timeout(10):
        while service.stats(method).finished < n:
            await asyncio.sleep(0.01)


async def test_latency_meets_the_deadline(client: AioClient, service: FakeGrpcService) -> None:
    # Far apart on purpose: the test checks behaviour, not timing.
    result = await client.unary(Behaviour(latency=30.0), timeout=0.2)
    assert result.code is Code.DEADLINE_EXCEEDED
    await _finished(service, "Unary", 1)
    assert service.stats("Unary").statuses == {"DEADLINE_EXCEEDED": 1}

    service.program("ServerStream", latency=30.0)
    result = await client.server_stream(timeout=0.2)
    assert result.code is Code.DEADLINE_EXCEEDED
    result = await client.server_stream(Behaviour(latency=0.0), timeout=10)
    assert result.ok


async def test_cancelled_calls_are_counted(client: AioClient, service: FakeGrpcService) -> None:
    call = client.stub.Bidi(iter(make_requests(1, Behaviour(latency=30.0))))
    async with asyncio.timeout(10):
        while service.stats("Bidi").messages_in < 1:
            await asyncio.sleep(0.01)
    call.cancel()
    await _finished(service, "Bidi", 1)
    stats = service.stats("Bidi")
    assert (stats.active, stats.statuses["CANCELLED"]) == (0, 1)


async def test_large_payloads(client: AioClient) -> None:
    result = await client.server_stream(Behaviour(count=3, size=1_000_000), timeout=30)
    assert result.ok
    assert [len(r.payload) for r in result.responses] == [1_000_000] * 3


async def test_stream_cancelled_mid_flight_is_counted(
    client: AioClient, service: FakeGrpcService
) -> None:
    """Cancelled while the server is blocked sending (flow control), not sleeping."""
    call = client.stub.ServerStream(make_request(Behaviour(count=1000, size=1_000_000)))
    first = await call.read()
    assert first.seq == 1
    call.cancel()
    await _finished(service, "ServerStream", 1)
    stats = service.stats("ServerStream")
    assert (stats.active, stats.statuses["CANCELLED"]) == (0, 1)
    assert stats.messages_out < 1000
