"""A fake Kafka cluster with the proxy in front, on an event loop in a background thread.

Clients (kafka-python, confluent-kafka, kcat, aiokafka on its own loop) run in
the test thread, so the proxy and the cluster are the only code on their
loop, as in production; cluster control calls go through `run()`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from protoproxy.app import App
from protoproxy.config import from_dict
from protoproxy.kafka.component import KafkaComponent
from testbed.kafka import FakeKafkaCluster


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class KafkaRig:
    """`with KafkaRig() as rig:` then point clients at `rig.bootstrap`."""

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
    ) -> None:
        self.brokers = brokers
        self.seed = seed
        self.kafka = kafka or {}
        self.listener_tls = listener_tls
        self.upstream_tls = upstream_tls
        self.cluster_ssl = cluster_ssl
        self.extra_config = config or {}
        self.extra_listeners = extra_listeners or []
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.cluster: FakeKafkaCluster | None = None
        self.app: App | None = None

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> KafkaRig:
        self._thread.start()
        try:
            self.call(self._start)
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _start(self) -> None:
        self.cluster = FakeKafkaCluster(self.brokers, seed=self.seed, ssl=self.cluster_ssl)
        await self.cluster.start()
        listener: dict[str, Any] = {
            "name": "kafka",
            "listen": "127.0.0.1:0",
            "protocol": "kafka",
            "upstream": "kafka",
            "kafka": self.kafka,
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
        self.app = App(from_dict(cfg))
        await self.app.start()

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self.app is not None:
                await self.app.stop(drain=0)
            if self.cluster is not None:
                await self.cluster.stop()

        try:
            if self._thread.is_alive():
                self.call(stop, timeout=20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    # -- running things on the loop -------------------------------------------------
    def call(self, coro_fn: Callable[[], Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def run(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run a plain function on the loop (cluster control, reading proxy state)."""

        async def wrapper() -> Any:
            return fn()

        return self.call(wrapper, timeout)

    # -- addresses and state ------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        assert self.app is not None
        return f"127.0.0.1:{self.app.proxy.listeners['kafka'].port}"

    @property
    def component(self) -> KafkaComponent:
        assert self.app is not None
        comp = self.app.components["kafka"]
        assert isinstance(comp, KafkaComponent)
        return comp

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
