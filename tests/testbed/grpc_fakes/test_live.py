"""Stubs added and removed while the fake runs: the admin API's
``/testbed/grpc/{service}/stubs`` and `tb.services[name].stubs`, no restart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from testbed.admin_client import AdminError
from testbed.grpc_fakes.schema import Schema
from testbed.threaded import TestbedThread

from .conftest import TIMEOUT, Catalog, only_grpc, shop_service

ROUTE = "/testbed/grpc/shop/stubs"

NEW_STUB: dict[str, Any] = {
    "service": "shop.v1.Catalog",
    "method": "GetItem",
    "input": {"equals": {"id": "book-9"}},
    "output": {"data": {"id": "book-9", "name": "Added live"}},
}


@pytest.fixture
def live() -> Iterator[TestbedThread]:
    """A testbed of its own (the tests clear its stubs), from a dict scenario."""
    with TestbedThread(only_grpc(shop_service())) as tb:
        yield tb


@pytest.fixture
def client(live: TestbedThread, shop_schema: Schema) -> Iterator[Catalog]:
    with grpc.insecure_channel(live.address("shop")) as channel:
        yield Catalog(shop_schema, channel)


def status_of(client: Catalog, item: str) -> grpc.StatusCode:
    try:
        client.get_item(id=item)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


def test_post_then_delete_changes_the_answer(live: TestbedThread, client: Catalog) -> None:
    assert status_of(client, "book-9") == grpc.StatusCode.NOT_FOUND
    created = live.admin.post(ROUTE, NEW_STUB)
    (ident,) = created["ids"]
    item, _ = client.get_item(id="book-9")
    assert item.name == "Added live"
    listed = live.admin.get(ROUTE)
    assert ident in {s["id"] for s in listed["stubs"]}
    assert listed["total"] == len(listed["stubs"])
    assert live.admin.delete(f"{ROUTE}/{ident}") is None
    assert status_of(client, "book-9") == grpc.StatusCode.NOT_FOUND
    calls = live.journal.grpc("GetItem")
    assert [c.matched for c in calls] == [False, True, False]
    assert calls[1].stub == ident


def test_delete_all_leaves_nothing_matching(live: TestbedThread, client: Catalog) -> None:
    assert status_of(client, "book-1") == grpc.StatusCode.OK
    live.admin.delete(ROUTE)
    assert live.admin.get(ROUTE) == {"stubs": [], "total": 0}
    assert status_of(client, "book-1") == grpc.StatusCode.NOT_FOUND


def test_a_stub_that_does_not_fit_the_schema_is_refused(live: TestbedThread) -> None:
    bad = {**NEW_STUB, "output": {"data": {"id": "x", "colour": "red"}}}
    with pytest.raises(AdminError) as caught:
        live.admin.post(ROUTE, [NEW_STUB, bad])
    assert caught.value.status == 400
    message = caught.value.body["error"]
    assert "colour" in message and "shop.v1.Item" in message and "output.data" in message
    # all or nothing: the good stub of the refused list was not kept
    assert all(s.get("input") != NEW_STUB["input"] for s in live.admin.get(ROUTE)["stubs"])


def test_a_stub_for_a_method_the_schema_lacks_is_refused(live: TestbedThread) -> None:
    with pytest.raises(AdminError) as caught:
        live.admin.post(ROUTE, {**NEW_STUB, "method": "DeleteItem"})
    assert caught.value.status == 400
    assert "DeleteItem" in caught.value.body["error"]
    assert "shop.v1.Catalog/GetItem" in caught.value.body["error"]  # what there is


@pytest.mark.parametrize("body", [None, [], "a stub", 7])
def test_a_body_that_is_no_stub_is_refused(live: TestbedThread, body: Any) -> None:
    with pytest.raises(AdminError) as caught:
        live.admin.request("POST", ROUTE, body)
    assert caught.value.status == 400


def test_unknown_service_is_404(live: TestbedThread) -> None:
    for method, path, body in (
        ("POST", "/testbed/grpc/nope/stubs", NEW_STUB),
        ("GET", "/testbed/grpc/nope/stubs", None),
        ("DELETE", "/testbed/grpc/nope/stubs", None),
        ("DELETE", "/testbed/grpc/nope/stubs/x", None),
    ):
        with pytest.raises(AdminError) as caught:
            live.admin.request(method, path, body)
        assert caught.value.status == 404, (method, path)
        assert "shop" in caught.value.body["error"]
    with pytest.raises(AdminError) as caught:
        live.admin.delete(f"{ROUTE}/no-such-stub")
    assert caught.value.status == 404


def test_the_handle_controls_stubs_from_python(live: TestbedThread, client: Catalog) -> None:
    fake = live.testbed.services["shop"]
    (ident,) = fake.stubs.add(NEW_STUB)
    assert client.get_item(id="book-9")[0].name == "Added live"
    assert ident in {s["id"] for s in fake.stubs.list()}
    assert fake.stubs.remove(ident) is True
    assert fake.stubs.remove(ident) is False
    assert status_of(client, "book-9") == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ValueError, match="colour"):
        fake.stubs.add({**NEW_STUB, "output": {"data": {"colour": "red"}}})


def test_in_process_fakes_serve_and_journal_the_same(shop_schema: Schema) -> None:
    with TestbedThread(only_grpc(shop_service(), in_process=True)) as tb:
        with grpc.insecure_channel(tb.address("shop")) as channel:
            client = Catalog(shop_schema, channel)
            assert client.get_item(id="book-1")[0].name == "The Pragmatic Programmer"
            (ident,) = tb.admin.post(ROUTE, NEW_STUB)["ids"]
            assert client.get_item(id="book-9")[0].name == "Added live"
        calls = tb.journal.grpc("shop.v1.Catalog/GetItem")
        assert [c.stub for c in calls] == ["get-book-1", ident]
        # the handle works from the test's thread too (the request hops onto the loop)
        fake = tb.testbed.services["shop"]
        assert fake.stubs.remove(ident) is True
        assert ident not in {s["id"] for s in fake.stubs.list()}


def test_journal_and_stubs_read_from_many_threads(live: TestbedThread, client: Catalog) -> None:
    """Control requests share one socket to the child: each thread must get its
    own answer, whole, while calls are journalled."""
    from concurrent.futures import ThreadPoolExecutor

    fake = live.testbed.services["shop"]
    stubs_before = len(fake.stubs.list())

    def read(i: int) -> tuple[int, int]:
        client.get_item(id="book-1")
        return len(live.journal.grpc("GetItem")), len(fake.stubs.list())

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(read, range(60)))
    assert all(n >= 1 and stubs == stubs_before for n, stubs in results)
    assert live.journal.grpc("shop.v1.Catalog/GetItem").matched.count() == 60


@pytest.mark.parametrize(
    ("matcher", "named"),
    [
        ({"input": {"equals": {"idd": "x"}}}, "input.equals.idd"),
        ({"input": {"anyOf": [{"equals": {"id": "a"}}, {"glob": {"nme": "b*"}}]}}, "nme"),
        (
            {"method": "ListItems", "input": {"equals": {"pageSize": 3}}},
            "the proto name of 'pageSize' is 'page_size'",
        ),
        (
            {"method": "RecordPrices", "inputs": [{"equals": {"id": "a"}}, {"equals": {"m": 1}}]},
            "inputs[1].equals.m",
        ),
    ],
)
def test_a_matcher_on_a_field_the_request_lacks_is_refused(
    live: TestbedThread, matcher: dict[str, Any], named: str
) -> None:
    stub = {k: v for k, v in NEW_STUB.items() if k != "input"}
    stub["output"] = {"data": {}}
    stub.update(matcher)
    with pytest.raises(AdminError) as caught:
        live.admin.post(ROUTE, stub)
    assert caught.value.status == 400
    assert named in caught.value.body["error"]


def test_rich_details_of_the_users_own_type(
    live: TestbedThread, client: Catalog, shop_schema: Schema
) -> None:
    from google.protobuf import message_factory
    from google.rpc import status_pb2

    money = {"@type": "type.googleapis.com/shop.v1.Money", "currency": "EUR", "micros": "5"}
    stub = {
        **NEW_STUB,
        "output": {"error": "too cheap", "code": "FAILED_PRECONDITION", "details": [money]},
    }
    live.admin.post(ROUTE, stub)
    with pytest.raises(grpc.RpcError) as caught:
        client.get_item(id="book-9")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    raw = dict(caught.value.trailing_metadata())["grpc-status-details-bin"]
    (detail,) = status_pb2.Status.FromString(raw).details
    money_cls = message_factory.GetMessageClass(
        shop_schema.pool.FindMessageTypeByName("shop.v1.Money")
    )
    decoded = money_cls()
    assert detail.Unpack(decoded)
    assert (decoded.currency, decoded.micros) == ("EUR", 5)


@pytest.mark.parametrize(
    ("detail", "named"),
    [
        ({"@type": "type.googleapis.com/shop.v1.Nope", "x": 1}, "shop.v1.Nope"),
        ({"type": "type.googleapis.com/google.rpc.ErrorInfo", "reasn": "X"}, "reasn"),
    ],
)
def test_rich_details_that_do_not_parse_are_refused(
    live: TestbedThread, detail: dict[str, Any], named: str
) -> None:
    stub = {**NEW_STUB, "output": {"error": "no", "code": 9, "details": [detail]}}
    with pytest.raises(AdminError) as caught:
        live.admin.post(ROUTE, stub)
    assert caught.value.status == 400
    message = caught.value.body["error"]
    assert "output.details[0]" in message and named in message


def test_a_gripmock_v1_data_list_streams_each_message(live: TestbedThread, client: Catalog) -> None:
    stub = {
        "service": "Catalog",
        "method": "ListItems",
        "input": {"equals": {"page_size": 2}},
        "output": {"data": [{"id": "v1-a"}, {"id": "v1-b"}]},
    }
    live.admin.post(ROUTE, stub)
    assert [i.id for i in client.list_items(page_size=2)] == ["v1-a", "v1-b"]
    with pytest.raises(AdminError) as caught:
        live.admin.post(ROUTE, {**stub, "output": {"data": [{"id": "ok"}, {"idx": "no"}]}})
    assert "output.data[1]" in caught.value.body["error"]


def test_a_crashed_fakes_process_is_unavailable_not_the_proxy(
    live: TestbedThread, client: Catalog
) -> None:
    import os
    import signal

    proc = live.testbed.services["grpc.fakes"]
    os.kill(proc.pid, signal.SIGKILL)  # what a crash in grpcio's C-core does to it
    assert proc.wait(TIMEOUT) == -signal.SIGKILL
    assert status_of(client, "book-1") == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(AdminError) as caught:
        live.admin.post(ROUTE, NEW_STUB)
    assert caught.value.status == 503
    assert "gone" in caught.value.body["error"]
    assert live.admin.get("/faults") is not None  # the proxy's admin API still serves
