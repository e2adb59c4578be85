"""The one journal: bounded, ordered, queryable, with verification that shows near misses."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.journal import GrpcCall, HttpRequest, Journal, KafkaEvent, entry_from_json


def test_queries_pick_by_protocol_service_method_path_and_topic() -> None:
    j = Journal()
    j.record(GrpcCall(service="shop", method="shop.v1.Catalog/GetItem", stub="s1"))
    j.record(GrpcCall(service="shop", method="shop.v1.Catalog/ListItems", stub="s2"))
    j.record(HttpRequest(service="api", method="POST", path="/orders", url="/orders?x=1"))
    j.record(HttpRequest(service="api", method="GET", path="/orders", url="/orders"))
    j.record(
        KafkaEvent(service="kafka", operation="produce", topic="orders", partition=0, offset=0)
    )
    j.record(KafkaEvent(service="kafka", operation="commit", topic="orders", group="g", offset=1))
    assert j.grpc("shop.v1.Catalog/GetItem").count() == 1
    assert j.grpc("Catalog/GetItem").count() == 1  # a suffix names the method
    assert j.grpc("GetItem").count() == 1
    assert j.grpc().count() == 2
    assert j.http(method="post", path="/orders").count() == 1
    assert j.http(path="/orders").count() == 2
    assert j.kafka(topic="orders").count() == 2
    assert j.kafka(topic="orders", operation="produce").count() == 1
    assert [e.seq for e in j.entries()] == [1, 2, 3, 4, 5, 6]
    assert j.query(protocol="http", service="api", method="GET")[0].url == "/orders"


def test_the_journal_is_bounded_and_counts_what_it_dropped() -> None:
    j = Journal(limit=3)
    for i in range(10):
        j.record(KafkaEvent(service="kafka", operation="produce", topic="t", offset=i))
    assert [e.offset for e in j.entries()] == [7, 8, 9]  # type: ignore[attr-defined]
    assert j.dropped == 7
    assert j.to_json()["dropped"] == 7


def test_assert_called_passes_on_the_count_and_fails_with_the_near_misses() -> None:
    j = Journal()
    j.record(GrpcCall(service="shop", method="shop.v1.Catalog/GetItem", stub="s1"))
    j.record(
        GrpcCall(
            service="shop",
            method="shop.v1.Catalog/GetItem",
            matched=False,
            status="NOT_FOUND",
            near_misses=("stub s1: input.equals.id: want '1', got '2'",),
        )
    )
    view = j.grpc("shop.v1.Catalog/GetItem")
    view.assert_called(times=2)
    view.matched.assert_called(times=1)
    with pytest.raises(AssertionError) as failed:
        view.assert_called(times=2, where=lambda e: e.matched)
    text = str(failed.value)
    assert "expected 2 gRPC calls of shop.v1.Catalog/GetItem, got 1" in text
    assert "near miss: stub s1: input.equals.id: want '1', got '2'" in text
    with pytest.raises(AssertionError, match="expected at least 1"):
        j.grpc("Catalog/Missing").assert_called()


def test_a_child_process_source_is_merged_in_time_order() -> None:
    j = Journal()
    first = HttpRequest(service="api", method="GET", path="/a", at_ns=10)
    j.record(first)
    remote = [GrpcCall(service="shop", method="x.S/M", at_ns=5).to_json()]
    cleared: list[bool] = []
    j.add_source(lambda: [entry_from_json(r) for r in remote], lambda: cleared.append(True))
    assert [e.protocol for e in j.entries()] == ["grpc", "http"]
    j.clear()
    assert cleared == [True]
    assert j.http().count() == 0


def test_reads_from_other_threads_while_entries_arrive() -> None:
    j = Journal(limit=500)
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                j.kafka(topic="t").count()
            except BaseException as exc:  # the failure under test: record it for the assert
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(20_000):
        j.record(KafkaEvent(service="kafka", operation="produce", topic="t", offset=i))
    stop.set()
    reader.join()
    assert errors == []
    assert j.dropped == 20_000 - 500


texts = st.text(max_size=20)


@given(
    st.one_of(
        st.builds(
            GrpcCall,
            service=texts,
            method=texts,
            messages=st.lists(st.dictionaries(texts, st.integers()), max_size=3).map(tuple),
            metadata=st.dictionaries(texts, texts, max_size=3),
            near_misses=st.lists(texts, max_size=2).map(tuple),
        ),
        st.builds(HttpRequest, service=texts, method=texts, path=texts, body=texts),
        st.builds(KafkaEvent, service=texts, operation=texts, topic=texts, offset=st.integers()),
    )
)
def test_entries_survive_the_json_trip_between_processes(
    entry: GrpcCall | HttpRequest | KafkaEvent,
) -> None:
    import json

    assert entry_from_json(json.loads(json.dumps(entry.to_json()))) == entry
