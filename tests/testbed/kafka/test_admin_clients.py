"""Admin clients (kafka-python and librdkafka) against the fake cluster."""

from __future__ import annotations

import asyncio

from protoproxy_codecs.kafka import framing
from testbed.kafka import FakeKafkaCluster
from testbed.kafka.server import decode_request


def _kafka_python_admin(bootstrap: str) -> dict:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        created = admin.create_topics([NewTopic("kp-admin", 3, 2)])
        listed = admin.list_topics()
        cluster = admin.describe_cluster()
        deleted = admin.delete_topics(["kp-admin"])
    finally:
        admin.close()
    return {"created": created, "listed": listed, "cluster": cluster, "deleted": deleted}


async def test_kafka_python_admin_client(cluster: FakeKafkaCluster):
    out = await asyncio.to_thread(_kafka_python_admin, cluster.bootstrap)
    assert out["created"]["topics"][0]["error_code"] == 0
    assert "kp-admin" in out["listed"]
    assert [b["broker_id"] for b in out["cluster"]["brokers"]] == [0, 1, 2]
    assert out["deleted"]["topics"][0]["error_code"] == 0
    assert cluster.topics() == []


def _librdkafka_admin(bootstrap: str) -> tuple[list[str], int, dict[str, str]]:
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic("rd-admin", 4, 3)]).values():
        fut.result(10)
    # All-topics Metadata: librdkafka 2.16 sends trailing bytes a broker must ignore.
    metadata = admin.list_topics(timeout=10)
    (configs,) = admin.describe_configs([ConfigResource("topic", "rd-admin")]).values()
    values = {name: entry.value for name, entry in configs.result(10).items()}
    for fut in admin.delete_topics(["rd-admin"]).values():
        fut.result(10)
    return sorted(metadata.topics), len(metadata.brokers), values


async def test_librdkafka_admin_client(cluster: FakeKafkaCluster):
    topics, brokers, configs = await asyncio.to_thread(_librdkafka_admin, cluster.bootstrap)
    assert topics == ["rd-admin"] and brokers == 3
    assert configs["cleanup.policy"] == "delete"
    assert cluster.topics() == []


def test_trailing_bytes_after_a_body_are_ignored_like_kafka_does():
    frame = framing.encode_request(3, 12, 5, "rdkafka", {"topics": None})[4:]
    header, body = decode_request(frame + b"\x01\x00\x00")
    assert (header.api_key, header.api_version, header.correlation_id) == (3, 12, 5)
    assert header.client_id == "rdkafka" and body.topics is None
