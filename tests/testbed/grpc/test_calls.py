"""All four call kinds, aio and sync clients, over h2c and TLS."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from testbed.grpc import Behaviour, method_path
from testbed.grpc.client import CallResult

from .conftest import Target

OK = grpc.StatusCode.OK
KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")


def expected_responses(kind: str, count: int, n: int) -> int:
    return {"Unary": 1, "ServerStream": count, "ClientStream": 1, "Bidi": count * n}[kind]


def check_ok(result: CallResult, kind: str, count: int, n: int, size: int) -> None:
    assert result.code is OK, result.details
    assert len(result.responses) == expected_responses(kind, count, n)
    assert [r.seq for r in result.responses] == list(
        range(1, len(result.responses) + 1)
    ) or kind == "ClientStream"
    for response in result.responses:
        assert response.method == method_path(kind)
        assert len(response.payload) == size
        assert response.metadata["x-test"] == "yes"
    assert result.trailer("x-testbed-sent") == str(len(result.responses))
    received = 1 if kind in ("Unary", "ServerStream") else n
    assert result.trailer("x-testbed-received") == str(received)


@pytest.mark.parametrize("kind", KINDS)
async def test_aio_calls(target: Target, kind: str) -> None:
    behaviour = Behaviour(count=3, size=100)
    async with target.aio() as client:
        result = await client.call(
            kind, behaviour, n=2, payload=b"abc", tag="t", metadata=[("x-test", "yes")], timeout=10
        )
    check_ok(result, kind, 3, 2, 100)
    if kind == "ClientStream":
        (response,) = result.responses
        assert (response.requests_seen, response.request_payload_size) == (2, 6)
        assert response.tag == "t#2"
    if kind == "Bidi":
        assert [r.tag for r in result.responses] == ["t#1"] * 3 + ["t#2"] * 3
    stats = target.service.stats(kind)
    assert (stats.started, stats.finished, stats.statuses["OK"]) == (1, 1, 1)
    assert stats.messages_out == len(result.responses)
    assert stats.messages_in == (1 if kind in ("Unary", "ServerStream") else 2)
    assert stats.bytes_out == sum(r.ByteSize() for r in result.responses)


@pytest.mark.parametrize("kind", KINDS)
async def test_sync_calls(target: Target, kind: str) -> None:
    def run() -> CallResult:
        with target.sync() as client:
            return client.call(
                kind, Behaviour(count=2, size=7), n=3, metadata=[("x-test", "yes")], timeout=10
            )

    # The server runs on this loop: a blocking client must run elsewhere.
    result = await asyncio.to_thread(run)
    check_ok(result, kind, 2, 3, 7)
    assert target.service.stats(kind).statuses == {"OK": 1}


@pytest.mark.parametrize("kind", KINDS)
async def test_errors_reach_both_clients(target: Target, kind: str) -> None:
    behaviour = Behaviour.make(status="PERMISSION_DENIED", message="go away", count=2)
    async with target.aio() as client:
        aio_result = await client.call(kind, behaviour, timeout=10)

    def run() -> CallResult:
        with target.sync() as client:
            return client.call(kind, behaviour, timeout=10)

    sync_result = await asyncio.to_thread(run)
    for result in (aio_result, sync_result):
        assert result.code is grpc.StatusCode.PERMISSION_DENIED
        assert result.details == "go away"
        # Streams send what they were asked to before the status; the others nothing.
        sent = 2 if kind in ("ServerStream", "Bidi") else 0
        assert len(result.responses) == sent
        assert result.trailer("x-testbed-sent") == str(sent)
    assert target.service.stats(kind).statuses == {"PERMISSION_DENIED": 2}
