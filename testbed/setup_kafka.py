"""Start the fake Kafka cluster for a Testbed and put the proxy in front of it.

The bootstrap listener goes on the scenario's kafka port (19092 by default);
broker node N gets a pinned listener on kafka port + 1 + N, so a user's
kcat/IDE settings stay valid across runs. With an ephemeral scenario
(port 0) broker listeners take ephemeral ports when first seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from testbed.kafka import FakeKafkaCluster, seeds
from testbed.kafka.sasl_mechanisms import Credentials

from .kafka_routes import topic_routes

if TYPE_CHECKING:
    from .harness import Testbed
    from .scenario import KafkaHostileScenario, SaslScenario, Scenario


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Start the cluster on `tb._stack`, record it in `tb.services`, and append
    the proxy listener/upstream config dicts for it."""
    sc = tb.scenario
    seeded = load_seeds(sc)  # before anything starts: a bad line fails the start
    cluster = FakeKafkaCluster(
        brokers=sc.kafka.brokers,
        host=sc.host,
        sasl=credentials(sc.kafka.sasl, sc.seed),
        seed=sc.seed,
        auto_create_topics=sc.kafka.auto_create,
        journal=tb.journal,
    )
    await tb._stack.enter_async_context(cluster)
    for topic, spec in sc.kafka.topics.items():
        cluster.create_topic(topic, spec.partitions)
    for topic, records in seeded.items():
        seeds.append(cluster, topic, records)
    if sc.kafka.hostile is not None:
        attach_hostile(tb, cluster, sc.kafka.hostile)
    tb.admin_routes.extend(topic_routes(cluster))
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


def attach_hostile(tb: Testbed, cluster: FakeKafkaCluster, spec: KafkaHostileScenario) -> None:
    """Hostile answers from the cluster, journaled, and marked in the proxy's
    access log (an exchange observer in the fault marks' slot, so that the
    stats and the access log see ``attrs["fault"]`` = ``hostile#INDEX``)."""
    from protoproxy.pipeline import ExchangeSlot
    from protoproxy_codecs.kafka import schema
    from testbed.kafka.hostile import KafkaHostile

    apis = {schema.api_key_of(a) for a in spec.apis} if spec.apis is not None else None
    hostile = KafkaHostile(spec.seed, spec.rate, apis, cluster.journal)
    cluster.hostile = hostile

    async def observe(tb: Testbed) -> None:
        assert tb.proxy is not None
        tb.proxy.pipeline.add_exchange_observer(ExchangeSlot.MARKS, hostile.marks.observe)

    tb.after_start.append(observe)


def load_seeds(sc: Scenario) -> dict[str, list[seeds.SeedRecord]]:
    """Every topic's seed records, read and checked (ConfigError: file:line and field)."""
    return {
        topic: seeds.load_file(spec.records, spec.partitions)
        for topic, spec in sc.kafka.topics.items()
        if spec.records is not None
    }


def credentials(sasl: SaslScenario | None, seed: int) -> Credentials | None:
    """The brokers' SASL users, derived once; the scenario's passwords stay SecretStr
    everywhere else, so no repr or log line prints them."""
    if sasl is None:
        return None
    users = {name: user.password.get_secret_value() for name, user in sasl.users.items()}
    return Credentials(users, sasl.mechanisms, seed)


def _kcat_hint(tb: Testbed) -> list[str]:
    bootstrap = tb.addresses.get("kafka")
    if bootstrap is None:
        return []
    topic = next(iter(tb.scenario.kafka.topics), "orders")
    sasl = tb.scenario.kafka.sasl
    if sasl is not None:
        # The password is the scenario's; it is never printed.
        user = next(iter(sasl.users))
        bootstrap += (
            f" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms={sasl.mechanisms[0]}"
            f" -X sasl.username={user} -X sasl.password=..."
        )
    return [
        f"  kafka:  seq 1 10 | kcat -b {bootstrap} -P -t {topic}",
        f"          kcat -b {bootstrap} -C -G demo {topic}   (Ctrl-C to stop)",
        f"          kcat -b {bootstrap} -L   (brokers as advertised through the proxy)",
    ]
