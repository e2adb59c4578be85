"""A fake Kafka cluster, in-process on asyncio, built on protoproxy's Kafka codec.

    async with FakeKafkaCluster(brokers=3, seed=1) as cluster:
        cluster.create_topic("orders", partitions=6)
        ... point any Kafka client at cluster.bootstrap ...

See docs/testbed-kafka.md for what it implements and how it differs from Kafka.
"""

from __future__ import annotations

from .cluster import FakeKafkaCluster
from .log import StoredRecord

__all__ = ["FakeKafkaCluster", "StoredRecord"]
