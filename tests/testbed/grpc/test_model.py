"""Hypothesis against the live service: what a client sees matches a model.

The model is the behaviour table in docs/testbed-grpc.md, written as a small
function; every example is a real call through grpcio.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.grpc import Behaviour, ThreadedGrpcService
from testbed.grpc.client import SyncClient

Code = grpc.StatusCode
KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")


def predict(kind: str, b: Behaviour, n: int) -> tuple[int, grpc.StatusCode]:
    """(responses the client receives, final status) for one call."""
    status = b.status or Code.OK
    failure = Code.UNAVAILABLE if status is Code.OK else status
    count = 1 if b.count is None else b.count
    limit = b.fail_after
    if kind == "Unary":
        if limit == 0:
            return 0, failure
        return (0, status) if status is not Code.OK else (1, Code.OK)
    if kind == "ClientStream":  # fail_after counts requests in
        if limit is not None and limit <= n:
            return 0, failure
        return (0, status) if status is not Code.OK else (1, Code.OK)
    due = count if kind == "ServerStream" else count * n
    if limit is not None and (limit < due or limit == 0):
        return limit, failure
    return due, status


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedGrpcService]:
    with ThreadedGrpcService() as svc:
        yield svc


@pytest.fixture(scope="module")
def client(server: ThreadedGrpcService) -> Iterator[SyncClient]:
    with SyncClient.connect(server.address) as c:
        yield c


programs = st.builds(
    Behaviour,
    status=st.none() | st.sampled_from([Code.OK, Code.NOT_FOUND, Code.INTERNAL]),
    message=st.none() | st.sampled_from(["", "boom"]),
    count=st.none() | st.integers(0, 4),
    size=st.none() | st.integers(0, 64),
    fail_after=st.none() | st.integers(0, 5),
)


@given(kind=st.sampled_from(KINDS), behaviour=programs, n=st.integers(1, 3))
def test_calls_follow_the_model(
    server: ThreadedGrpcService, client: SyncClient, kind: str, behaviour: Behaviour, n: int
) -> None:
    before = server.stats(kind)
    result = client.call(kind, behaviour, n=n, timeout=30)
    responses, code = predict(kind, behaviour, n)
    assert (len(result.responses), result.code) == (responses, code), result.details
    assert [len(r.payload) for r in result.responses] == [behaviour.size or 0] * responses
    if code is not Code.OK and behaviour.message and behaviour.fail_after is None:
        assert result.details == behaviour.message
    assert result.trailer("x-testbed-sent") == str(responses)
    after = server.stats(kind)
    assert after.finished == before.finished + 1
    assert after.messages_out == before.messages_out + responses
    assert after.statuses[code.name] == before.statuses[code.name] + 1


def test_threaded_control_api(server: ThreadedGrpcService, client: SyncClient) -> None:
    server.program("Unary", status="ABORTED")
    try:
        assert client.unary(timeout=10).code is Code.ABORTED
    finally:
        server.reset()
    assert client.unary(timeout=10).ok
    assert server.counters()["Unary"]["statuses"] == {"OK": 1}
