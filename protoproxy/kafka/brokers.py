"""One proxy listener per Kafka broker, opened the moment a response names it.

Clients connect to whatever Metadata/FindCoordinator/DescribeCluster advertise,
so every broker needs an address on the proxy. The listening socket is bound
and put in the listening state *synchronously*, inside the filter that
rewrites the response: the rewritten response can only reach the client
after that, and the kernel queues any connect that comes before asyncio
starts accepting. Opening the listener asynchronously instead would let a
fast client (librdkafka connects within microseconds) hit a closed port.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import Address, KafkaListener, Listener, Upstream
from ..listener import ListenerRuntime
from ..upstream import Cluster, Endpoint
from .routing import BrokerEntry, RoutingTable

if TYPE_CHECKING:
    from ..proxy import Proxy

log = logging.getLogger("protoproxy.kafka")

BACKLOG = 1024


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BrokerListenerRuntime(ListenerRuntime):
    """A listener whose socket may already be bound (and listening) when it starts."""

    def __init__(self, proxy: Proxy, config: Listener, sock: socket.socket | None) -> None:
        super().__init__(proxy, config)
        self._sock = sock
        if sock is not None:
            self.address = sock.getsockname()[:2]

    async def start(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            await super().start()
            return
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._accept, sock=sock, backlog=BACKLOG)
        log.info("kafka broker listener %s on %s", self.name, hostport(*self.address))  # type: ignore[misc]

    async def start_bound(self) -> None:
        """Start serving a socket bound earlier, unless the proxy is stopping meanwhile."""
        if not self.proxy.accepting:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            return
        await self.start()


class BrokerListeners:
    """The per-broker listeners behind one Kafka bootstrap listener."""

    def __init__(
        self,
        proxy: Proxy,
        bootstrap: Listener,
        table: RoutingTable,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.proxy = proxy
        self.on_failure = on_failure
        self.bootstrap = bootstrap
        self.table = table
        self.settings: KafkaListener = bootstrap.kafka or KafkaListener()
        assert bootstrap.upstream is not None, "a kafka listener needs an upstream"
        self.upstream = proxy.config.upstream(bootstrap.upstream)
        self.host = bootstrap.listen.host
        self.advertised_host = self.settings.advertised_host or _advertisable(self.host)
        self.by_node: dict[int, BrokerListenerRuntime] = {}
        self.failures = 0
        self._warned: set[tuple[int, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_port = 0  # index into the port range where the next search starts

    # -- names ---------------------------------------------------------------------
    def listener_name(self, node_id: int) -> str:
        return f"{self.bootstrap.name}-broker{node_id}"

    def cluster_name(self, node_id: int) -> str:
        return f"{self.upstream.name}-broker{node_id}"

    # -- at start: pinned listeners --------------------------------------------------
    def install_pinned(self) -> None:
        """Register pinned listeners now, so they open with the proxy.

        Until its broker is first seen, a pinned listener forwards to the
        bootstrap upstream; any broker can answer bootstrap requests.
        """
        for node_id, address in sorted(self.settings.brokers.items()):
            self._register(node_id, list(self.upstream.endpoints), address, sock=None)

    # -- the mapper the rewrite filter calls -------------------------------------------
    def map(self, node_id: int, host: str, port: int) -> tuple[str, int]:
        """The (host, port) to advertise for a broker, opening its listener if needed.

        Returns the broker's own address when no listener can be opened (the
        client then bypasses the proxy for that broker, which is logged and
        counted rather than breaking the client).
        """
        bad = broker_problem(node_id, host, port)
        if bad is not None:
            # A broker's answer, not our config: its connections must not end over it.
            self._failed(node_id, bad)
            return host, port
        upstream = hostport(host, port)
        lst = self.by_node.get(node_id)
        if lst is None:
            lst = self._open(node_id, upstream)
            if lst is None:
                return host, port
        else:
            self._retarget(node_id, lst, upstream)
        port = lst.address[1] if lst.address is not None else lst.config.listen.port
        return self.advertised_host, int(port)

    def _retarget(self, node_id: int, lst: BrokerListenerRuntime, upstream: str) -> None:
        """A broker seen at a (new) address: new connections go there."""
        entry = self.table.brokers[node_id]
        if entry.upstream == upstream:
            return
        cluster = lst.default
        assert cluster is not None
        cluster.endpoints = [Endpoint(Address(upstream))]
        cluster.attempts = self.upstream.connect_attempts or 1
        log.info("kafka broker %d (%s) now at %s", node_id, lst.name, upstream)
        entry.upstream = upstream

    def _open(self, node_id: int, upstream: str) -> BrokerListenerRuntime | None:
        if len(self.by_node) >= self.settings.max_brokers:
            self._failed(node_id, f"more than max_brokers={self.settings.max_brokers} brokers")
            return None
        if not self.proxy.accepting:
            return None
        try:
            sock = self._bind()
        except OSError as exc:
            self._failed(node_id, f"cannot bind a listener: {exc}")
            return None
        listen = Address(hostport(self.host, sock.getsockname()[1]))
        lst = self._register(node_id, [Address(upstream)], listen, sock)
        task = asyncio.get_running_loop().create_task(lst.start_bound())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "kafka broker %d at %s: proxy listener %s on %s", node_id, upstream, lst.name, listen
        )
        return lst

    def _register(
        self,
        node_id: int,
        endpoints: list[Address],
        listen: Address,
        sock: socket.socket | None,
    ) -> BrokerListenerRuntime:
        upstream_cfg = Upstream(
            name=self.cluster_name(node_id),
            endpoints=endpoints,
            tls=self.upstream.tls,  # server_name: pinned there, else the broker's host
            connect_timeout=self.upstream.connect_timeout,
            connect_attempts=self.upstream.connect_attempts,
        )
        cluster = Cluster(upstream_cfg, connect_timeout=self.proxy.config.timeouts.connect)
        self.proxy.clusters[cluster.name] = cluster
        cfg = Listener(
            name=self.listener_name(node_id),
            listen=listen,
            protocol="kafka",
            tls=self.bootstrap.tls,
            upstream=cluster.name,
            kafka=self.settings,
            record=self.bootstrap.record,
        )
        lst = BrokerListenerRuntime(self.proxy, cfg, sock)
        self.by_node[node_id] = lst
        self.proxy.listeners[lst.name] = lst
        seen = sock is not None
        self.table.brokers[node_id] = BrokerEntry(
            node_id,
            str(endpoints[0]) if seen else "",
            lst.name,
            hostport(self.advertised_host, listen.port) if listen.port else None,
        )
        return lst

    def _bind(self) -> socket.socket:
        pinned = self.settings.brokers
        ports = self.settings.port_range()
        if ports is None:
            return _listen(self.host, 0)
        taken = {a.port for a in pinned.values()}
        taken.update(int(lst.address[1]) for lst in self.by_node.values() if lst.address)
        n = len(ports)
        last: OSError | None = None
        for i in range(n):
            index = (self._next_port + i) % n
            port = ports[index]
            if port in taken:
                continue
            try:
                sock = _listen(self.host, port)
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                last = exc
                continue
            self._next_port = (index + 1) % n
            return sock
        raise OSError(
            errno.EADDRINUSE,
            f"no free port in broker_ports {self.settings.broker_ports}"
            + (f" (last error: {last.strerror})" if last else ""),
        )

    def _failed(self, node_id: int, why: str) -> None:
        self.failures += 1
        if self.on_failure is not None:
            self.on_failure(self.bootstrap.name)
        # Every Metadata answer repeats it: say each (broker, reason) once, and a
        # bounded number of them (the counter above counts them all).
        key = (node_id, why)
        if key in self._warned or len(self._warned) >= MAX_WARNED:
            return
        self._warned.add(key)
        log.warning(
            "kafka listener %s: broker %d is advertised unrewritten (clients will bypass "
            "the proxy for it): %s",
            self.bootstrap.name,
            node_id,
            why,
        )


#: distinct (broker, reason) failures logged; later ones are only counted
MAX_WARNED = 64
#: RFC 1035's limit on a whole name; a label is at most 63 octets
MAX_HOST = 253


def broker_problem(node_id: int, host: str, port: int) -> str | None:
    """Why a broker a Metadata answer advertises cannot get a listener, or None.

    The host must be something a socket can connect to: an IP address, or a
    DNS name that IDNA encodes (the codec's error ended the connection before).
    """
    if node_id < 0:
        return f"node id {node_id} is negative"
    if not 0 < port <= 65535:
        return f"port {port} is out of range"
    if not host:
        return "empty host"
    if len(host) > MAX_HOST:
        return f"host of {len(host)} characters (at most {MAX_HOST})"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        host.encode("idna")
    except UnicodeError:
        return f"host {host[:64]!r} is not a DNS name"
    if any(c in host for c in "[]/@ ") or ":" in host:
        return f"host {host[:64]!r} is not a DNS name"
    return None


def _advertisable(host: str) -> str:
    """A wildcard bind address cannot be advertised; fall back to loopback."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock
