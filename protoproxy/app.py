"""The assembled application: a Proxy, its admin API, and every component wired in.

`protoproxy run`, the Testbed and tests all build an App, so what runs in
production is what the tests exercise. Each component (observability, Kafka
routing, HTTP/gRPC, faults) is installed here, in one place, and kept as a
typed attribute (`app.observe`, `app.kafka`, `app.faults`...).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from .admin import routes_listeners, routes_reload, routes_state
from .admin.server import AdminServer
from .capture.install import install as install_captures
from .capture.taps import Captures
from .config import Config
from .faults.engine import FaultEngine
from .faults.install import install as install_faults
from .faults.message_filter import MessageFaults
from .faults.toxic_manager import ToxicManager
from .hooks import Hooks
from .http.install import install as install_http
from .http.inventory import GrpcInventory
from .http.metrics import HttpMetrics
from .kafka.component import KafkaComponent
from .kafka.install import install as install_kafka
from .observe.install import Observe
from .observe.install import install as install_observe
from .proxy import Proxy
from .record.install import Recorder
from .record.install import install as install_record
from .reload import Reloader

log = logging.getLogger("protoproxy")


class App:
    """A Proxy with every component installed, each a typed attribute.

    Installers (`*/install.py`) see only the Proxy and a `Hooks`; where their
    filters and observers run is fixed by `protoproxy.pipeline`'s slots, not
    by the order below.
    """

    def __init__(
        self,
        config: Config,
        config_path: str | Path | None = None,
        admin_token: str | None = None,
    ) -> None:
        """`config_path` is the file `config` came from, re-read on reload (SIGHUP,
        ``POST /config/reload``) with `admin_token` (``--admin-token``) applied again."""
        self.config = config
        self.proxy = Proxy(config)
        self.admin = AdminServer(self.proxy, config.admin) if config.admin.enabled else None
        hooks = Hooks(self.proxy, self.admin)
        # observe first: it sets the series caps before the others make families
        self.observe: Observe = install_observe(self.proxy, hooks)
        self.kafka: KafkaComponent = install_kafka(self.proxy, hooks)
        http = install_http(self.proxy, hooks)
        self.http: HttpMetrics = http.metrics
        self.grpc: GrpcInventory = http.inventory
        faults = install_faults(self.proxy, hooks)
        self.faults: FaultEngine = faults.engine
        self.toxics: ToxicManager = faults.toxics
        self.message_faults: MessageFaults = faults.message_faults
        self.record: Recorder = install_record(self.proxy, hooks)
        self.captures: Captures = install_captures(self.proxy, hooks)
        if hooks.admin:  # routes spanning components, once they all exist
            hooks.routes(routes_state.routes(self.proxy, self.kafka, self.grpc))
            hooks.routes(routes_listeners.routes(self.proxy))
        #: after the faults: a reload diffs the file's faults against the engine's
        self.reloader = Reloader(self, config_path, admin_token)
        hooks.routes(routes_reload.routes(self.reloader))

    async def start(self) -> None:
        await self.proxy.start()
        await self.captures.start_configured()
        if self.admin is not None:
            try:
                await self.admin.start()
            except OSError:
                await self.proxy.stop(drain=0)  # its port is in use: give the others back
                raise

    async def stop(self, drain: float | None = None) -> None:
        await self.proxy.stop(drain)
        await self.record.close()  # what the connections carried is written before we return
        await self.captures.close()
        if self.admin is not None:
            await self.admin.stop()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(drain=0)

    async def serve_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then drain and stop; SIGHUP reloads the config file."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if self.reloader.path is not None:
            loop.add_signal_handler(signal.SIGHUP, self.reloader.on_signal)
        await self.start()
        await stop.wait()
        log.info("shutting down: draining %d connections", len(self.proxy.connections))
        await self.stop()
