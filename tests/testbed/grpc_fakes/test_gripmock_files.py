"""Stub files written for GripMock serve unchanged: GripMock's own example
service, with header matching from real grpcio metadata through the proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from testbed.grpc_fakes.schema import Schema, from_protos
from testbed.threaded import TestbedThread

from .conftest import TIMEOUT, only_grpc

HERE = Path(__file__).resolve().parents[3] / "fixtures" / "grpc_fakes" / "gripmock"


@pytest.fixture(scope="module")
def greeter() -> Iterator[tuple[TestbedThread, Schema]]:
    proto = HERE / "helloworld.proto"
    service = {"name": "greeter", "protos": [str(proto)], "stubs": [str(HERE / "stubs")]}
    with TestbedThread(only_grpc(service)) as tb:
        yield tb, from_protos([proto])


def say_hello(
    target: tuple[TestbedThread, Schema], name: str, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[str, dict[str, Any]]:
    tb, schema = target
    m = schema.methods["helloworld.Greeter/SayHello"]
    with grpc.insecure_channel(tb.address("greeter")) as channel:
        call = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=m.input.SerializeToString,
            response_deserializer=m.output.FromString,
        )
        reply, info = call.with_call(m.input(name=name), metadata=metadata, timeout=TIMEOUT)
    return reply.message, dict(info.initial_metadata())


def test_a_plain_equals_stub(greeter: tuple[TestbedThread, Schema]) -> None:
    assert say_hello(greeter, "gripmock")[0] == "Hello GripMock"


def test_headers_match_the_calls_metadata(greeter: tuple[TestbedThread, Schema]) -> None:
    message, headers = say_hello(greeter, "Alice", (("x-env", "prod"),))
    assert message == "Hello Alice"
    assert headers["x-served-by"] == "gripmock"
    with pytest.raises(grpc.RpcError) as caught:
        say_hello(greeter, "Alice", (("x-env", "dev"),))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    tb, _ = greeter
    calls = tb.journal.grpc("helloworld.Greeter/SayHello").where(
        lambda c: c.messages == ({"name": "Alice"},)
    )
    assert [(c.matched, c.metadata["x-env"]) for c in calls] == [(True, "prod"), (False, "dev")]


def test_options_times_answers_once(greeter: tuple[TestbedThread, Schema]) -> None:
    assert say_hello(greeter, "once")[0] == "only once"
    with pytest.raises(grpc.RpcError) as caught:
        say_hello(greeter, "once")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_error_code_as_a_number(greeter: tuple[TestbedThread, Schema]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        say_hello(greeter, "ghost")
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "User not found",
    )
