"""Acceptance: four real clients produce 10,000 records through the proxy and consume
them back in a group, exactly once and in order per partition, without ever
connecting to a broker directly; the proxy's metrics equal what the clients saw,
and every broker-advertising response they got was rewritten exactly."""

from __future__ import annotations

import logging

from tests.tools import require_tool

from . import clients
from .capture import RewriteCapture
from .checks import check_all
from .rig import KafkaRig

N = 10_000
PARTITIONS = 6
log = logging.getLogger(__name__)


def _report(client: str, checked: set[tuple[int, int]]) -> None:
    names = {3: "Metadata", 10: "FindCoordinator", 60: "DescribeCluster"}
    log.info("%s: rewritten %s", client, sorted(f"{names[k]} v{v}" for k, v in checked))


def test_kafka_python(rig: KafkaRig, capture: RewriteCapture) -> None:
    from kafka.admin import KafkaAdminClient

    rig.create_topic("kp", PARTITIONS)
    vals = clients.values(N)
    produced = clients.kafka_python_produce(rig.bootstrap, "kp", vals)
    consumed = clients.kafka_python_consume(rig.bootstrap, "kp", "kp-group", N)
    admin = KafkaAdminClient(bootstrap_servers=rig.bootstrap)
    try:
        cluster = admin.describe_cluster()  # DescribeCluster, rewritten too
    finally:
        admin.close()
    by_node = rig.component.brokers["kafka"].by_node
    assert {b["port"] for b in cluster["brokers"]} == {by_node[n].port for n in range(3)}
    checked = check_all(rig, capture, "kp", PARTITIONS, produced, consumed)
    assert 60 in {k for k, _ in checked}
    _report("kafka-python", checked)


def test_confluent_kafka(rig: KafkaRig, capture: RewriteCapture) -> None:
    rig.create_topic("ck", PARTITIONS)
    vals = clients.values(N)
    produced = clients.confluent_produce(rig.bootstrap, "ck", vals)
    consumed = clients.confluent_consume(rig.bootstrap, "ck", "ck-group", N)
    _report("confluent-kafka", check_all(rig, capture, "ck", PARTITIONS, produced, consumed))


def test_aiokafka(rig: KafkaRig, capture: RewriteCapture) -> None:
    rig.create_topic("aio", PARTITIONS)
    vals = clients.values(N)
    produced, consumed = clients.aiokafka_roundtrip(rig.bootstrap, "aio", vals, "aio-group")
    _report("aiokafka", check_all(rig, capture, "aio", PARTITIONS, produced, consumed))


def test_kcat(rig: KafkaRig, capture: RewriteCapture) -> None:
    kcat = require_tool("kcat")
    rig.create_topic("kc", PARTITIONS)
    vals = clients.values(N)
    clients.kcat_produce(kcat, rig.bootstrap, "kc", vals)
    consumed = clients.kcat_consume(kcat, rig.bootstrap, "kc", "kc-group", N)
    # kcat does not report partitions: the log is the producer's truth, and it
    # must hold every value once, in the order kcat read them.
    from .checks import log_by_partition

    produced = {p: v for p, v in log_by_partition(rig, "kc", PARTITIONS).items() if v}
    stored = [v for vs in produced.values() for v in vs]
    assert sorted(stored) == sorted(vals) and len(set(stored)) == N
    order = {v: i for i, v in enumerate(vals)}
    for p, vs in produced.items():
        assert [order[v] for v in vs] == sorted(order[v] for v in vs), f"partition {p} reordered"
    _report("kcat", check_all(rig, capture, "kc", PARTITIONS, produced, consumed))
