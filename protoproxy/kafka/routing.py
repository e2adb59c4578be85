"""Routing data for one proxied Kafka cluster: brokers, partition leaders, coordinators.

Kept as plain dicts updated from the responses that pass by, so that an
operator can see where a client's traffic really goes (``/kafka/brokers``)
without asking the cluster. Every table is bounded: the data comes from the
wire, and a misbehaving upstream must not make the proxy grow without limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protoproxy_codecs.kafka.rewrite import Routing

MAX_TOPICS = 10_000
MAX_PARTITIONS_PER_TOPIC = 10_000
MAX_COORDINATORS = 10_000


@dataclass(eq=False, slots=True)
class BrokerEntry:
    """One broker node as the proxy knows it."""

    node_id: int
    upstream: str  # the broker's real host:port, as the cluster advertises it
    listener: str | None  # name of the proxy listener in front of it
    proxy: str | None  # host:port advertised to clients instead of `upstream`
    rack: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "upstream": self.upstream,
            "listener": self.listener,
            "proxy": self.proxy,
            "rack": self.rack,
        }


class RoutingTable:
    """What the responses seen so far say about one Kafka cluster."""

    def __init__(self, bootstrap_listener: str) -> None:
        self.bootstrap_listener = bootstrap_listener
        self.brokers: dict[int, BrokerEntry] = {}
        # topic -> partition -> leader node id, as last seen in Metadata
        self.leaders: dict[str, dict[int, int]] = {}
        self.coordinators: dict[str, int] = {}
        self.controller_id: int | None = None
        self.cluster_id: str | None = None

    def update(self, routing: Routing) -> None:
        """Fold one response's routing facts in (brokers are recorded by BrokerListeners)."""
        for topic, parts in routing.leaders.items():
            known = self.leaders.get(topic)
            if known is None:
                if len(self.leaders) >= MAX_TOPICS:
                    continue
                known = self.leaders[topic] = {}
            for partition, leader in parts.items():
                if partition in known or len(known) < MAX_PARTITIONS_PER_TOPIC:
                    known[partition] = leader
        for key, node in routing.coordinators.items():
            if key in self.coordinators or len(self.coordinators) < MAX_COORDINATORS:
                self.coordinators[key] = node
        if routing.controller_id is not None:
            self.controller_id = routing.controller_id
        if routing.cluster_id is not None:
            self.cluster_id = routing.cluster_id

    def snapshot(self) -> dict[str, Any]:
        return {
            "bootstrap_listener": self.bootstrap_listener,
            "cluster_id": self.cluster_id,
            "controller_id": self.controller_id,
            "brokers": [self.brokers[n].as_dict() for n in sorted(self.brokers)],
            "leaders": {
                topic: {str(p): leader for p, leader in sorted(parts.items())}
                for topic, parts in sorted(self.leaders.items())
            },
            "coordinators": dict(sorted(self.coordinators.items())),
        }
