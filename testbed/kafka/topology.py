"""Brokers, topics, partitions and who leads them: the cluster's metadata.

Pure Python. Replication is modelled, not performed: each partition has a
replica list (leader first, then the next brokers round the ring) and one shared
log, so every live replica is always fully in sync. When a broker stops, the
partitions it led elect the next live replica in their replica list, bumping
the leader epoch, which is what a real cluster with min ISR satisfied and
unclean election disabled does; a partition with no live replica has leader -1
(LEADER_NOT_AVAILABLE) until one comes back.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from .log import PartitionLog

NO_LEADER = -1


@dataclass(slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None
    alive: bool = True


@dataclass(slots=True)
class Partition:
    topic: str
    index: int
    replicas: list[int]
    leader: int
    leader_epoch: int = 0
    log: PartitionLog = field(default_factory=PartitionLog)

    def __post_init__(self) -> None:
        self.log.new_leader_epoch(self.leader_epoch)


@dataclass(slots=True)
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: list[Partition]
    configs: dict[str, str] = field(default_factory=dict)


class Topology:
    """Broker liveness plus the topic/partition map, with leader election."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.brokers: dict[int, BrokerInfo] = {}
        self.topics: dict[str, Topic] = {}
        self.version = 0  # bumped on every metadata change

    def live_brokers(self) -> list[BrokerInfo]:
        return [b for b in self.brokers.values() if b.alive]

    def isr(self, p: Partition) -> list[int]:
        return [n for n in p.replicas if self.brokers[n].alive]

    def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str] | None = None,
        retention_bytes: int | None = None,
    ) -> Topic:
        """Leaders spread round-robin from a seeded start, as Kafka's assignor does."""
        nodes = sorted(self.brokers)
        start = self._rng.randrange(len(nodes))
        parts = []
        for i in range(partitions):
            replicas = [nodes[(start + i + r) % len(nodes)] for r in range(replication_factor)]
            leader = next((n for n in replicas if self.brokers[n].alive), NO_LEADER)
            parts.append(Partition(name, i, replicas, leader, log=PartitionLog(retention_bytes)))
        topic = Topic(
            name, uuid.UUID(int=self._rng.getrandbits(128), version=4), parts, dict(configs or {})
        )
        self.topics[name] = topic
        self.version += 1
        return topic

    def delete_topic(self, name: str) -> Topic | None:
        self.version += 1
        return self.topics.pop(name, None)

    def partition(self, topic: str, index: int) -> Partition | None:
        t = self.topics.get(topic)
        if t is None or not 0 <= index < len(t.partitions):
            return None
        return t.partitions[index]

    def set_leader(self, p: Partition, node_id: int) -> None:
        """Make `node_id` the leader (or NO_LEADER), starting a new leader epoch."""
        if node_id == p.leader:
            return
        p.leader = node_id
        p.leader_epoch += 1
        p.log.new_leader_epoch(p.leader_epoch)
        self.version += 1
        # Fetches parked on the old leader answer now (NOT_LEADER_OR_FOLLOWER),
        # as a broker completes its delayed fetches when it loses leadership.
        for wake in tuple(p.log.listeners):
            wake()

    def broker_stopped(self, node_id: int) -> None:
        self.brokers[node_id].alive = False
        for t in self.topics.values():
            for p in t.partitions:
                if p.leader == node_id:
                    self.set_leader(p, next(iter(self.isr(p)), NO_LEADER))
        self.version += 1

    def broker_started(self, node_id: int) -> None:
        self.brokers[node_id].alive = True
        for t in self.topics.values():
            for p in t.partitions:
                if p.leader == NO_LEADER and node_id in p.replicas:
                    self.set_leader(p, node_id)
        self.version += 1
