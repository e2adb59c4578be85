"""A fake Kafka cluster with the proxy in front, on an event loop in a background thread.

Clients (kafka-python, confluent-kafka, kcat, aiokafka on its own loop) run in
the test thread, so the proxy and the cluster are the only code on their
loop, as in production; cluster control calls go through `run()`.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from protoproxy.app import App
from protoproxy.config import from_dict
from protoproxy.kafka.component import KafkaComponent
from testbed.kafka import FakeKafkaCluster
from tests.peers import LoopThread, new_loop


class KafkaRig(LoopThread):
    """`with KafkaRig() as rig:` then point clients at `rig.bootstrap`."""

    call_timeout = 60

    def __init__(
        self,
        brokers: int = 3,
        *,
        seed: int = 7,
        kafka: dict[str, Any] | None = None,
        listener_tls: dict[str, Any] | None = None,
        upstream_tls: dict[str, Any] | None = None,
        cluster_ssl: ssl.SSLContext | None = None,
        config: dict[str, Any] | None = None,
        extra_listeners: list[dict[str, Any]] | None = None,
        cluster_options: dict[str, Any] | None = None,
        listener_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(new_loop())
        self.brokers = brokers
        self.seed = seed
        self.kafka = kafka or {}
        self.listener_tls = listener_tls
        self.upstream_tls = upstream_tls
        self.cluster_ssl = cluster_ssl
        self.extra_config = config or {}
        self.extra_listeners = extra_listeners or []
        self.cluster_options = cluster_options or {}  # more FakeKafkaCluster arguments
        self.listener_options = listener_options or {}  # more settings of the "kafka" listener
        self.cluster: FakeKafkaCluster | None = None
        self._app: App | None = None

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> KafkaRig:
        self.start_loop()
        try:
            self.call(self._start)
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _start(self) -> None:
        self.cluster = FakeKafkaCluster(
            self.brokers, seed=self.seed, ssl=self.cluster_ssl, **self.cluster_options
        )
        await self.cluster.start()
        listener: dict[str, Any] = {
            "name": "kafka",
            "listen": "127.0.0.1:0",
            "protocol": "kafka",
            "upstream": "kafka",
            "kafka": self.kafka,
            **self.listener_options,
        }
        if self.listener_tls is not None:
            listener["tls"] = self.listener_tls
        upstream: dict[str, Any] = {
            "name": "kafka",
            "endpoints": self.cluster.bootstrap_servers.split(","),
        }
        if self.upstream_tls is not None:
            upstream["tls"] = self.upstream_tls
        cfg = {
            "admin": {"enabled": False},
            "listeners": [listener, *self.extra_listeners],
            "upstreams": [upstream],
            **self.extra_config,
        }
        self._app = App(from_dict(cfg))
        await self._app.start()

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._app is not None:
                await self._app.stop(drain=0)
            if self.cluster is not None:
                await self.cluster.stop()

        try:
            if self._thread.is_alive():
                self.call(stop, timeout=20)
        finally:
            self.stop_loop(10)

    # -- addresses and state ------------------------------------------------------------
    @property
    def app(self) -> App:
        """The running App (its components: `app.kafka`, `app.faults`...)."""
        assert self._app is not None, "the rig is not started"
        return self._app

    @property
    def bootstrap(self) -> str:
        assert self.app is not None
        return f"127.0.0.1:{self.app.proxy.listeners['kafka'].port}"

    @property
    def component(self) -> KafkaComponent:
        return self.app.kafka

    def create_topic(self, name: str, partitions: int) -> None:
        self.run(lambda: self.cluster.create_topic(name, partitions))  # type: ignore[union-attr]

    def family(self, name: str) -> dict[tuple[str, ...], float]:
        """A counter family's values, copied on the loop thread."""
        assert self.app is not None
        stats = self.app.proxy.stats
        return self.run(lambda: dict(stats.families[name].values))  # type: ignore[union-attr]

    def histogram_counts(self, name: str) -> dict[tuple[str, ...], int]:
        assert self.app is not None
        stats = self.app.proxy.stats
        return self.run(
            lambda: {k: s.count for k, s in stats.families[name].series.items()}  # type: ignore[union-attr]
        )

    def connection_counts(self) -> tuple[int, int]:
        """(connections the cluster accepted, upstream connections the proxy opened)."""
        assert self.app is not None and self.cluster is not None
        metrics = self.app.proxy.metrics
        cluster = self.cluster
        return self.run(
            lambda: (cluster.connections_accepted, int(metrics.upstream_connections.total()))
        )

    def assert_no_bypass(self, timeout: float = 10) -> None:
        """Every connection the cluster accepted was opened by the proxy.

        The cluster counts a connection in its accept callback, a moment after
        the proxy counts its connect, so equal counts are awaited (bounded).
        """
        deadline = time.monotonic() + timeout
        while True:
            accepted, opened = self.connection_counts()
            if accepted == opened:
                assert opened > 0
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cluster accepted {accepted} connections, proxy opened {opened}: "
                    "a client bypassed the proxy"
                )
            time.sleep(0.05)
