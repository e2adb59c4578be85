"""Every call kind of a user's service, faked from its .proto and GripMock stubs,
answered through the proxy to a real grpcio client, and journalled."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from testbed.journal import GrpcCall
from testbed.threaded import TestbedThread

from .conftest import Catalog


def only_call(tb: TestbedThread, method: str) -> GrpcCall:
    calls = tb.journal.grpc(method).assert_called(times=1)
    call = calls[0]
    assert isinstance(call, GrpcCall)
    return call


def test_unary_answers_the_stub_with_its_headers(shop: TestbedThread, catalog: Catalog) -> None:
    item, call = catalog.get_item(id="book-1")
    assert json_format.MessageToDict(item, preserving_proto_field_name=True) == {
        "id": "book-1",
        "name": "The Pragmatic Programmer",
        "category": "CATEGORY_BOOK",
        "price": {"currency": "EUR", "micros": "42500000"},
        "tags": ["classic", "craft"],
        "dimensions": {"width_mm": 190, "height_mm": 235},
        "updated_at": "2026-01-02T03:04:05Z",
    }
    assert ("x-stub", "get-book-1") in tuple(call.initial_metadata())
    entry = only_call(shop, "shop.v1.Catalog/GetItem")
    assert entry.service == "shop"
    assert entry.messages == ({"id": "book-1"},)
    assert (entry.status, entry.responses, entry.stub, entry.matched) == (
        "OK",
        1,
        "get-book-1",
        True,
    )


def test_server_stream_sends_every_message(shop: TestbedThread, catalog: Catalog) -> None:
    items = catalog.list_items(category=1)  # CATEGORY_BOOK
    assert [i.id for i in items] == ["book-1", "book-2", "book-3"]
    entry = only_call(shop, "Catalog/ListItems")
    assert (entry.responses, entry.stub, entry.messages) == (
        3,
        "list-books",
        ({"category": "CATEGORY_BOOK"},),
    )


def test_client_stream_matches_the_received_messages(shop: TestbedThread, catalog: Catalog) -> None:
    summary = catalog.record_prices([{"id": "book-1", "micros": 100}, {"id": "book-2", "micros": 250}])
    assert (summary.count, summary.total_micros) == (2, 350)
    entry = only_call(shop, "shop.v1.Catalog/RecordPrices")
    assert entry.messages == ({"id": "book-1", "micros": "100"}, {"id": "book-2", "micros": "250"})
    assert entry.stub == "record-two"


def test_bidi_answers_each_message(shop: TestbedThread, catalog: Catalog) -> None:
    assert catalog.chat(["hello", "bye"]) == ["hi there", "see you"]
    entry = only_call(shop, "shop.v1.Catalog/Chat")
    assert entry.messages == ({"text": "hello"}, {"text": "bye"})
    assert (entry.responses, entry.status, entry.matched) == (2, "OK", True)


def test_unmatched_call_names_the_near_misses(shop: TestbedThread, catalog: Catalog) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        catalog.get_item(id="book-404")
    err = caught.value
    assert err.code() == grpc.StatusCode.NOT_FOUND  # GripMock's answer to "no stub"
    assert "get-book-1" in err.details()
    calls = shop.journal.grpc("shop.v1.Catalog/GetItem")
    assert (calls.count(), calls.unmatched.count()) == (1, 1)
    entry = calls[0]
    assert isinstance(entry, GrpcCall)
    assert entry.status == "NOT_FOUND" and entry.stub is None
    assert any("get-book-1" in miss for miss in entry.near_misses)
    with pytest.raises(AssertionError, match="near miss: .*get-book-1"):
        shop.journal.grpc("shop.v1.Catalog/GetItem").assert_called(
            times=1, where=lambda e: e.matched
        )


def test_rich_error_details_ride_in_the_trailer(shop: TestbedThread, catalog: Catalog) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        catalog.get_item(id="gone")
    err = caught.value
    assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "item gone was withdrawn")
    raw = dict(err.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert (status.code, status.message) == (5, "item gone was withdrawn")
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "ITEM_WITHDRAWN",
        "shop.example.com",
        {"id": "gone"},
    )
    entry = only_call(shop, "GetItem")
    assert (entry.status, entry.stub, entry.matched, entry.responses) == (
        "NOT_FOUND",
        "get-gone",
        True,
        0,
    )


def test_journal_keeps_metadata_with_secrets_redacted(
    shop: TestbedThread, catalog: Catalog
) -> None:
    catalog.get_item(
        id="book-1",
        metadata=(("authorization", "Bearer s3cret"), ("x-tenant", "acme"), ("cookie", "sid=1")),
    )
    entry = only_call(shop, "GetItem")
    assert entry.metadata["x-tenant"] == "acme"
    assert entry.metadata["authorization"] == "[redacted]"
    assert entry.metadata["cookie"] == "[redacted]"
    assert "s3cret" not in str(shop.admin.get("/testbed/journal?protocol=grpc"))


def test_admin_journal_lists_the_calls(shop: TestbedThread, catalog: Catalog) -> None:
    catalog.get_item(id="book-1")
    catalog.list_items(category=1)
    body = shop.admin.get("/testbed/journal?protocol=grpc&service=shop")
    assert [e["method"] for e in body["entries"]] == [
        "shop.v1.Catalog/GetItem",
        "shop.v1.Catalog/ListItems",
    ]
    shop.admin.delete("/testbed/journal")
    assert shop.journal.grpc().count() == 0
