"""The testbed's extensions to GripMock's format, on the wire: a stream failing
after N messages, trailers, templated answers, delays past a deadline, and a
sequence that makes grpcio's own retry policy retry."""

from __future__ import annotations

import json

import grpc
import pytest

from testbed.grpc_fakes.schema import Schema
from testbed.journal import GrpcCall
from testbed.threaded import TestbedThread
from tests.peers import wait_for

from .conftest import TIMEOUT, Catalog

#: Seconds a client waits for the slow stub.
DEADLINE = 3.0


def calls_of(tb: TestbedThread, method: str) -> list[GrpcCall]:
    out = [c for c in tb.journal.grpc(method) if isinstance(c, GrpcCall)]
    return out


def test_a_stream_fails_after_n_messages(shop: TestbedThread, catalog: Catalog) -> None:
    f = catalog._callable("ListItems", "unary_stream")
    call = f(catalog.cls("ListItems")(category=2), timeout=TIMEOUT)  # CATEGORY_TOOL
    got = []
    with pytest.raises(grpc.RpcError) as caught:
        for item in call:
            got.append(item.id)
    assert got == ["tool-1", "tool-2"]
    err = caught.value
    assert (err.code(), err.details()) == (grpc.StatusCode.UNAVAILABLE, "warehouse offline")
    assert ("x-retry-after", "5") in tuple(err.trailing_metadata())
    (entry,) = calls_of(shop, "ListItems")
    assert (entry.responses, entry.status, entry.stub, entry.matched) == (
        2,
        "UNAVAILABLE",
        "tools-fail-midway",
        True,
    )


def test_trailers_ride_on_a_successful_answer(shop: TestbedThread, catalog: Catalog) -> None:
    item, call = catalog.get_item(id="book-2")
    assert item.name == "Refactoring"
    assert ("x-cache", "hit") in tuple(call.trailing_metadata())


def test_a_templated_answer_is_filled_from_the_request(
    shop: TestbedThread, catalog: Catalog
) -> None:
    item, _ = catalog.get_item(id="echo-42")
    assert (item.id, item.name) == ("echo-42", "echo of echo-42")
    assert [c.stub for c in calls_of(shop, "GetItem")] == ["echo-template"]


def test_a_templated_answer_that_does_not_fit_is_internal(
    shop: TestbedThread, catalog: Catalog
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        catalog.get_item(id="misfit")
    err = caught.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "misfit-template" in err.details() and "shop.v1.Item" in err.details()
    (entry,) = calls_of(shop, "GetItem")
    assert (entry.status, entry.stub) == ("INTERNAL", "misfit-template")


def test_a_delay_past_the_deadline_is_journalled_as_cancelled(
    shop: TestbedThread, catalog: Catalog
) -> None:
    f = catalog._callable("GetItem", "unary_unary")
    with pytest.raises(grpc.RpcError) as caught:
        # long enough for the call to reach the fake on a loaded machine (the
        # journal has nothing to say about a call that never got there), far
        # shorter than the stub's 60 s delay
        f(catalog.cls("GetItem")(id="slow"), timeout=DEADLINE)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the fake journals the call when grpcio cancels its handler, just after
    assert wait_for(lambda: len(calls_of(shop, "GetItem")) == 1, TIMEOUT)
    (entry,) = calls_of(shop, "GetItem")
    assert (entry.status, entry.stub, entry.responses) == ("CANCELLED", "slow", 0)


RETRY_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "shop.v1.Catalog"}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def test_a_sequence_drives_grpcios_retry_policy(shop: TestbedThread, shop_schema: Schema) -> None:
    options = [("grpc.service_config", json.dumps(RETRY_CONFIG)), ("grpc.enable_retries", 1)]
    with grpc.insecure_channel(shop.address("shop"), options=options) as channel:
        item, _ = Catalog(shop_schema, channel).get_item(id="flaky")
    assert item.name == "Second time lucky"
    calls = calls_of(shop, "shop.v1.Catalog/GetItem")
    assert [(c.status, c.stub) for c in calls] == [("UNAVAILABLE", "flaky"), ("OK", "flaky")]
