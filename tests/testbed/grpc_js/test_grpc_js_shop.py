"""Acceptance 1, the Node half: @grpc/grpc-js calls a user's fake through the proxy.

The shop fixture (fixtures/grpc_fakes/shop) is a user service defined only by
its .proto and GripMock stub files. grpc-js loads the same .proto with
proto-loader (no codegen on the client side either), makes one call of every
kind through the proxy's listener in front of the fake, and must get exactly
the stubbed answers; the journal must show exactly those calls. The calls are
tests/node/shop_client.js's, in its order: GetItem, ListItems, RecordPrices,
Chat, GetItem of the withdrawn item, GetItem of an unknown one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest
from google.rpc import error_details_pb2, status_pb2

from testbed.journal import GrpcCall
from testbed.threaded import TestbedThread

from .node_client import SHOP_CLIENT, require_grpc_js, run_script

SHOP = SHOP_CLIENT.parents[2] / "fixtures" / "grpc_fakes" / "shop"
CATALOG = "shop.v1.Catalog"
#: the get-book-1 stub's item as proto-loader renders it (keepCase, 64-bit
#: integers and enums as strings, fields at their default value left out)
BOOK_1 = {
    "id": "book-1",
    "name": "The Pragmatic Programmer",
    "category": "CATEGORY_BOOK",
    "price": {"currency": "EUR", "micros": "42500000"},
    "tags": ["classic", "craft"],
    "dimensions": {"width_mm": 190, "height_mm": 235},
    "updated_at": {"seconds": "1767323045"},  # 2026-01-02T03:04:05Z
}


@dataclass(frozen=True)
class ShopRun:
    """What grpc-js printed, one dict per call in plan order, and what the
    journal held afterwards: entries per method, and the service's total."""

    lines: list[dict[str, Any]]
    journal: dict[str, list[GrpcCall]]
    total: int


@pytest.fixture(scope="module")
def run() -> ShopRun:
    """The plan's calls, made once for the module's tests (one testbed start)."""
    node = require_grpc_js()
    with TestbedThread(SHOP / "scenario.yaml") as tb:
        lines = run_script(node, SHOP_CLIENT, tb.addresses["shop"], calls=6)
        journal = {
            method: [e for e in tb.journal.grpc(f"{CATALOG}/{method}") if isinstance(e, GrpcCall)]
            for method in ("GetItem", "ListItems", "RecordPrices", "Chat")
        }
        total = tb.journal.grpc(service="shop").count()
    return ShopRun(lines, journal, total)


def test_unary_gets_the_stubbed_item_and_headers(run: ShopRun) -> None:
    get = run.lines[0]
    assert (get["kind"], get["status"], get["code"]) == ("unary", "OK", 0)
    assert get["messages"] == [BOOK_1]
    assert get["headers"]["x-stub"] == ["get-book-1"]


def test_server_stream_gets_the_three_stubbed_items(run: ShopRun) -> None:
    listed = run.lines[1]
    assert (listed["kind"], listed["status"]) == ("server_streaming", "OK")
    assert listed["messages"] == [
        {"id": "book-1", "name": "The Pragmatic Programmer", "category": "CATEGORY_BOOK"},
        {"id": "book-2", "name": "Refactoring", "category": "CATEGORY_BOOK"},
        {
            "id": "book-3",
            "name": "Working Effectively with Legacy Code",
            "category": "CATEGORY_BOOK",
        },
    ]


def test_client_stream_is_matched_on_every_message(run: ShopRun) -> None:
    recorded = run.lines[2]
    assert (recorded["kind"], recorded["status"]) == ("client_streaming", "OK")
    assert recorded["messages"] == [{"count": 2, "total_micros": "350"}]


def test_bidi_answers_each_message_by_its_own_stub(run: ShopRun) -> None:
    chat = run.lines[3]
    assert (chat["kind"], chat["status"]) == ("bidi", "OK")
    assert chat["messages"] == [{"text": "hi there"}, {"text": "see you"}]


def test_stubbed_error_carries_rich_details_in_the_trailers(run: ShopRun) -> None:
    gone = run.lines[4]
    assert (gone["code"], gone["status"], gone["details"]) == (
        5,
        "NOT_FOUND",
        "item gone was withdrawn",
    )
    assert gone["messages"] == []
    (raw,) = gone["trailers"]["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(raw))
    assert (status.code, status.message) == (5, "item gone was withdrawn")
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "ITEM_WITHDRAWN",
        "shop.example.com",
        {"id": "gone"},
    )


def test_unmatched_call_fails_and_is_journalled_as_unmatched(run: ShopRun) -> None:
    missing = run.lines[5]
    assert missing["status"] != "OK"
    (unmatched,) = [e for e in run.journal["GetItem"] if not e.matched]
    assert unmatched.messages == ({"id": "no-such-item"},)


def test_journal_counts_every_call_exactly(run: ShopRun) -> None:
    assert {m: len(e) for m, e in run.journal.items()} == {
        "GetItem": 3,
        "ListItems": 1,
        "RecordPrices": 1,
        "Chat": 1,
    }
    assert run.total == 6
    assert [e.stub for e in run.journal["GetItem"]] == ["get-book-1", "get-gone", None]
    (listed,) = run.journal["ListItems"]
    assert listed.metadata["x-caller"] == "grpc-js"
    assert listed.responses == 3
    (recorded,) = run.journal["RecordPrices"]
    assert recorded.messages == (
        {"id": "book-1", "micros": "100"},
        {"id": "book-2", "micros": "250"},
    )
    (chat,) = run.journal["Chat"]
    assert chat.messages == ({"text": "hello"}, {"text": "bye"})
