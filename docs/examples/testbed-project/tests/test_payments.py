"""Tests of a (pretend) payments service's clients against the protoproxy testbed.

Each test gets its own testbed: a fake Kafka cluster and a fake gRPC service
behind the proxy, on free ports, stopped after the test.
"""

from __future__ import annotations

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from testbed.grpc.protos import testbed_pb2, testbed_pb2_grpc

# Every test in this module uses tests/scenario.yaml (relative to this file).
pytestmark = pytest.mark.protoproxy_scenario("scenario.yaml")


def metric(metrics_text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def test_sync_produce_and_consume(protoproxy_testbed):
    """A plain test: blocking clients, no event loop in sight."""
    tb = protoproxy_testbed
    producer = KafkaProducer(bootstrap_servers=tb.kafka_bootstrap)
    for i in range(5):
        producer.send("payments", key=b"card-1", value=f"pay {i}".encode())
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=tb.kafka_bootstrap, consumer_timeout_ms=10_000)
    consumer.assign([TopicPartition("payments", 0)])
    consumer.seek_to_beginning()
    values = [record.value for _, record in zip(range(5), consumer, strict=False)]
    consumer.close()
    assert values == [f"pay {i}".encode() for i in range(5)]

    # The proxy saw every record on its way to the broker.
    records = metric(tb.admin.metrics(), "protoproxy_kafka_produce_records_total", topic="payments")
    assert records == 5


@pytest.mark.asyncio  # strict mode: the marker is all pytest-asyncio needs
async def test_async_produce_and_consume(protoproxy_testbed):
    """An async test: aiokafka on the test's own loop, the testbed on its own thread."""
    tb = protoproxy_testbed
    producer = AIOKafkaProducer(bootstrap_servers=tb.kafka_bootstrap)
    await producer.start()
    try:
        sent = [await producer.send_and_wait("payments", f"async {i}".encode()) for i in range(3)]
    finally:
        await producer.stop()
    assert [m.offset for m in sent] == [0, 1, 2]

    consumer = AIOKafkaConsumer(bootstrap_servers=tb.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition("payments", 0)])
        batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
    finally:
        await consumer.stop()
    values = [r.value for records in batch.values() for r in records]
    assert values == [b"async 0", b"async 1", b"async 2"]


def test_grpc_fault_reaches_the_client(protoproxy_testbed):
    """A fault added through the admin API, seen by grpcio as the status it names."""
    tb = protoproxy_testbed
    tb.admin.add_fault(
        {
            "name": "payments-down",
            "match": {"protocol": "grpc", "method": "Unary"},
            "action": {"abort": {"status": "UNAVAILABLE", "message": "maintenance"}},
            "schedule": {"first": 1},
        }
    )
    with grpc.insecure_channel(tb.grpc_target) as channel:
        stub = testbed_pb2_grpc.TestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Unary(testbed_pb2.Request(tag="first"), timeout=30)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
        assert failed.value.details() == "maintenance"
        # `first: 1`: the next call goes through to the service.
        assert stub.Unary(testbed_pb2.Request(tag="second"), timeout=30).tag == "second"
    assert tb.admin.fault("payments-down")["stats"]["injected"] == 1


def test_kafka_fault_is_retried_by_the_producer(protoproxy_testbed):
    """A Kafka error injected through the Python API: kafka-python retries, and
    the record lands once."""
    tb = protoproxy_testbed
    with tb.faults.applied(
        name="not-leader",
        match={"protocol": "kafka", "api": "Produce", "topic": "payments"},
        action={"abort": {"error": "NOT_LEADER_OR_FOLLOWER"}},
        schedule={"first": 2},
    ):
        producer = KafkaProducer(bootstrap_servers=tb.kafka_bootstrap, retries=5)
        offset = producer.send("payments", b"retried").get(timeout=30).offset
        producer.close()
        assert tb.faults.injected("not-leader") == 2
    assert offset == 0
    errors = metric(tb.admin.metrics(), "protoproxy_kafka_errors_total", api="Produce")
    assert errors == 2


@pytest.mark.parametrize(
    "protoproxy_testbed",
    [{"kafka": {"brokers": 1}}, {"kafka": {"brokers": 3}}],
    indirect=True,
    ids=["1-broker", "3-brokers"],
)
def test_every_broker_is_reached_through_the_proxy(protoproxy_testbed):
    """An indirect parameter replaces the module's scenario file for this test."""
    tb = protoproxy_testbed
    brokers = tb.call(lambda testbed: len(testbed.services["kafka"].servers))
    producer = KafkaProducer(bootstrap_servers=tb.kafka_bootstrap)
    assert producer.partitions_for("orders")  # the default scenario's topic
    producer.close()
    # Metadata went through the proxy, which opened a listener per broker and
    # advertised it instead of the broker's own address.
    cluster = tb.admin.get("/kafka/brokers")["clusters"]["kafka"]
    assert len(cluster["brokers"]) == brokers
    assert all(b["proxy"] != b["upstream"] for b in cluster["brokers"])
