"""The assembled application: a Proxy, its admin API, and every component wired in.

`protoproxy run`, the Testbed and tests all build an App, so what runs in
production is what the tests exercise. Each component (observability, Kafka
routing, gRPC inventory, faults) installs itself here, in one place.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from .admin.server import AdminServer
from .config import Config
from .proxy import Proxy

log = logging.getLogger("protoproxy")


class App:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.proxy = Proxy(config)
        self.admin = AdminServer(self.proxy, config.admin) if config.admin.enabled else None
        self.components: dict[str, object] = {}
        self._install()

    def _install(self) -> None:
        """Wire every component into the proxy and the admin API.

        Order matters: observability first (it counts what others do), faults
        last (they act on messages the protocol filters already understood).
        """
        from .faults.install import install as install_faults
        from .http.install import install as install_http
        from .kafka.install import install as install_kafka
        from .observe.install import install as install_observe

        install_observe(self)
        install_kafka(self)
        install_http(self)
        install_faults(self)
        if self.admin is not None:
            from .admin import routes_listeners

            self.admin.add_routes(routes_listeners.routes(self.proxy))

    async def start(self) -> None:
        await self.proxy.start()
        if self.admin is not None:
            try:
                await self.admin.start()
            except OSError:
                await self.proxy.stop(drain=0)  # its port is in use: give the others back
                raise

    async def stop(self, drain: float | None = None) -> None:
        await self.proxy.stop(drain)
        if self.admin is not None:
            await self.admin.stop()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(drain=0)

    async def serve_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then drain and stop."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("shutting down: draining %d connections", len(self.proxy.connections))
        await self.stop()
