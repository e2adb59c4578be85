"""The admin APIs clients use, through the testbed's proxy: confluent-kafka's
AdminClient lists and describes consumer groups and deletes records, kcat -L
lists brokers and topics, DescribeProducers answers; and topics are created
live with POST /testbed/kafka/topics."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from testbed.scenario import Scenario
from tests.tools import require_tool

from .rig import DEADLINE, TestbedThread, kcat

N = 12


@pytest.fixture(scope="module")
def bed() -> Iterator[TestbedThread]:
    sc = Scenario.model_validate(
        {
            "kafka": {"brokers": 3, "topics": {"orders": 3}},
            "grpc": {"enabled": False},
            "http": {"enabled": False},
            "echo": {"enabled": False},
        }
    )
    with TestbedThread(sc) as t:
        yield t


def _fill_and_consume(bootstrap: str, topic: str, group: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(N):
        producer.produce(topic, f"v{i}".encode(), partition=i % 3)
    assert producer.flush(DEADLINE) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got = 0
    while got < N:
        msg = consumer.poll(DEADLINE)
        assert msg is not None and msg.error() is None
        got += 1
    consumer.commit(asynchronous=False)
    return consumer  # type: ignore[return-value]


def test_admin_client_groups_and_delete_records(bed: TestbedThread) -> None:
    consumer = _fill_and_consume(bed.bootstrap, "orders", "audit")
    admin = AdminClient({"bootstrap.servers": bed.bootstrap})
    try:
        listed = admin.list_consumer_groups(request_timeout=DEADLINE).result()
        assert [(g.group_id, g.state.name) for g in listed.valid] == [("audit", "STABLE")]
        assert listed.errors == []
        (described,) = (
            f.result()
            for f in admin.describe_consumer_groups(
                ["audit"], include_authorized_operations=True, request_timeout=DEADLINE
            ).values()
        )
        assert described.state.name == "STABLE" and len(described.members) == 1
        assert {op.name for op in described.authorized_operations} == {"READ", "DELETE", "DESCRIBE"}
        assert described.coordinator.port != bed.tb.services["kafka"].servers[0].info.port
        deleted = admin.delete_records(
            [TopicPartition("orders", 0, 2), TopicPartition("orders", 1, -1)],
            request_timeout=DEADLINE,
        )
        lows = {tp.partition: f.result().low_watermark for tp, f in deleted.items()}
        assert lows == {0: 2, 1: N // 3}
    finally:
        consumer.close()
    cluster = bed.tb.services["kafka"]
    assert bed.run(lambda: [r.offset for r in cluster.records("orders", 0)]) == [2, 3]
    assert bed.run(lambda: cluster.records("orders", 1)) == []

    # ListOffsets(earliest) moved, and a fetch below the start is OFFSET_OUT_OF_RANGE
    # (with auto.offset.reset=error librdkafka reports it instead of jumping).
    reader = Consumer(
        {
            "bootstrap.servers": bed.bootstrap,
            "group.id": "r",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        low, high = reader.get_watermark_offsets(TopicPartition("orders", 0), timeout=DEADLINE)
        assert (low, high) == (2, N // 3)
        reader.assign([TopicPartition("orders", 0, 0)])
        msg = reader.poll(DEADLINE)
        assert msg is not None and msg.error() is not None
        assert msg.error().code() == KafkaError._AUTO_OFFSET_RESET
        assert "out of range" in msg.error().str().lower()
    finally:
        reader.close()


def test_kcat_metadata_lists_brokers_and_topics(bed: TestbedThread) -> None:
    tool = require_tool("kcat")
    out = kcat(tool, bed.bootstrap, "-L", "-m", "10").stdout.decode()
    brokers = re.findall(r"broker (\d) at ([\d.]+):(\d+)", out)
    assert sorted(b[0] for b in brokers) == ["0", "1", "2"]
    proxy_ports = {int(lst.address[1]) for lst in bed.tb.proxy.listeners.values()}  # type: ignore[union-attr]
    assert {int(b[2]) for b in brokers} <= proxy_ports  # advertised through the proxy
    assert 'topic "orders" with 3 partitions' in out


def test_live_topics_api(bed: TestbedThread) -> None:
    status, body = bed.post(
        "/testbed/kafka/topics",
        {
            "name": "live",
            "partitions": 2,
            "records": [
                {"key": "a", "value": {"n": 1}, "partition": 1},
                {"value_b64": "/w==", "partition": 0},
            ],
        },
    )
    assert status == 201, body
    assert body["name"] == "live" and body["partitions"] == 2
    assert body["seeded"] == {"0": 1, "1": 1} and body["end_offsets"] == [1, 1]
    cluster = bed.tb.services["kafka"]
    assert [r.value for r in bed.run(lambda: cluster.records("live", 1))] == [b'{"n":1}']

    assert bed.post("/testbed/kafka/topics", {"name": "live"})[0] == 409
    status, body = bed.post("/testbed/kafka/topics", {"name": "x", "records": [{"partition": 5}]})
    assert status == 400 and body["problems"][0][0] == "records[0].partition"
    status, body = bed.post("/testbed/kafka/topics", {"name": "bad name!"})
    assert status == 400 and body["problems"][0][0] == "name"
    status, body = bed.post("/testbed/kafka/topics", {"name": "y", "partitions": 0})
    assert status == 400 and body["problems"][0][0] == "partitions"
    status, body = bed.post("/testbed/kafka/topics", {"name": "y", "extra": 1})
    assert status == 400 and body["problems"][0][0] == "extra"
    assert bed.post("/testbed/kafka/topics", b"{nope")[0] == 400
    assert bed.run(lambda: "x" not in cluster.topics() and "y" not in cluster.topics())

    import json

    listed = json.loads(bed.get("/testbed/kafka/topics"))["topics"]
    assert {t["name"]: t["partitions"] for t in listed}.items() >= {"orders": 3, "live": 2}.items()

    # and a client through the proxy reads the live topic's seeds
    consumer = Consumer(
        {"bootstrap.servers": bed.bootstrap, "group.id": "lv", "auto.offset.reset": "earliest"}
    )
    consumer.assign([TopicPartition("live", 0, 0)])
    msg = consumer.poll(DEADLINE)
    consumer.close()
    assert msg is not None and msg.error() is None and msg.value() == b"\xff"
