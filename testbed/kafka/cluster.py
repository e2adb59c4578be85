"""FakeKafkaCluster: N in-process brokers sharing one seeded cluster state.

This is the factory `protoproxy testbed` and the tests call. Everything a test
needs to steer or inspect the cluster is a plain method here; the wire-facing
handlers live in *_api.py and only read and change the state objects below.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl as ssl_module
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from protoproxy_codecs.base import Limits

from . import errors
from .groups import GroupConfig, GroupCoordinator
from .journaling import KafkaJournal
from .log import PartitionLog, StoredRecord
from .producers import ProducerStates
from .sasl_mechanisms import Credentials
from .server import BrokerServer
from .topology import BrokerInfo, Topic, Topology
from .transactions import TransactionCoordinator, expire
from .versions import narrowed

if TYPE_CHECKING:
    from testbed.journal import Journal

    from .hostile import KafkaHostile


class FakeKafkaCluster:
    """An in-process Kafka cluster that real clients take for a broker.

    Args:
        brokers: number of brokers, node ids 0..brokers-1 (default 3).
        host: address every listener binds to and advertises.
        ports: one port per broker; 0 or omitted means ephemeral.
        seed: seeds leader placement, topic ids, member ids and the cluster id.
        auto_create_topics: create unknown topics named in Metadata requests.
        default_partitions: partitions of auto-created topics and CreateTopics(-1).
        default_replication_factor: defaults to min(3, brokers).
        min_session_timeout_ms: lower bound a JoinGroup's session timeout must meet
            (Kafka's group.min.session.timeout.ms, 6000 by default).
        limits: bounds on request frames (max_message_size).
        tick_interval: how often group sessions and rebalance timeouts are checked.
        retention_bytes: per-partition log size past which the oldest batches are
            dropped (Kafka's retention.bytes; a topic's own "retention.bytes" config
            wins). None keeps everything.
        max_topics, max_partitions: bounds on what clients can make the cluster hold
            (topic count, partitions per topic); requests past them get
            POLICY_VIOLATION / INVALID_PARTITIONS.
        sasl: users and mechanisms (`sasl_mechanisms.Credentials`): every listener then
            speaks SASL_PLAINTEXT (SASL_SSL with `ssl`) and serves nothing else
            before a connection authenticates; None: no authentication.
        ssl: a server-side SSLContext to make every listener speak TLS.
        api_versions: narrower version ranges to advertise and accept, by api key
            (e.g. ``{ApiKey.API_VERSIONS: (0, 2)}`` answers ApiVersions v3 with UNSUPPORTED_VERSION as
            a pre-2.4 broker does, so clients negotiate down); only narrowing is
            allowed, since the fake implements no more than `versions.SUPPORTED`.
        journal: the testbed's journal (testbed.journal.Journal): produced records,
            commits, group and transaction steps are recorded there as KafkaEvents
            (service "kafka"); None records nothing and costs nothing.

    ``throttle_time_ms`` (an attribute, 0 by default) is put in every response
    that has the field, as a broker enforcing a quota does.
    """

    def __init__(
        self,
        brokers: int = 3,
        *,
        host: str = "127.0.0.1",
        ports: list[int] | None = None,
        seed: int = 0,
        auto_create_topics: bool = True,
        default_partitions: int = 1,
        default_replication_factor: int | None = None,
        min_session_timeout_ms: int = 6000,
        limits: Limits | None = None,
        tick_interval: float = 0.05,
        retention_bytes: int | None = 32 * 1024 * 1024,
        max_topics: int = 1000,
        max_partitions: int = 1000,
        sasl: Credentials | None = None,
        ssl: ssl_module.SSLContext | None = None,
        api_versions: Mapping[int, tuple[int, int]] | None = None,
        journal: Journal | None = None,
    ) -> None:
        if brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        if ports is not None and len(ports) != brokers:
            raise ValueError("give one port per broker")
        self._rng = random.Random(seed)
        self.cluster_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.default_replication_factor = default_replication_factor or min(3, brokers)
        self.limits = limits or Limits()
        self.tick_interval = tick_interval
        self.retention_bytes = retention_bytes
        self.max_topics = max_topics
        self.max_partitions = max_partitions
        #: server-side TLS for every listener (None: plaintext)
        self.ssl = ssl
        #: SASL users and mechanisms (None: no authentication)
        self.sasl = sasl
        #: authentications that failed (wrong password, unknown user, bad token)
        self.sasl_failures = 0
        #: api key -> (min, max) versions advertised and served
        self.supported = narrowed(api_versions or {})
        #: throttle_time_ms put in every response that has the field
        self.throttle_time_ms = 0
        #: hostile answers (testbed/kafka/hostile.py): set by the testbed from
        #: the scenario's ``kafka.hostile``; None answers every request normally
        self.hostile: KafkaHostile | None = None
        self.topology = Topology(self._rng)
        self.producers = ProducerStates(first_producer_id=1000 + self._rng.randrange(1000))
        self.txns = TransactionCoordinator(self.producers.new_producer_id)
        #: where KafkaEvents go (None: no journal)
        self.journal: KafkaJournal | None = KafkaJournal(journal) if journal is not None else None
        self.groups = GroupCoordinator(
            time.monotonic,
            self._new_member_id,
            GroupConfig(min_session_timeout_ms=min_session_timeout_ms),
        )
        self.servers: dict[int, BrokerServer] = {}
        for node_id in range(brokers):
            info = BrokerInfo(node_id, host, ports[node_id] if ports else 0)
            self.topology.brokers[node_id] = info
            self.servers[node_id] = BrokerServer(self, info)
        self._ticker: asyncio.Task[None] | None = None
        # Counters (plain ints; read them directly).
        self.requests_handled = 0
        self.unsupported_requests = 0
        self.records_appended = 0
        self.requests_by_api: Counter[int] = Counter()
        # Partition-level errors answered (error code -> count): shows that clients
        # really met a NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, ...
        self.partition_errors: Counter[int] = Counter()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> FakeKafkaCluster:
        for server in self.servers.values():
            await server.start()
        self._ticker = asyncio.create_task(self._tick_loop(), name="fake-kafka-ticker")
        return self

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        for server in self.servers.values():
            await server.stop()

    async def __aenter__(self) -> FakeKafkaCluster:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            self.groups.tick(time.monotonic())
            expire(self)

    # -- addresses and counters -------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """host:port of the first live broker."""
        for server in self.servers.values():
            if server.running:
                return server.address
        raise RuntimeError("no broker is running")

    @property
    def address(self) -> str:
        """Every running broker (what the testbed prints behind the proxy)."""
        return self.bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        """Every running broker, comma-separated (a client bootstrap list)."""
        return ",".join(s.address for s in self.servers.values() if s.running)

    @property
    def connections_accepted(self) -> int:
        """Connections accepted by all brokers since the cluster was made."""
        return sum(s.connections_accepted for s in self.servers.values())

    @property
    def connections_accepted_by_broker(self) -> dict[int, int]:
        return {n: s.connections_accepted for n, s in self.servers.items()}

    def controller_id(self) -> int:
        live = [b.node_id for b in self.topology.live_brokers()]
        return min(live) if live else -1

    def coordinator_for(self, group_id: str) -> int:
        """The group's coordinator: a live broker picked by a hash of the group id."""
        live = sorted(b.node_id for b in self.topology.live_brokers())
        if not live:
            return -1
        return live[zlib.crc32(group_id.encode()) % len(live)]

    def _new_member_id(self, client_id: str) -> str:
        return f"{client_id}-{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    # -- topics -----------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: dict[str, str] | None = None,
    ) -> Topic:
        """Create a topic now (no-op if it exists); leaders spread across brokers."""
        existing = self.topology.topics.get(name)
        if existing is not None:
            return existing
        configs = dict(configs or {})
        retention: int | None = self.retention_bytes
        if "retention.bytes" in configs:
            value = int(configs["retention.bytes"])
            retention = None if value < 0 else value
        return self.topology.create_topic(
            name,
            partitions or self.default_partitions,
            replication_factor or self.default_replication_factor,
            configs,
            retention,
        )

    def can_create(self, partitions: int) -> tuple[int, str | None]:
        """(error, message) if creating a topic now would break the cluster's bounds."""
        if len(self.topology.topics) >= self.max_topics:
            return (
                errors.POLICY_VIOLATION,
                f"the fake cluster holds at most {self.max_topics} topics",
            )
        if partitions > self.max_partitions:
            return errors.INVALID_PARTITIONS, f"at most {self.max_partitions} partitions per topic"
        return errors.NONE, None

    def delete_topic(self, name: str) -> bool:
        topic = self.topology.delete_topic(name)
        if topic is None:
            return False
        self.producers.forget_topic(name)
        self.groups.forget_topic(name)
        return True

    def topics(self) -> list[str]:
        return sorted(self.topology.topics)

    def log(self, topic: str, partition: int) -> PartitionLog:
        p = self.topology.partition(topic, partition)
        if p is None:
            raise KeyError(f"no partition {topic}-{partition}")
        return p.log

    def records(self, topic: str, partition: int) -> list[StoredRecord]:
        """The partition's records (key, value, offset, timestamp, headers), in order."""
        return list(self.log(topic, partition).records())

    def end_offsets(self, topic: str) -> list[int]:
        return [p.log.next_offset for p in self.topology.topics[topic].partitions]

    def committed(self, group_id: str, topic: str, partition: int) -> int:
        """The group's committed offset for a partition, or -1."""
        return self.groups.committed(group_id, topic, partition)[0]

    # -- leadership and brokers ----------------------------------------------------------

    def leader(self, topic: str, partition: int) -> int:
        p = self.topology.partition(topic, partition)
        if p is None:
            raise KeyError(f"no partition {topic}-{partition}")
        return p.leader

    def leader_epoch(self, topic: str, partition: int) -> int:
        p = self.topology.partition(topic, partition)
        if p is None:
            raise KeyError(f"no partition {topic}-{partition}")
        return p.leader_epoch

    def move_leader(self, topic: str, partition: int, node_id: int) -> int:
        """Make `node_id` the partition's leader (a new leader epoch); returns the epoch.

        Like a preferred-leader election: `node_id` becomes a replica if it was
        not one, and must be a running broker.
        """
        p = self.topology.partition(topic, partition)
        if p is None:
            raise KeyError(f"no partition {topic}-{partition}")
        if node_id not in self.topology.brokers or not self.topology.brokers[node_id].alive:
            raise ValueError(f"broker {node_id} is not running")
        if node_id not in p.replicas:
            p.replicas.append(node_id)
        self.topology.set_leader(p, node_id)
        return p.leader_epoch

    async def stop_broker(self, node_id: int) -> None:
        """Stop a broker: its listener and connections close, and the partitions it
        led elect the next live replica (leader -1 if none is left)."""
        self.topology.broker_stopped(node_id)
        await self.servers[node_id].stop()

    async def start_broker(self, node_id: int) -> None:
        """Restart a stopped broker on its old port. Leadership does not move back
        (no automatic preferred-leader rebalance), except to leaderless partitions."""
        await self.servers[node_id].start()
        self.topology.broker_started(node_id)
