"""Tests of a (pretend) shop's clients against fakes of its own services.

`scenario.yaml` declares the fakes from this project's files: the Catalog
gRPC service from its .proto and GripMock stubs, the prices HTTP API from
WireMock mappings, and an `orders` topic seeded from JSON lines. Each test gets
its own testbed on free ports (the `testbed` fixture and its handles
`grpc_fake`, `http_fake` and `kafka_fake` come from protoproxy's pytest plugin).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

# The client classes, from the .proto at import time (grpcio-tools): no codegen step.
sys.path.insert(0, str(Path(__file__).parent / "protos"))
shop_pb2, shop_pb2_grpc = grpc.protos_and_services("shop/v1/shop.proto")

pytestmark = pytest.mark.testbed("scenario.yaml")


def test_the_catalog_answers_as_stubbed(grpc_fake):
    with grpc.insecure_channel(grpc_fake.target()) as channel:
        catalog = shop_pb2_grpc.CatalogStub(channel)
        item = catalog.GetItem(shop_pb2.GetItemRequest(id="sku-1"), timeout=30)
        assert (item.name, item.price_cents) == ("Teapot", 1999)
        with pytest.raises(grpc.RpcError) as missing:
            catalog.GetItem(shop_pb2.GetItemRequest(id="sku-404"), timeout=30)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        listed = catalog.ListItems(shop_pb2.ListItemsRequest(category="kitchen"), timeout=30)
        assert [i.name for i in listed] == ["Teapot", "Kettle"]
    # the journal: what the fake received, and which stub answered
    grpc_fake.journal("shop.v1.Catalog/GetItem").assert_called(times=2)
    grpc_fake.journal("shop.v1.Catalog/ListItems").assert_called(times=1)


def test_a_stub_added_during_the_test(grpc_fake):
    grpc_fake.add_stub(
        {
            "service": "shop.v1.Catalog",
            "method": "GetItem",
            "input": {"equals": {"id": "sku-9"}},
            "output": {"data": {"id": "sku-9", "name": "Whisk", "price_cents": 499}},
        }
    )
    with grpc.insecure_channel(grpc_fake.target()) as channel:
        item = shop_pb2_grpc.CatalogStub(channel).GetItem(
            shop_pb2.GetItemRequest(id="sku-9"), timeout=30
        )
    assert item.name == "Whisk"


def test_prices_come_from_the_wiremock_mappings(http_fake):
    with urllib.request.urlopen(http_fake.url() + "/prices?sku=sku-1", timeout=30) as response:
        assert json.load(response) == {"sku": "sku-1", "cents": 1999}
    http_fake.journal(method="GET", path="/prices").assert_called(times=1)


def test_the_orders_topic_starts_with_the_seed_records(kafka_fake):
    consumer = KafkaConsumer(bootstrap_servers=kafka_fake.bootstrap, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition("orders", 0)])
    consumer.seek_to_beginning()
    records = []
    for record in consumer:
        records.append((record.key, json.loads(record.value)))
        if len(records) == 2:
            break
    consumer.close()
    assert records == [
        (b"sku-1", {"sku": "sku-1", "qty": 2}),
        (b"sku-2", {"sku": "sku-2", "qty": 1}),
    ]


@pytest.mark.asyncio
async def test_an_async_client_in_strict_mode(grpc_fake):
    async with grpc.aio.insecure_channel(grpc_fake.target()) as channel:
        catalog = shop_pb2_grpc.CatalogStub(channel)
        item = await catalog.GetItem(shop_pb2.GetItemRequest(id="sku-1"), timeout=30)
    assert item.id == "sku-1"
    assert grpc_fake.journal("GetItem").count() == 1


def test_a_topic_created_during_the_test(kafka_fake):
    kafka_fake.create_topic("returns", partitions=1, records=[{"key": "sku-1", "value": "cracked"}])
    producer = KafkaProducer(bootstrap_servers=kafka_fake.bootstrap)
    producer.send("returns", key=b"sku-2", value=b"too small", partition=0).get(timeout=30)
    producer.close()
    assert [r.value for r in kafka_fake.records("returns")] == [b"cracked", b"too small"]
    # the journal holds what clients produced (seed records are not a client's)
    (produced,) = kafka_fake.journal(topic="returns", operation="produce")
    assert (produced.key, produced.value, produced.offset) == ("sku-2", "too small", 1)
