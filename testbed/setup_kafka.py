"""Start the fake Kafka cluster for a Testbed and put the proxy in front of it.

The bootstrap listener goes on the scenario's kafka port (19092 by default);
broker node N gets a pinned listener on kafka port + 1 + N, so a user's
kcat/IDE settings stay valid across runs. With an ephemeral scenario
(port 0) broker listeners take ephemeral ports when first seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from testbed.kafka import FakeKafkaCluster

if TYPE_CHECKING:
    from .harness import Testbed


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Start the cluster on `tb._stack`, record it in `tb.services`, and append
    the proxy listener/upstream config dicts for it."""
    sc = tb.scenario
    cluster = FakeKafkaCluster(
        brokers=sc.kafka.brokers,
        host=sc.host,
        seed=sc.seed,
        auto_create_topics=sc.kafka.auto_create,
        journal=tb.journal,
    )
    await tb._stack.enter_async_context(cluster)
    for topic, spec in sc.kafka.topics.items():
        cluster.create_topic(topic, spec.partitions)
    tb.services["kafka"] = cluster
    port = sc.ports.get("kafka", 0)
    settings: dict[str, Any] = {}
    if port:
        settings["brokers"] = {
            node: f"{sc.host}:{port + 1 + node}" for node in range(sc.kafka.brokers)
        }
    endpoints = cluster.bootstrap_servers.split(",")
    tb.front("kafka", "kafka", endpoints, listeners, upstreams, kafka=settings)
    tb.hints.append(_kcat_hint)


def _kcat_hint(tb: Testbed) -> list[str]:
    bootstrap = tb.addresses.get("kafka")
    if bootstrap is None:
        return []
    topic = next(iter(tb.scenario.kafka.topics), "orders")
    return [
        f"  kafka:  seq 1 10 | kcat -b {bootstrap} -P -t {topic}",
        f"          kcat -b {bootstrap} -C -G demo {topic}   (Ctrl-C to stop)",
        f"          kcat -b {bootstrap} -L   (brokers as advertised through the proxy)",
    ]
