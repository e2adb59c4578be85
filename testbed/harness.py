"""The Testbed: fake services plus the proxy in front of them.

Everything runs on one event loop in one process, except grpcio's server, which
runs in a child process unless the scenario says ``grpc.in_process: true``
(testbed/grpc_process.py says why).

Tests, `protoproxy testbed` and the pytest plugin all go through this class,
so what a user runs on a laptop is exactly what the test suite exercises.
"""

from __future__ import annotations

import contextlib
from typing import Any

from protoproxy.app import App
from protoproxy.config import from_dict
from protoproxy.proxy import Proxy

from .echo import EchoService
from .journal import Journal
from .scenario import Scenario


class Testbed:
    """`async with Testbed(Scenario.ephemeral()) as tb:` then use `tb.addresses`."""

    __test__ = False  # not a pytest test class

    def __init__(self, scenario: Scenario | None = None, admin_token: str | None = None) -> None:
        self.scenario = scenario or Scenario()
        #: the admin API's bearer token (``protoproxy testbed --admin-token``); a
        #: parameter, not a scenario key, so that it is never written into a file
        self.admin_token = admin_token
        self.services: dict[str, Any] = {}
        self.proxy: Proxy | None = None
        self.app: App | None = None
        self.addresses: dict[str, str] = {}
        self._stack = contextlib.AsyncExitStack()
        #: called after the proxy is up (e.g. Kafka broker listeners, fault wiring)
        self.after_start: list[Any] = []
        #: called by describe(): each returns extra "how to connect" lines
        self.hints: list[Any] = []
        #: every kind of fault, once started (testbed.faults.TestbedFaults)
        self.faults: Any = None
        #: the scenario's `schedule:` (testbed/schedule.py), set at start
        self.schedule: Any = None
        #: what every fake received (testbed/journal.py)
        self.journal = Journal(self.scenario.journal.limit)
        #: aiohttp route definitions the fakes add to the admin API (under /testbed/)
        self.admin_routes: list[Any] = []

    def front(
        self,
        name: str,
        protocol: str,
        endpoints: list[str],
        listeners: list[dict[str, Any]],
        upstreams: list[dict[str, Any]],
        port: int | None = None,
        **listener: Any,
    ) -> None:
        """Append the config that puts the proxy in front of a service: an upstream
        `name` of `endpoints`, and a listener `name` on `port` (default: the
        scenario's port for `name`) for it (`listener` adds settings, e.g. ``kafka=...``)."""
        sc = self.scenario
        if port is None:
            port = sc.ports.get(name, 0)
        upstreams.append({"name": name, "endpoints": endpoints})
        listeners.append(
            {
                "name": name,
                "listen": f"{sc.host}:{port}",
                "protocol": protocol,
                "upstream": name,
                **listener,
            }
        )

    async def start(self) -> None:
        sc = self.scenario
        listeners: list[dict[str, Any]] = []
        upstreams: list[dict[str, Any]] = []
        from . import admin_routes, setup_grpc, setup_http, setup_kafka

        if sc.grpc.runs_demo:
            setup_grpc.launch(self)  # a child process: its start overlaps the others'
        if sc.grpc.enabled and sc.grpc.services:
            from . import setup_grpc_fakes

            setup_grpc_fakes.launch(self)  # likewise, one child for the user's services
        if sc.echo.enabled:
            echo = await self._stack.enter_async_context(EchoService(sc.host))
            self.services["echo"] = echo
            self.front("echo", "tcp", [echo.address], listeners, upstreams)

        if sc.kafka.enabled:
            await setup_kafka.start(self, listeners, upstreams)
        if sc.grpc.runs_demo:
            await setup_grpc.start(self, listeners, upstreams)
        if sc.grpc.enabled and sc.grpc.services:
            await setup_grpc_fakes.start(self, listeners, upstreams)
        if sc.http.runs_demo:
            await setup_http.start(self, listeners, upstreams)
        if sc.http.enabled and sc.http.services:
            from . import setup_http_fakes

            await setup_http_fakes.start(self, listeners, upstreams)
        self.admin_routes.extend(admin_routes.journal_routes(self))
        config = from_dict(
            {
                "admin": {
                    "listen": f"{sc.host}:{sc.ports.get('admin', 0)}",
                    **({"token": self.admin_token} if self.admin_token else {}),
                },
                "listeners": listeners,
                "upstreams": upstreams,
                "seed": sc.seed,
                "tail": {"enabled": sc.tail},
                "access_log": {"enabled": sc.access_log},
            },
            source="testbed scenario",
        )
        self.app = App(config)
        self.proxy = self.app.proxy
        if self.app.admin is not None:
            self.app.admin.add_routes(self.admin_routes)
        await self.app.start()
        self._stack.push_async_callback(self.app.stop, 0)
        if self.app.admin is not None:
            self.addresses["admin"] = "{}:{}".format(*self.app.admin.address)
        for name, lst in self.proxy.listeners.items():
            self.addresses[name] = f"{lst.address[0]}:{lst.address[1]}"
        for hook in self.after_start:
            await hook(self)
        from .faults import attach

        await attach(self)  # tb.faults, and the scenario's faults: list

    async def stop(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Testbed:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def describe(self) -> str:
        """Where everything is, and how to reach it, for humans."""
        lines = ["protoproxy testbed is up:"]
        width = max((len(n) for n in self.addresses), default=8)
        for name, addr in self.addresses.items():
            service = self.services.get(name)
            behind = f" -> {_where(service.address)}" if service is not None else ""
            lines.append(f"  {name:<{width}} {addr}{behind}")
        if "echo" in self.addresses:
            host, _, port = self.addresses["echo"].rpartition(":")
            lines.append("")
            lines.append(f"  try:  echo hello | nc -q1 {host} {port}")
        for hint in self.hints:
            lines.extend(hint(self))
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)


def _where(address: object) -> str:
    """A service address as host:port, whether the service keeps a string or a tuple."""
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)
