"""The Kafka component of an App: one routing table and broker set per bootstrap listener.

Kept as ``app.kafka``; ``snapshot()`` is what
``/kafka/brokers`` serves and ``groups_snapshot()`` what ``/kafka/groups`` does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import Exchange

from .brokers import BrokerListeners
from .filter import KafkaFilter
from .groups import ClusterGroups
from .metrics import KafkaMetrics
from .routing import RoutingTable

if TYPE_CHECKING:
    from ..config import Listener
    from ..connection import Connection
    from ..proxy import Proxy

log = logging.getLogger("protoproxy.kafka")


class KafkaComponent:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.metrics = KafkaMetrics(proxy.stats)
        #: bootstrap listener name -> its routing table / broker listeners
        self.tables: dict[str, RoutingTable] = {}
        self.brokers: dict[str, BrokerListeners] = {}
        #: listener name (bootstrap or broker) -> the filter its connections get
        self._filters: dict[str, KafkaFilter] = {}
        self._sniffed = KafkaFilter(self.metrics, None, None)
        #: cluster (bootstrap listener; a sniffing listener's own name) -> its groups
        self.groups: dict[str, ClusterGroups] = {}
        for cfg in proxy.config.listeners:
            self._bootstrap(cfg)

    def _bootstrap(self, cfg: Listener) -> None:
        if cfg.protocol != "kafka":
            return
        table = RoutingTable(cfg.name)
        self.tables[cfg.name] = table
        if cfg.upstream is None:
            # SNI routes only: no single cluster to build broker listeners for.
            log.warning(
                "kafka listener %s has no default upstream: brokers are not rewritten",
                cfg.name,
            )
            self._filters[cfg.name] = KafkaFilter(self.metrics, table, None)
            return
        brokers = BrokerListeners(self.proxy, cfg, table, self._listener_failed)
        self.brokers[cfg.name] = brokers
        self._filters[cfg.name] = KafkaFilter(self.metrics, table, brokers)
        brokers.install_pinned()

    def listener_changed(self, cfg: Listener, added: bool) -> None:
        """A listener added or removed at run time (its broker listeners go with it)."""
        if added:
            self._bootstrap(cfg)
            return
        self.tables.pop(cfg.name, None)
        self._filters.pop(cfg.name, None)
        brokers = self.brokers.pop(cfg.name, None)
        if brokers is not None:
            for lst in brokers.by_node.values():
                self._filters.pop(lst.name, None)

    def _listener_failed(self, bootstrap: str) -> None:
        self.metrics.listener_failures.inc((bootstrap,))

    def filter_for(self, listener: str) -> KafkaFilter:
        f = self._filters.get(listener)
        if f is not None:
            return f
        for name, brokers in self.brokers.items():
            if any(lst.name == listener for lst in brokers.by_node.values()):
                f = self._filters[listener] = self._filters[name]
                return f
        return self._sniffed

    def filter_of(self, conn: Connection) -> KafkaFilter | None:
        """The FilterSlot.KAFKA factory (`kafka.install` registers it and the observers)."""
        return self.filter_for(conn.listener.name) if conn.protocol == "kafka" else None

    def connection_closed(self, conn: Connection) -> None:
        if conn.protocol == "kafka":
            self.metrics.connection_closed(conn)

    # -- consumer groups -------------------------------------------------------------
    def groups_for(self, listener: str) -> ClusterGroups:
        f = self.filter_for(listener)
        name = f.table.bootstrap_listener if f.table is not None else listener
        groups = self.groups.get(name)
        if groups is None:
            groups = self.groups[name] = ClusterGroups(name, self.metrics)
        return groups

    def on_exchanges(self, conn: Connection, exchanges: list[Exchange]) -> None:
        """Fold the group facts and high watermarks the codec found into the groups."""
        if conn.protocol != "kafka":
            return
        groups: ClusterGroups | None = None
        for ex in exchanges:
            attrs = ex.attrs
            marks = attrs.get("watermarks") or attrs.get("latest_offsets")
            group = attrs.get("group")
            fetched = attrs.get("fetched_offsets")
            if marks is None and group is None and fetched is None:
                continue
            if groups is None:
                groups = self.groups_for(conn.listener.name)
            if marks:
                groups.watermarks_seen(marks)
            if fetched:
                groups.fetched(fetched)
            if group is None:
                continue
            if "commits" in attrs:
                groups.committed(group, attrs["commits"])
            elif "left" in attrs:
                groups.left(group, attrs["left"])
            elif "member_id" in attrs:
                client_id = attrs.get("client_id") or ""
                host = _host(conn)
                if attrs["api"] == "JoinGroup":
                    groups.joined(attrs, client_id, host)
                else:
                    groups.synced(attrs, client_id, host)

    def groups_snapshot(self) -> dict[str, Any]:
        """JSON-able consumer groups of every proxied Kafka cluster, by bootstrap listener."""
        return {"clusters": {name: g.snapshot() for name, g in sorted(self.groups.items())}}

    # -- queries ---------------------------------------------------------------------
    def broker_map(self, bootstrap: str) -> dict[int, tuple[str, str | None, str | None]]:
        """node id -> (upstream host:port, proxy listener, proxy host:port)."""
        table = self.tables[bootstrap]
        return {n: (b.upstream, b.listener, b.proxy) for n, b in table.brokers.items()}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able routing data of every proxied Kafka cluster, by bootstrap listener."""
        return {"clusters": {name: t.snapshot() for name, t in self.tables.items()}}


def _host(conn: Connection) -> str:
    """The client's address as the proxy saw it (no port)."""
    peer = conn.client.peername if conn.client is not None else "-"
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return host.strip("[]")
